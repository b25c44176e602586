"""Redaction in every collector config: every pipeline redacts before anything else reads
the data, and secret-named attributes never come out of the real collector.

The config checks are generic: every ``*.yaml`` under collector/ (but the builder
manifest) is loaded; files defining the otlp receiver are base configs, the others overlays, merged
over each base the way the collector merges repeated ``--config`` files (maps merge, lists
and scalars are replaced). An overlay added later is checked without touching this file.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from collector_support import COLLECTOR_DIR, Collector, http_request, wait_until

from ensemble_otel.contract import registry

pytestmark = pytest.mark.integration

MANIFEST = COLLECTOR_DIR / "builder-config.yaml"
# The only processor allowed before the redaction: it refuses data under memory pressure
# and neither reads, changes nor forwards it.
ALLOWED_BEFORE = ("memory_limiter",)
REDACTION = ("resource/redact", "transform/redact")
STATEMENT = re.compile(r'^delete_matching_keys\((\w+)\.(attributes|body), "(.*)"\)( where .*)?$')
# What transform/redact must cover per signal: resource and scope, and the records' own.
COVERED = {
    "trace_statements": {"resource", "scope", "span", "spanevent"},
    "metric_statements": {"resource", "scope", "datapoint"},
    "log_statements": {"resource", "scope", "log"},
}


# --- loading and merging configs ------------------------------------------------------------


def collector_yaml_files() -> list[Path]:
    files = [p for p in sorted(COLLECTOR_DIR.rglob("*.yaml"))
             if p != MANIFEST and "_build" not in p.relative_to(COLLECTOR_DIR).parts]
    assert len(files) >= 4, files
    return files


def load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base`` as the collector merges configs: maps key by key, the
    rest (lists, scalars) replaced."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def is_base(path: Path) -> bool:
    """A base config defines the OTLP receiver; an overlay may add receivers of its own
    (records.yaml adds file_log) but is started over a base."""
    return "otlp" in (load(path).get("receivers") or {})


def bases() -> list[Path]:
    return [p for p in collector_yaml_files() if is_base(p)]


def overlays() -> list[Path]:
    return [p for p in collector_yaml_files() if not is_base(p)]


def effective_configs() -> Iterator[tuple[str, dict[str, Any]]]:
    """Each base alone, with each overlay, and with every overlay at once."""
    for base in bases():
        name = base.relative_to(COLLECTOR_DIR).as_posix()
        yield name, load(base)
        merged = load(base)
        for overlay in overlays():
            yield f"{name}+{overlay.relative_to(COLLECTOR_DIR).as_posix()}", \
                merge(load(base), load(overlay))
            merged = merge(merged, load(overlay))
        yield f"{name}+all overlays", merged


def pipelines_not_redacting_first(config: Mapping[str, Any]) -> list[str]:
    """Every pipeline whose processors do not start with the redaction (after the allowed
    memory_limiter), or that uses a redaction processor the config does not define."""
    defined = set(config.get("processors") or {})
    findings = []
    for name, pipeline in (config.get("service", {}).get("pipelines") or {}).items():
        processors = list(pipeline.get("processors") or [])
        rest = processors[len(ALLOWED_BEFORE):] \
            if tuple(processors[:len(ALLOWED_BEFORE)]) == ALLOWED_BEFORE else processors
        if tuple(rest[:len(REDACTION)]) != REDACTION:
            findings.append(f"{name}: processors {processors} do not start with "
                            f"{[*ALLOWED_BEFORE, *REDACTION]}")
        elif not set(REDACTION) <= defined:
            findings.append(f"{name}: {sorted(set(REDACTION) - defined)} not defined")
    return findings


def redaction_patterns(config: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """transform/redact's delete_matching_keys patterns: signal -> {context: pattern}."""
    transform = config["processors"]["transform/redact"]
    out: dict[str, dict[str, str]] = {}
    for signal in COVERED:
        for group in transform.get(signal) or []:
            statements = group["statements"] if isinstance(group, Mapping) else [group]
            for statement in statements:
                match = STATEMENT.match(statement)
                if match:
                    out.setdefault(signal, {})[f"{match[1]}.{match[2]}"] = match[3]
    return out


# --- the configs ------------------------------------------------------------------------------

EFFECTIVE = list(effective_configs())


def test_bases_and_overlays_found() -> None:
    names = {p.relative_to(COLLECTOR_DIR).as_posix() for p in collector_yaml_files()}
    assert {"config.yaml", "gateway.yaml", "debug.yaml"} <= names
    assert {p.name for p in bases()} == {"config.yaml", "gateway.yaml"}


