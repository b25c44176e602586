"""Every collector config and overlay combination passes the real binary's `validate`.

Also: the builder manifest holds exactly the components the configs use, by their current
names, every module at one release; a missing required variable is a clear error.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from collector_support import (
    AGENT_CONFIG,
    BACKENDS_DIR,
    COLLECTOR_BINARY,
    COLLECTOR_DIR,
    GATEWAY_CONFIG,
    HOW_TO_GET_COLLECTOR,
    hermetic_env,
    require_binary,
)

pytestmark = pytest.mark.integration

FORWARD = BACKENDS_DIR / "gateway-forward.yaml"
REMOTE_WRITE = BACKENDS_DIR / "prometheus-remote-write.yaml"
LOKI = BACKENDS_DIR / "loki.yaml"
TEMPO = BACKENDS_DIR / "tempo.yaml"
DEBUG = COLLECTOR_DIR / "debug.yaml"
PROMETHEUS_OTLP = BACKENDS_DIR / "prometheus-otlp.yaml"
VICTORIAMETRICS = BACKENDS_DIR / "victoriametrics.yaml"
VICTORIALOGS = BACKENDS_DIR / "victorialogs.yaml"
JAEGER = BACKENDS_DIR / "jaeger.yaml"
RECORDS = BACKENDS_DIR / "records.yaml"
AGENT_OVERLAYS = (REMOTE_WRITE, LOKI, TEMPO, FORWARD)
GATEWAY_OVERLAYS = (REMOTE_WRITE, LOKI, TEMPO)  # a gateway forwards to backends, not gateways
# The Apache-2.0 backends: each alone, all together, on an agent and on a gateway.
BACKEND_OVERLAYS = (PROMETHEUS_OTLP, VICTORIAMETRICS, VICTORIALOGS, JAEGER)


def required_env(tmp_path: Path) -> dict[str, str]:
    """Values for every variable a config or overlay needs (files exist; nothing listens)."""
    token_file = tmp_path / "tokens"
    token_file.write_text("t0ken-for-validate  # comment\n")
    return {
        "ENSEMBLE_REMOTE_WRITE_URL": "http://127.0.0.1:9/api/v1/write",
        "ENSEMBLE_LOKI_OTLP_ENDPOINT": "http://127.0.0.1:9/otlp",
        "ENSEMBLE_TEMPO_ENDPOINT": "127.0.0.1:9",
        "ENSEMBLE_PROMETHEUS_OTLP_ENDPOINT": "http://127.0.0.1:9/api/v1/otlp",
        "ENSEMBLE_VICTORIAMETRICS_ENDPOINT": "http://127.0.0.1:9/opentelemetry",
        "ENSEMBLE_VICTORIALOGS_ENDPOINT": "http://127.0.0.1:9/insert/opentelemetry",
        "ENSEMBLE_JAEGER_ENDPOINT": "127.0.0.1:9",
        "ENSEMBLE_RECORDS_ROOTS": f"{tmp_path}/root-*",
        "ENSEMBLE_GATEWAY_ENDPOINT": "127.0.0.1:9",
        "ENSEMBLE_GATEWAY_TOKEN": "t0ken-for-validate",
        "ENSEMBLE_GATEWAY_TOKEN_FILE": str(token_file),
        "ENSEMBLE_GATEWAY_TLS_CERT_FILE": str(tmp_path / "cert.pem"),
        "ENSEMBLE_GATEWAY_TLS_KEY_FILE": str(tmp_path / "key.pem"),
        "ENSEMBLE_STORAGE_DIR": str(tmp_path / "queue"),
        "ENSEMBLE_ARCHIVE_DIR": str(tmp_path / "archive"),
    }


def validate(configs: Sequence[Path], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    binary = require_binary(COLLECTOR_BINARY, HOW_TO_GET_COLLECTOR)
    argv = [binary, "validate"]
    for config in configs:
        argv += ["--config", str(config)]
    return subprocess.run(argv, env=hermetic_env(env), capture_output=True, text=True,
                          timeout=60, check=False)


def subsets(items: Sequence[Path]) -> Iterable[tuple[Path, ...]]:
    for n in range(len(items) + 1):
        yield from itertools.combinations(items, n)


def _id(configs: Sequence[Path]) -> str:
    return "+".join(c.stem for c in configs)


COMBINATIONS = [
    (AGENT_CONFIG, *extra) for extra in subsets(AGENT_OVERLAYS)
] + [
    (GATEWAY_CONFIG, *extra) for extra in subsets(GATEWAY_OVERLAYS)
] + [
    (AGENT_CONFIG, DEBUG), (AGENT_CONFIG, *AGENT_OVERLAYS, DEBUG),
    (GATEWAY_CONFIG, DEBUG), (GATEWAY_CONFIG, *GATEWAY_OVERLAYS, DEBUG),
] + [
    (base, overlay) for base in (AGENT_CONFIG, GATEWAY_CONFIG) for overlay in BACKEND_OVERLAYS
] + [
    (AGENT_CONFIG, *BACKEND_OVERLAYS, *AGENT_OVERLAYS, DEBUG),
    (GATEWAY_CONFIG, *BACKEND_OVERLAYS, *GATEWAY_OVERLAYS, DEBUG),
    # The records shipper, to VictoriaLogs (its default) in either order.
    (AGENT_CONFIG, VICTORIALOGS, RECORDS), (AGENT_CONFIG, RECORDS, VICTORIALOGS),
    (AGENT_CONFIG, *BACKEND_OVERLAYS, RECORDS, DEBUG),
]


@pytest.mark.parametrize("configs", COMBINATIONS, ids=[_id(c) for c in COMBINATIONS])
def test_combination_validates(configs: tuple[Path, ...], tmp_path: Path) -> None:
    result = validate(configs, required_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_overlay_order_does_not_matter(tmp_path: Path) -> None:
    """Overlays only add named components and pipelines, so any order merges the same."""
    env = required_env(tmp_path)
    for order in itertools.permutations(AGENT_OVERLAYS):
        result = validate((AGENT_CONFIG, *order), env)
        assert result.returncode == 0, (order, result.stderr)


@pytest.mark.parametrize(
    ("configs", "variable", "named"),
    [
        ((AGENT_CONFIG, REMOTE_WRITE), "ENSEMBLE_REMOTE_WRITE_URL", "prometheus_remote_write"),
        ((AGENT_CONFIG, LOKI), "ENSEMBLE_LOKI_OTLP_ENDPOINT", "otlp_http/loki"),
        ((AGENT_CONFIG, TEMPO), "ENSEMBLE_TEMPO_ENDPOINT", "otlp_grpc/tempo"),
        ((AGENT_CONFIG, FORWARD), "ENSEMBLE_GATEWAY_ENDPOINT", "otlp_grpc/gateway"),
        ((GATEWAY_CONFIG,), "ENSEMBLE_GATEWAY_TOKEN_FILE", "bearertokenauth/agents"),
        ((GATEWAY_CONFIG,), "ENSEMBLE_GATEWAY_TLS_CERT_FILE", "tls"),
        ((GATEWAY_CONFIG,), "ENSEMBLE_GATEWAY_TLS_KEY_FILE", "tls"),
    ],
    ids=lambda v: v if isinstance(v, str) else _id(v),
)
def test_missing_required_variable_is_named(
    configs: tuple[Path, ...], variable: str, named: str, tmp_path: Path,
) -> None:
    env = required_env(tmp_path)
    del env[variable]
    result = validate(configs, env)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("configs", "variable", "named"),
    [
        ((AGENT_CONFIG, PROMETHEUS_OTLP), "ENSEMBLE_PROMETHEUS_OTLP_ENDPOINT",
         "otlp_http/prometheus"),
        ((AGENT_CONFIG, VICTORIAMETRICS), "ENSEMBLE_VICTORIAMETRICS_ENDPOINT",
         "otlp_http/victoriametrics"),
        ((AGENT_CONFIG, VICTORIALOGS), "ENSEMBLE_VICTORIALOGS_ENDPOINT",
         "otlp_http/victorialogs"),
        ((AGENT_CONFIG, JAEGER), "ENSEMBLE_JAEGER_ENDPOINT", "otlp_grpc/jaeger"),
    ],
    ids=lambda v: v if isinstance(v, str) else _id(v),
)
def test_backend_overlay_missing_endpoint_is_named(
    configs: tuple[Path, ...], variable: str, named: str, tmp_path: Path,
) -> None:
    env = required_env(tmp_path)
    del env[variable]
    result = validate(configs, env)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


def test_records_through_the_gateway_forward(tmp_path: Path) -> None:
    """records.yaml composes with gateway-forward.yaml: the exporters list comes from env."""
    env = required_env(tmp_path) | {"ENSEMBLE_RECORDS_EXPORTERS": "[otlp_grpc/gateway]"}
    for configs in ((AGENT_CONFIG, FORWARD, RECORDS), (AGENT_CONFIG, RECORDS, FORWARD)):
        result = validate(configs, env)
        assert result.returncode == 0, result.stdout + result.stderr
    # Without a destination it says which exporter is missing.
    result = validate((AGENT_CONFIG, FORWARD, RECORDS), required_env(tmp_path))
    assert result.returncode != 0
    assert "otlp_http/victorialogs" in result.stderr, result.stderr


def test_every_pipeline_starts_with_the_redaction(tmp_path: Path) -> None:
    """The new overlays' pipelines redact first (after the memory limiter, which only
    refuses data): resource/redact, then transform/redact."""
    for path in (*BACKEND_OVERLAYS, RECORDS):
        for name, pipeline in load(path)["service"]["pipelines"].items():
            assert pipeline["processors"][:3] == [
                "memory_limiter", "resource/redact", "transform/redact"], (path.name, name)


def test_victorialogs_stream_is_the_strategy() -> None:
    """One strategy is one stream: the SDK's random service.instance.id is not a stream field."""
    headers = load(VICTORIALOGS)["exporters"]["otlp_http/victorialogs"]["headers"]
    assert headers == {"VL-Stream-Fields": "ensemble.strategy.id"}


