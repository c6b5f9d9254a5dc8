"""Langfuse and OpenTelemetry turned on by the usual variables, as in the CLI: an Engine
built while they are set exports its runs to mock collectors on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from operonx.core import END, PARENT, START, GraphOp, op

from operonx_engine import Engine


@op
def shout(text):
    return {"text": text.upper()}


def graph():
    with GraphOp(name="main") as g:
        o = shout(name="o", text=PARENT["text"])
        START >> o >> END
    return g


class Collector:
    """An HTTP server on 127.0.0.1 recording (path, headers, JSON body) of every POST."""

    def __init__(self, status: int, answer: str):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                data = answer.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.startswith(("OTEL_", "LANGFUSE_")):
            monkeypatch.delenv(k)
    return monkeypatch


def test_the_usual_variables_turn_both_exporters_on(clean_env):
    otel, langfuse = Collector(200, "{}"), Collector(207, '{"successes": [], "errors": []}')
    try:
        clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otel.url)
        clean_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        clean_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=py-otlp-secret")
        clean_env.setenv("OTEL_SERVICE_NAME", "py-service")
        clean_env.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-py")
        clean_env.setenv("LANGFUSE_SECRET_KEY", "sk-lf-py-secret")
        clean_env.setenv("LANGFUSE_HOST", langfuse.url)
        engine = Engine(graph(), no_trace_store=True)
        assert engine.run({"text": "hi"}) == {"text": "HI"}
        engine.close()
    finally:
        otel.close()
        langfuse.close()

    path, headers, body = otel.received[0]
    assert path == "/v1/traces"
    assert headers["x-api-key"] == "py-otlp-secret"
    resource = body["resourceSpans"][0]["resource"]["attributes"]
    assert {"key": "service.name", "value": {"stringValue": "py-service"}} in resource
    spans = [s for r in otel.received for s in r[2]["resourceSpans"][0]["scopeSpans"][0]["spans"]]
    assert [s["name"] for s in spans] == ["main.o"]

    items = [i for r in langfuse.received for i in r[2]["batch"]]
    assert {i["type"] for i in items} >= {"trace-create", "span-create"}
    assert langfuse.received[0][1]["authorization"].startswith("Basic ")


def test_a_bad_value_names_the_variable(clean_env):
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    clean_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL=grpc"):
        Engine(graph(), no_trace_store=True)
