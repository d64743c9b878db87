"""Local HTTP endpoints standing in for a webhook receiver and the Slack API."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder:
    """A local HTTP endpoint (127.0.0.1, port 0) recording every POST; answers ``status`` and ``body``."""

    def __init__(self, status=200, body=b"ok", content_type="text/plain"):
        self.requests = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = raw.decode("utf-8", "replace")
                recorder.requests.append({"path": self.path, "headers": dict(self.headers), "data": data})
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def slack_api(ok=True) -> Recorder:
    """A Recorder answering as Slack's chat.postMessage does (``ok`` False: channel_not_found)."""
    answer = (
        {"ok": True, "channel": "C0TEST", "ts": "1.000"}
        if ok
        else {"ok": False, "error": "channel_not_found"}
    )
    return Recorder(body=json.dumps(answer).encode(), content_type="application/json")


def events(recorder) -> list[tuple]:
    """The (event, report id) of each notification webhook ``recorder`` received."""
    return [(r["data"]["event"], r["data"]["report"]["id"]) for r in recorder.requests]