def test_forward_needs_a_token(tmp_path: Path) -> None:
    env = required_env(tmp_path)
    del env["ENSEMBLE_GATEWAY_TOKEN"], env["ENSEMBLE_GATEWAY_TOKEN_FILE"]
    result = validate((AGENT_CONFIG, FORWARD), env)
    assert result.returncode != 0
    assert "bearertokenauth/gateway" in result.stderr and "token" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("ENSEMBLE_TEMPO_INSECURE", "maybe", "tls.insecure"),
        ("ENSEMBLE_STORAGE_FSYNC", "sometimes", "fsync"),
        ("ENSEMBLE_COLLECTOR_METRICS_PORT", "not-a-port", "port"),
        ("ENSEMBLE_METRIC_EXPIRATION", "five minutes", "metric_expiration"),
        ("ENSEMBLE_DEBUG_VERBOSITY", "loud", "verbosity"),
    ],
)
def test_bad_value_is_named(variable: str, value: str, field: str, tmp_path: Path) -> None:
    env = required_env(tmp_path) | {variable: value}
    result = validate((AGENT_CONFIG, TEMPO, DEBUG), env)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


# --- the manifest ---------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def used_types(configs: Iterable[Path]) -> dict[str, set[str]]:
    """Component types (the part before '/') that the configs define, per kind."""
    kinds = ("receivers", "processors", "exporters", "extensions", "connectors")
    used: dict[str, set[str]] = {k: set() for k in kinds}
    for path in configs:
        config = load(path)
        for kind in kinds:
            for component_id in config.get(kind) or {}:
                used[kind].add(component_id.split("/", 1)[0])
    return used


