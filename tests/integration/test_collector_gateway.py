"""The gateway (collector/gateway.yaml): TLS and bearer tokens; agents forward through a
persistent queue (collector/backends/gateway-forward.yaml).

Gateways start as the shipped units start them: scripts/check-gateway-tokens.sh checks the
operator's token file and writes a checked copy, and the collector reads only the copy.
"""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
from collector_support import (
    BACKENDS_DIR,
    GATEWAY_CONFIG,
    REPO_ROOT,
    BotRun,
    Collector,
    TlsFiles,
    archived_logs,
    archived_points,
    http_request,
    read_jsonl,
    wait_until,
)

from ensemble_otel.contract import registry

pytestmark = pytest.mark.integration

FORWARD = BACKENDS_DIR / "gateway-forward.yaml"
TOKEN_CHECKER = REPO_ROOT / "scripts" / "check-gateway-tokens.sh"


def check_tokens(source: Path, copy: Path) -> subprocess.CompletedProcess[str]:
    """What the units run before the gateway: check ``source``, write the checked ``copy``."""
    return subprocess.run(["/bin/sh", str(TOKEN_CHECKER), str(source), str(copy)],
                          capture_output=True, text=True, timeout=30, check=False)


def gateway_env(tls: TlsFiles, token_file: Path) -> dict[str, str]:
    """The gateway's env, its token file being the checked copy of ``token_file``."""
    copy = token_file.with_name(token_file.name + ".checked")
    result = check_tokens(token_file, copy)
    assert result.returncode == 0, result.stderr
    return {
        "ENSEMBLE_GATEWAY_TLS_CERT_FILE": str(tls.cert),
        "ENSEMBLE_GATEWAY_TLS_KEY_FILE": str(tls.key),
        "ENSEMBLE_GATEWAY_TOKEN_FILE": str(copy),
    }


def token_file(directory: Path, *tokens: str) -> Path:
    """The operator's token file: one token per line, nothing else."""
    path = directory / "gateway-tokens"
    path.write_text("".join(f"{t}\n" for t in tokens))
    return path


def otlp_log_json(marker: str) -> bytes:
    """One OTLP/JSON log record whose body is ``marker``."""
    return json.dumps({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": registry.STRATEGY_ID_ATTRIBUTE, "value": {"stringValue": "it-gw"}}]},
        "scopeLogs": [{"scope": {"name": "test"}, "logRecords": [
            {"severityNumber": 9, "body": {"stringValue": marker}}]}],
    }]}).encode()


def test_gateway_refuses_clients_without_the_token(
    collector: Callable[..., Collector], tls_files: TlsFiles, tmp_path: Path,
) -> None:
    good, other = secrets.token_hex(16), secrets.token_hex(16)
    gateway = collector(GATEWAY_CONFIG, name="gateway",
                        env=gateway_env(tls_files, token_file(tmp_path, other, good)))
    url = f"https://127.0.0.1:{gateway.http_port}/v1/logs"
    trust = tls_files.client_context()

    def post(marker: str, headers: dict[str, str]) -> int:
        status, _ = http_request("POST", url, body=otlp_log_json(marker), context=trust,
                                 headers={"Content-Type": "application/json", **headers})
        return status

    assert post("no-token", {}) == 401
    assert post("wrong-token", {"Authorization": f"Bearer {secrets.token_hex(16)}"}) == 401
    assert post("wrong-scheme", {"Authorization": f"Basic {good}"}) == 401
    assert post("with-token", {"Authorization": f"Bearer {good}"}) == 200
    assert post("second-token", {"Authorization": f"Bearer {other}"}) == 200

    # Plain text to the TLS port and a client that does not trust the certificate fail.
    # (the server answers 400 and closes; the close can reach the client before the answer)
    try:
        status, body = http_request(
            "POST", f"http://127.0.0.1:{gateway.http_port}/v1/logs",
            body=otlp_log_json("plain"),
            headers={"Authorization": f"Bearer {good}", "Content-Type": "application/json"})
    except (ConnectionResetError, urllib.error.URLError) as exc:
        reset = exc if isinstance(exc, ConnectionResetError) else exc.reason
        if not isinstance(reset, ConnectionResetError):
            raise
        status, body = 400, b"connection reset by the HTTPS server"
    assert status == 400 and b"HTTPS" in body, (status, body)
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        http_request("POST", url, body=otlp_log_json("untrusted"),
                     context=ssl.create_default_context(),
                     headers={"Authorization": f"Bearer {good}"})

    def archived_bodies() -> set[str]:
        return {r.body for r in archived_logs(gateway.archive("logs"))}

    wait_until(lambda: {"with-token", "second-token"} <= archived_bodies(), timeout=15,
               message="accepted records never reached the gateway archive")
    assert not {"no-token", "wrong-token", "wrong-scheme", "plain", "untrusted"} & \
        archived_bodies()