@pytest.mark.parametrize(("name", "config"), EFFECTIVE, ids=[n for n, _ in EFFECTIVE])
def test_every_pipeline_redacts_first(name: str, config: dict[str, Any]) -> None:
    assert config["service"]["pipelines"], name
    assert pipelines_not_redacting_first(config) == []


def test_the_check_finds_the_old_debug_overlay() -> None:
    """debug.yaml as it was: its metrics and traces pipelines printed unredacted data."""
    old_debug = {"service": {"pipelines": {
        "metrics/debug": {"receivers": ["otlp"], "processors": ["memory_limiter"],
                          "exporters": ["debug"]},
        "logs/debug": {"receivers": ["otlp"],
                       "processors": ["memory_limiter", "resource/redact", "transform/redact"],
                       "exporters": ["debug"]},
        "traces/debug": {"receivers": ["otlp"], "processors": ["transform/redact"],
                         "exporters": ["debug"]},
    }}}
    merged = merge(load(COLLECTOR_DIR / "config.yaml"), old_debug)
    findings = pipelines_not_redacting_first(merged)
    assert [f.split(":")[0] for f in findings] == ["metrics/debug", "traces/debug"]


@pytest.mark.parametrize("base", bases(), ids=lambda p: p.name)
def test_redaction_covers_every_signal_with_one_pattern(base: Path) -> None:
    config = load(base)
    patterns = redaction_patterns(config)
    for signal, contexts in COVERED.items():
        assert {c.split(".")[0] for c in patterns.get(signal, {})} == contexts, signal
    assert "log.body" in patterns["log_statements"]
    assert len({p for by_context in patterns.values() for p in by_context.values()}) == 1
    deleted = {a.get("key") for a in config["processors"]["resource/redact"]["attributes"]
               if a["action"] == "delete"}
    assert {"process.command_args", "process.command_line", "process.command"} <= deleted


def test_agent_and_gateway_redact_the_same_way() -> None:
    agent, gateway = (load(COLLECTOR_DIR / name)["processors"]
                      for name in ("config.yaml", "gateway.yaml"))
    for name in REDACTION:
        assert agent[name] == gateway[name], name


def the_pattern() -> re.Pattern[str]:
    [pattern] = {p for by in redaction_patterns(load(COLLECTOR_DIR / "config.yaml")).values()
                 for p in by.values()}
    return re.compile(pattern)  # RE2 and Python agree on this subset


SECRET_NAMES = [
    "password", "db.password", "DB_PASSWD", "db.pwd", "passphrase", "secret",
    "client_secret", "token", "x.token", "access_token", "auth-token", "github.TOKEN",
    "authorization", "http.request.header.authorization",
    "http.request.header.proxy-authorization", "cookie", "http.request.header.cookie",
    "http.response.header.set-cookie", "session", "user.session", "sessionid",
    "session_id", "credentials", "aws.credentials", "gcp.credential", "api_key", "apikey",
    "x-api-key", "exchange.api.secret", "private_key", "ssh.private-key", "bearer",
    "auth", "jwt", "process.command_args", "process.command_line", "process.command",
    "process.environment_variable.EXCHANGE_KEY",
]
INNOCUOUS_NAMES = [
    *registry.RESOURCE_ATTRIBUTES, registry.PERIOD_ATTRIBUTE, "service.name",
    "service.instance.id", "ensemble.tokens_used", "ensemble.session_count",
    "http.request.method", "author", "cookies.count", "session.id", "tokenizer",
    "event.name", "strategy_id", "schema_version", "passwordless", "process.pid",
    "process.executable.name", "process.runtime.name", "process.commander",
]


@pytest.mark.parametrize("key", SECRET_NAMES)
def test_pattern_matches_secret_names(key: str) -> None:
    assert the_pattern().search(key), key


@pytest.mark.parametrize("key", INNOCUOUS_NAMES)
def test_pattern_keeps_innocuous_names(key: str) -> None:
    assert not the_pattern().search(key), key


# --- the real collector -----------------------------------------------------------------------


def secret_attributes(where: str) -> dict[str, Any]:
    """Secret-named attributes, each with a value unique to this run and place."""
    def value(name: str) -> str:
        return f"SECRET-{where}-{name}-{secrets.token_hex(6)}"
    return {
        "process.command_args": ["bot", "--api-key", value("args")],
        "process.command_line": f"bot --api-key {value('cmdline')}",
        "process.environment_variable.EXCHANGE_KEY": value("env"),
        "db.pwd": value("pwd"),
        "http.request.header.authorization": f"Bearer {value('authz')}",
        "user.session": value("session"),
        "aws.credentials": value("credentials"),
        "x.token": value("token"),
        "cookie": value("cookie"),
        "exchange.api_key": value("apikey"),
        "password": value("password"),
    }


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": kv_list(value)}}
    return {"stringValue": str(value)}


def kv_list(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in attributes.items()]


