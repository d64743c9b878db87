"""A TCP relay between a node and the database server, which a test can cut: a machine cut off the network.

The hosts of ``tests/support/hosts.py`` share the loopback network, so a node
is cut from the database by giving it the relay's port instead of the
server's: :meth:`DbRelay.cut` resets every open connection and refuses new
ones until :meth:`DbRelay.heal`.
"""

import socket
import threading


class DbRelay:
    """Relay 127.0.0.1:<port> to ``(host, port)`` of the database server."""

    def __init__(self, host: str, port: int):
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.is_cut = False
        self.open = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self.lock:
                self.open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            _reset(sock)
            with self.lock:
                self.open.discard(sock)

    def cut(self):
        """Reset every connection through the relay and refuse new ones."""
        self.is_cut = True
        with self.lock:
            sockets, self.open = list(self.open), set()
        for sock in sockets:
            _reset(sock)

    def heal(self):
        self.is_cut = False

    def close(self):
        self.cut()
        self.listener.close()


def _reset(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
