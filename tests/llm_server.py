"""A real HTTP server speaking the OpenAI chat-completions protocol, with scripted answers.

Used by the tests (started on 127.0.0.1, a free port, in a thread). Each request to
``POST /v1/chat/completions`` takes the next item of the script (the last one repeats):

- ``{"content": "..."}``: a normal answer;
- ``{"status": 500}``: an HTTP error with an OpenAI-style error body;
- ``{"sleep": 3.0, "content": "..."}``: answer after a delay (a timeout for the client);
- ``{"raw": "not json"}``: a malformed body;
- a callable ``item(request_json) -> dict`` for answers that depend on the request.

Every received request body is kept in ``server.requests``.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedLLMServer:
    def __init__(self, script=None):
        self.script = list(script or [{"content": "```cpp\n```"}])
        self.requests: list = []
        self._lock = threading.Lock()
        self._httpd = None
        self._thread = None

    # ------------------------------------------------------------------ control
    def start(self) -> "ScriptedLLMServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, code, body: bytes, ctype="application/json"):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "scripted", "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    req = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, b'{"error": {"message": "bad json"}}')
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                item = server._next(req)
                if callable(item):
                    item = item(req)
                if item.get("sleep"):
                    time.sleep(float(item["sleep"]))
                if "status" in item:
                    body = {"error": {"message": item.get("message", "scripted failure"), "type": "server_error"}}
                    self._send(int(item["status"]), json.dumps(body).encode())
                    return
                if "raw" in item:
                    self._send(200, item["raw"].encode())
                    return
                content = item.get("content", "")
                body = {
                    "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": 0,
                    "model": req.get("model", "scripted"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": sum(len(m.get("content", "")) // 4 for m in req.get("messages", [])),
                              "completion_tokens": len(content) // 4,
                              "total_tokens": 0},
                }
                self._send(200, json.dumps(body).encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _next(self, req):
        with self._lock:
            self.requests.append(req)
            k = len(self.requests) - 1
            return self.script[min(k, len(self.script) - 1)]

    def set_script(self, script):
        with self._lock:
            self.script = list(script)
            self.requests.clear()
