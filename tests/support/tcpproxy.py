"""A TCP proxy in a thread of the test process, to cut one node from its database.

``TcpProxy(host, port).start()`` listens on a loopback port and forwards each
connection to ``(host, port)``. ``cut()`` closes every forwarded connection
and refuses new ones (connections are accepted and closed at once, as a
database that went away); ``restore()`` forwards again.
"""

import selectors
import socket
import threading


class TcpProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.is_cut = False
        self.closed = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "TcpProxy":
        self.thread.start()
        return self

    def cut(self) -> None:
        """Close every forwarded connection; accept and close new ones until :meth:`restore`."""
        with self.lock:
            self.is_cut = True
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                _close(sock)

    def restore(self) -> None:
        with self.lock:
            self.is_cut = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        _close(self.listener)

    def _serve(self) -> None:
        while not self.closed:
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            with self.lock:
                refused = self.is_cut
            if refused:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in sel.select(timeout=0.5):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                if client.fileno() < 0 or upstream.fileno() < 0:
                    return
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            _close(client)
            _close(upstream)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
