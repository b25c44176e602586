"""Traces to a real Jaeger v2 (collector/backends/jaeger.yaml).

A bot under ``opentelemetry-instrument`` (the ensemble distro, the requests
instrumentation installed by the dev extra) calls a local HTTP server; the client span
goes bot -> agent -> Jaeger and arrives there with the strategy resource.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from backend_support import BackendFactory, jaeger_traces
from collector_support import BACKENDS_DIR, Collector, require_binary, wait_until

from ensemble_otel.contract.registry import STRATEGY_ID_ATTRIBUTE

pytestmark = pytest.mark.integration

STRATEGY = "it-jaeger"
SERVICE = "jaeger-bot"

# A bot that never imports ensemble_otel: one HTTP GET to a server in its own process.
BOT = textwrap.dedent('''
    import http.server, threading
    import requests

    class Quote(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"1.0842")
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quote)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answer = requests.get(f"http://127.0.0.1:{server.server_port}/quote/EURUSD", timeout=5)
    print("quote", answer.status_code, answer.text)
    server.shutdown()
''')


def process_tags(trace: dict[str, Any], span: dict[str, Any]) -> dict[str, Any]:
    process = trace["processes"][span["processID"]]
    return {tag["key"]: tag["value"] for tag in process.get("tags", [])}


def test_instrumented_http_call_reaches_jaeger_with_the_strategy(
    collector: Callable[..., Collector], backends: BackendFactory, tmp_path: Path,
) -> None:
    jaeger = backends.jaeger().start()
    agent = collector("config.yaml", BACKENDS_DIR / "jaeger.yaml", name="agent", env={
        "ENSEMBLE_JAEGER_ENDPOINT": f"127.0.0.1:{jaeger.extra_ports['otlp']}",
        "ENSEMBLE_JAEGER_INSECURE": "true",
    })
    script = tmp_path / "bot.py"
    script.write_text(BOT)
    instrument = require_binary(Path(sys.executable).with_name("opentelemetry-instrument"),
                                "make venv (opentelemetry-instrumentation is in the dev extra)")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENSEMBLE_", "OTEL_")) and k not in ("PAPER_TRADING_ROOT",)}
    env.update({
        "OTEL_PYTHON_DISTRO": "ensemble",
        "OTEL_SERVICE_NAME": SERVICE,
        "OTEL_EXPORTER_OTLP_ENDPOINT": agent.otlp_grpc_url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "ENSEMBLE_STRATEGY_ID": STRATEGY,
        "PAPER_TRADING_ROOT": str(tmp_path / "root"),
    })
    result = subprocess.run([instrument, sys.executable, str(script)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "quote 200 1.0842" in result.stdout

    def client_spans() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(t, s) for t in jaeger_traces(jaeger, SERVICE) for s in t["spans"]
                if s["operationName"] == "GET"]

    [(trace, span)] = wait_until(client_spans, timeout=60,
                                 message=lambda: f"no GET span in Jaeger:\n{agent.log_tail()}")
    span_tags = {tag["key"]: tag["value"] for tag in span["tags"]}
    assert span_tags.get("http.status_code", span_tags.get("http.response.status_code")) == 200
    assert "/quote/EURUSD" in str(span_tags.get("http.url", span_tags.get("url.full")))
    tags = process_tags(trace, span)
    assert tags[STRATEGY_ID_ATTRIBUTE] == STRATEGY
    assert trace["processes"][span["processID"]]["serviceName"] == SERVICE
    # The collector's redaction ran on the way: no command line left the host.
    assert not {"process.command_args", "process.command_line", "process.command"} & set(tags)