def built_types() -> dict[str, set[str]]:
    binary = require_binary(COLLECTOR_BINARY, HOW_TO_GET_COLLECTOR)
    out = subprocess.run([binary, "components"], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    listing = yaml.safe_load(out)
    return {kind: {c["name"] for c in listing.get(kind) or []}
            for kind in ("receivers", "processors", "exporters", "extensions", "connectors")}


ALL_CONFIGS = (AGENT_CONFIG, GATEWAY_CONFIG, DEBUG, *sorted(BACKENDS_DIR.glob("*.yaml")))


def test_binary_has_exactly_the_components_the_configs_use() -> None:
    # Current names only: `components` lists no deprecated aliases (otlp, otlphttp,
    # prometheusremotewrite as exporters), so a config using one fails here.
    assert used_types(ALL_CONFIGS) == built_types()


def test_every_component_defined_is_used_in_a_pipeline() -> None:
    for path in ALL_CONFIGS:
        config = load(path)
        service = config.get("service") or {}
        referenced = set(service.get("extensions") or [])
        for pipeline in (service.get("pipelines") or {}).values():
            for kind in ("receivers", "processors", "exporters"):
                referenced.update(pipeline.get(kind) or [])
        exporters_auth = {
            e.get("auth", {}).get("authenticator")
            for e in (config.get("exporters") or {}).values() if isinstance(e, dict)
        }
        for kind in ("processors", "exporters", "extensions"):
            for component_id in config.get(kind) or {}:
                assert component_id in referenced or component_id in exporters_auth, (
                    f"{path.name}: {kind} {component_id} is defined but not used")


def test_manifest_pins_one_release() -> None:
    manifest = load(COLLECTOR_DIR / "builder-config.yaml")
    versions: dict[str, set[str]] = {"core": set(), "stable": set(), "contrib": set()}
    for kind in ("receivers", "processors", "exporters", "extensions", "providers"):
        for entry in manifest.get(kind) or []:
            module, version = entry["gomod"].split()
            if module.startswith("github.com/open-telemetry/opentelemetry-collector-contrib/"):
                versions["contrib"].add(version)
            elif version.startswith("v1."):
                versions["stable"].add(version)
            else:
                versions["core"].add(version)
    versions["core"].add(manifest["telemetry"]["gomod"].split()[1])
    assert all(len(v) == 1 for v in versions.values()), versions
    (core,) = versions["core"]
    (contrib,) = versions["contrib"]
    (stable,) = versions["stable"]
    assert core == contrib
    # The stable module set is numbered v1.(minor - 94) in the same release (v0.161 / v1.67).
    assert int(stable.split(".")[1]) == int(core.split(".")[1]) - 94
    builder = re.search(r"^BUILDER_VERSION=(\S+)", (COLLECTOR_DIR / "build.sh").read_text(),
                        re.MULTILINE)
    assert builder is not None and builder.group(1) == core
    # The one exception: pkg/stanza (under the file_log receiver) is not served at this
    # release; it is replaced by the previous release's, and nothing else is replaced.
    replaces = manifest.get("replaces") or []
    stanza = "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza"
    previous = f"v0.{int(core.split('.')[1]) - 1}.0"
    assert replaces == [f"{stanza} => {stanza} {previous}"], replaces


def test_distribution_ships_the_synchronous_log_emitter() -> None:
    """Users run `otelcol-ensemble --config ...`: the gate that makes file_log save an
    offset only after the line was handed on is on without a flag."""
    binary = require_binary(COLLECTOR_BINARY, HOW_TO_GET_COLLECTOR)
    out = subprocess.run([binary, "featuregate"], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    [line] = [ln for ln in out.splitlines() if "stanza.synchronousLogEmitter" in ln]
    assert line.split()[1] == "true", out  # columns: ID, Enabled, Stage, Description


def test_forward_overlay_restates_the_agent_extensions() -> None:
    """Lists are replaced on merge: the overlay's extension list must keep the agent's."""
    agent = set(load(AGENT_CONFIG)["service"]["extensions"])
    forward = set(load(FORWARD)["service"]["extensions"])
    assert agent <= forward
    # No other overlay replaces the list (each adds only its own pipelines).
    for path in (REMOTE_WRITE, LOKI, TEMPO, DEBUG, *BACKEND_OVERLAYS, RECORDS):
        assert "extensions" not in (load(path).get("service") or {}), path.name


def test_build_script_is_a_no_op_when_current() -> None:
    binary = Path(require_binary(COLLECTOR_BINARY, HOW_TO_GET_COLLECTOR))
    before = binary.stat().st_mtime_ns
    result = subprocess.run([str(COLLECTOR_DIR / "build.sh")], capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert binary.stat().st_mtime_ns == before, "build.sh rebuilt a current binary"
    assert "building" not in result.stderr


def test_every_overlay_is_in_the_combinations() -> None:
    assert set(BACKENDS_DIR.glob("*.yaml")) == {*AGENT_OVERLAYS, *BACKEND_OVERLAYS, RECORDS}
    assert {p.name for p in COLLECTOR_DIR.glob("*.yaml")} == {
        "builder-config.yaml", AGENT_CONFIG.name, GATEWAY_CONFIG.name, DEBUG.name}