def test_token_file_with_comments_never_lets_bearer_hash_in(
    collector: Callable[..., Collector], tls_files: TlsFiles, tmp_path: Path,
) -> None:
    """The extension reads the first word of every line as a token: `# gateway tokens` and
    `   # note` become the token `#`. The start-up check refuses such a file, so no gateway
    runs with it; once it holds tokens only, `Bearer #` gets 401 and the token 200."""
    good = secrets.token_urlsafe(24)
    source = tmp_path / "gateway-tokens"
    source.write_text(f"# gateway tokens\n{good}\n   # rotated by ops\n")
    copy = tmp_path / "gateway-tokens.checked"
    refused = check_tokens(source, copy)
    assert refused.returncode == 1
    assert f"{source}:1: '#' is not allowed" in refused.stderr
    assert f"{source}:3: '#' is not allowed" in refused.stderr
    assert not copy.exists()  # nothing for a gateway to start with

    source.write_text(f"{good}\n")
    gateway = collector(GATEWAY_CONFIG, name="gateway", env=gateway_env(tls_files, source))
    url = f"https://127.0.0.1:{gateway.http_port}/v1/logs"

    def post(authorization: str) -> int:
        status, _ = http_request(
            "POST", url, body=otlp_log_json(authorization), context=tls_files.client_context(),
            headers={"Content-Type": "application/json", "Authorization": authorization})
        return status

    assert post("Bearer #") == 401
    assert post(f"Bearer {good}") == 200
    # An unchecked edit of the operator's file does not reach the running gateway: it
    # reads the checked copy (re-checked at the next start).
    reads = gateway.log().count("refresh token")
    source.write_text(f"# gateway tokens\n{good}\n")
    time.sleep(1.5)  # the extension re-reads a watched file within milliseconds of a change
    assert gateway.log().count("refresh token") == reads
    assert post("Bearer #") == 401
    assert post(f"Bearer {good}") == 200


def test_agent_with_a_wrong_token_delivers_nothing(
    collector: Callable[..., Collector], bot: Callable[..., BotRun], tls_files: TlsFiles,
    tmp_path: Path,
) -> None:
    gateway = collector(GATEWAY_CONFIG, name="gateway",
                        env=gateway_env(tls_files, token_file(tmp_path, secrets.token_hex(16))))
    agent = collector("config.yaml", FORWARD, name="agent", env={
        "ENSEMBLE_GATEWAY_ENDPOINT": gateway.otlp_grpc_endpoint,
        "ENSEMBLE_GATEWAY_TOKEN": secrets.token_hex(16),
        "ENSEMBLE_GATEWAY_CA_FILE": str(tls_files.cert),
    })
    result = bot(agent.otlp_grpc_url, strategy_id="it-gw-refused", bars=8).wait()
    wait_until(lambda: "Unauthenticated" in agent.log(), timeout=30,
               message="the agent never reported the gateway's refusal")
    # The agent itself got everything (its archive), the gateway nothing.
    wait_until(lambda: len([r for r in archived_logs(agent.archive("logs"))
                            if r.event == "bar_done"]) == result["events"], timeout=15)
    assert gateway.archive("logs") == [] and gateway.archive("metrics") == []


def test_persistent_queue_delivers_after_gateway_comes_back(
    collector: Callable[..., Collector], bot: Callable[..., BotRun], tls_files: TlsFiles,
    tmp_path: Path,
) -> None:
    """Gateway down: the agent queues on disk, crashes, restarts; gateway up: all arrives."""
    token = secrets.token_hex(16)
    gateway = collector(GATEWAY_CONFIG, name="gateway",
                        env=gateway_env(tls_files, token_file(tmp_path, token)), start=False)
    agent = collector("config.yaml", FORWARD, name="agent", env={
        "ENSEMBLE_GATEWAY_ENDPOINT": gateway.otlp_grpc_endpoint,
        "ENSEMBLE_GATEWAY_TOKEN": token,
        "ENSEMBLE_GATEWAY_CA_FILE": str(tls_files.cert),
    })
    bars = 40
    run = bot(agent.otlp_grpc_url, strategy_id="it-queue", bars=bars, event_every=1,
              pause=0.02)
    result = run.wait()
    sent = [r["seq"] for f in sorted((run.root / "logs/events/it-queue").glob("*.jsonl"))
            for r in read_jsonl(f) if r["event"] == "bar_done"]
    assert sent == list(range(result["events"])) and len(sent) == bars

    # Everything reached the agent (its local archive) while the gateway was down ...
    wait_until(lambda: len([r for r in archived_logs(agent.archive("logs"))
                            if r.event == "bar_done"]) == len(sent), timeout=30,
               message="the agent did not receive every event")
    # ... and sits in its persistent queue, which survives a crash of the agent.
    queue_files = [p for p in agent.storage_dir.iterdir() if p.is_file()]
    assert queue_files, "no persistent queue file"
    agent.kill()
    agent.start()
    gateway.start()

    def arrived() -> list[int]:
        return [r.body["seq"] for r in archived_logs(gateway.archive("logs"))
                if r.event == "bar_done"]

    wait_until(lambda: set(arrived()) == set(sent), timeout=90,
               message=lambda: f"sent {len(sent)} events, {len(set(arrived()))} arrived")
    duplicates = len(arrived()) - len(set(arrived()))
    assert duplicates <= len(sent)  # at-least-once: a batch in flight at the crash may repeat

    # Metrics made the trip too, with the strategy on their resource.
    def final_bars_at_gateway() -> bool:
        return any(p.metric == registry.BARS and p.value == bars
                   and p.resource.get(registry.STRATEGY_ID_ATTRIBUTE) == "it-queue"
                   for p in archived_points(gateway.archive("metrics")))

    wait_until(final_bars_at_gateway, timeout=60,
               message="the final bar count never reached the gateway")
    bars_series = registry.METRICS_BY_NAME[registry.BARS].prometheus
    samples = [s for s in gateway.samples() if s.name == bars_series]
    assert [s.labels["ensemble_strategy_id"] for s in samples] == ["it-queue"]
