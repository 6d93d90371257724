"""Records the OTLP/HTTP requests the Python OpenAI instrumentations send, for the collect bench.

    python3 benches/record_otlp.py PYTHON INSTRUMENTATION cli/benches/data/otlp-NAME.bin

PYTHON is an interpreter with the instrumentation installed (the virtual environments .ci/run
makes from cli/tests/collect/python/requirements-*.txt), INSTRUMENTATION `openai-v2` or
`openllmetry`. It serves a minimal OpenAI-compatible API and an OTLP/HTTP receiver on local
ports, runs cli/tests/collect/python/scenarios.py against them, and writes every request body
received, each as a 4-byte big-endian length and the protobuf bytes.
"""

import http.server
import json
import os
import struct
import subprocess
import sys
import threading

USAGE = {
    "prompt_tokens": 1100, "completion_tokens": 21, "total_tokens": 1121,
    "prompt_tokens_details": {"cached_tokens": 64},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
TOOL_CALL = {"id": "call_1", "type": "function",
             "function": {"name": "forecast", "arguments": "{\"city\":\"Paris\"}"}}
bodies = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, kind, body):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            bodies.append(body)
            return self.reply(200, "application/x-protobuf", b"")
        req = json.loads(body)
        if req["model"].startswith("fail"):
            return self.reply(500, "application/json", b'{"error": {"message": "failed"}}')
        tool_turns = sum(1 for m in req["messages"] if m["role"] == "tool")
        call = bool(req.get("tools")) and tool_turns < 2
        message = ({"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]} if call
                   else {"role": "assistant", "content": "Sunny, 21 degrees."})
        base = {"id": "chatcmpl-1", "created": 1765708215, "model": req["model"] + "-2025-04-14"}
        if req.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            delta = dict(message)
            if call:
                delta["tool_calls"] = [dict(TOOL_CALL, index=0)]
            chunks = [dict(base, object="chat.completion.chunk",
                           choices=[{"index": 0, "delta": delta, "finish_reason": None}]),
                      dict(base, object="chat.completion.chunk",
                           choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])]
            if req.get("stream_options", {}).get("include_usage"):
                chunks.append(dict(base, object="chat.completion.chunk", choices=[], usage=USAGE))
            for c in chunks:
                self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True
            return
        reply = dict(base, object="chat.completion", usage=USAGE, choices=[{
            "index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}])
        self.reply(200, "application/json", json.dumps(reply).encode())

    def log_message(self, *args):
        pass


def main():
    python, instrumentation, out = sys.argv[1:4]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    script = os.path.join(os.path.dirname(__file__), "..", "cli", "tests", "collect", "python",
                          "scenarios.py")
    env = dict(os.environ, INSTRUMENTATION=instrumentation, OPENAI_BASE_URL=base + "/v1",
               OTLP_ENDPOINT=base)
    subprocess.run([python, script], env=env, check=True)
    server.shutdown()
    with open(out, "wb") as f:
        for b in bodies:
            f.write(struct.pack(">I", len(b)) + b)
    print(f"{out}: {len(bodies)} requests, {sum(map(len, bodies))} bytes")


if __name__ == "__main__":
    main()