def innocuous(where: str, marker: str) -> dict[str, str]:
    return {registry.STRATEGY_ID_ATTRIBUTE: f"it-redact-{where}",
            "ensemble.note": f"{marker}-{where}", "ensemble.tokens_used": f"{marker}-{where}-12"}


def requests(marker: str) -> tuple[dict[str, bytes], set[str], set[str]]:
    """OTLP/JSON bodies per signal path, the secret values in them, the kept values."""
    sent_secrets: set[str] = set()
    kept: set[str] = set()

    def attrs(where: str) -> list[dict[str, Any]]:
        secret = secret_attributes(where)
        keep = innocuous(where, marker)
        for v in secret.values():
            sent_secrets.update(v if isinstance(v, list) else [v])
        sent_secrets.difference_update({"bot", "--api-key"})
        kept.update(keep.values())
        return kv_list({**keep, **secret})

    def resource(where: str) -> dict[str, Any]:
        return {"attributes": attrs(f"{where}-resource")}

    def scope(where: str) -> dict[str, Any]:
        return {"name": "it-redact", "attributes": attrs(f"{where}-scope")}

    now = str(1_700_000_000_000_000_000)
    logs = {"resourceLogs": [{"resource": resource("logs"), "scopeLogs": [{
        "scope": scope("logs"), "logRecords": [{
            "timeUnixNano": now, "severityNumber": 9, "attributes": attrs("log"),
            "body": any_value({"event": f"{marker}-body",
                               **{k: v for k, v in secret_attributes("body").items()
                                  if not k.startswith("process.")}}),
        }]}]}]}
    for v in logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"][
            "kvlistValue"]["values"]:
        if v["key"] != "event":
            sent_secrets.add(v["value"]["stringValue"])
    kept.add(f"{marker}-body")
    metrics = {"resourceMetrics": [{"resource": resource("metrics"), "scopeMetrics": [{
        "scope": scope("metrics"), "metrics": [{"name": "it.redact.gauge", "gauge": {
            "dataPoints": [{"timeUnixNano": now, "asDouble": 1.5,
                            "attributes": attrs("datapoint")}]}}]}]}]}
    traces = {"resourceSpans": [{"resource": resource("traces"), "scopeSpans": [{
        "scope": scope("traces"), "spans": [{
            "traceId": secrets.token_hex(16), "spanId": secrets.token_hex(8),
            "name": f"{marker}-span", "kind": 1, "startTimeUnixNano": now,
            "endTimeUnixNano": now, "attributes": attrs("span"),
            "events": [{"timeUnixNano": now, "name": "ev", "attributes": attrs("spanevent")}],
        }]}]}]}
    kept.add(f"{marker}-span")
    bodies = {"logs": logs, "metrics": metrics, "traces": traces}
    return ({k: json.dumps(v).encode() for k, v in bodies.items()}, sent_secrets, kept)


def test_no_secret_leaves_the_collector(collector: Callable[..., Collector]) -> None:
    """Secret-named attributes everywhere in logs, metrics and traces: none reaches the
    archive or the debug exporter's detailed output; the other attributes do."""
    agent = collector("config.yaml", "debug.yaml", name="redact",
                      env={"ENSEMBLE_DEBUG_VERBOSITY": "detailed"})
    marker = f"kept-{secrets.token_hex(4)}"
    bodies, sent_secrets, kept = requests(marker)
    assert len(sent_secrets) >= 80
    for signal, body in bodies.items():
        status, answer = http_request(
            "POST", f"{agent.otlp_http_url}/v1/{signal}", body=body,
            headers={"Content-Type": "application/json"})
        assert status == 200, (signal, status, answer)

    def archived_text() -> str:
        return "".join(agent.archive_path(s).read_text(errors="replace")
                       for s in bodies if agent.archive_path(s).exists())

    # Everything innocuous arrived in the archive and in the debug output ...
    wait_until(lambda: all(v in archived_text() for v in kept), timeout=30,
               message=lambda: f"kept values missing from the archive: "
                               f"{sorted(v for v in kept if v not in archived_text())}")
    wait_until(lambda: all(v in agent.log() for v in kept), timeout=30,
               message=lambda: f"kept values missing from the debug output: "
                               f"{sorted(v for v in kept if v not in agent.log())}")
    agent.stop()  # flush everything before looking for what must not be there
    # ... and no secret value anywhere.
    outputs = {"archive": archived_text(), "debug output and log": agent.log()}
    for where, text in outputs.items():
        leaked = sorted(s for s in sent_secrets if s in text)
        assert not leaked, f"{where} holds {leaked}"
    assert "process.command_args" not in agent.log()
    assert registry.STRATEGY_ID_ATTRIBUTE in outputs["archive"]
