"""A loopback HTTP server for download tests: routes, truncated and chunked replies."""

import http.server
import socket
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server API)
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        body, extra = route
        self.send_response(200)
        if extra == "chunked":  # a chunk that promises more than it holds: IncompleteRead
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n" % (len(body) + 1000) + body)
            return
        # `extra` > 0 announces more bytes than are sent: a transfer cut short.
        self.send_header("Content-Length", str(len(body) + extra))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.routes, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return server, thread


def serve(server, filename, body, extra=0):
    server.routes[f"/mirror/{filename}"] = (body, extra)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
