#!/usr/bin/env python3
"""A stand-in OpenTelemetry collector for scripts/bench-http.sh: accepts OTLP/HTTP
exports on 127.0.0.1 (a free port, printed as the first line), answers 200 to each, and
on SIGTERM prints how many requests and bytes it took. It decodes nothing: the point
is what exporting costs the server, not what a collector does with it."""
import http.server
import signal
import sys
import threading

requests = 0
received = 0
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global requests, received
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with lock:
            requests += 1
            received += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)


def stop(*_):
    print(f"otlp_requests={requests} otlp_bytes={received}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
