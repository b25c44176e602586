"""deploy/compose, offline: the compose file against the Compose Specification's schema,
every file a service uses exists, and the services are wired to each other consistently.

No container runs here (no Docker engine): see deploy/README.md for what that leaves out.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import DEPLOY, REPO, load_yaml
from integration_gate import require_binary

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
SERVICES = {"bot", "collector", "prometheus", "grafana", "loki", "tempo"}
ENV_REF = re.compile(r"\$\{env:([A-Z0-9_]+)(:-[^}]*)?\}")


def compose() -> dict[str, Any]:
    return dict(load_yaml(COMPOSE_FILE))


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    exe = require_binary(
        str(Path(sys.executable).parent / "check-jsonschema"),
        "pip install -e '.[dev]' (check-jsonschema is in the dev extra)",
    )
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_compose_file_matches_the_compose_specification() -> None:
    result = check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda d: d["services"]["bot"].__setitem__("restart_policy", "always"), "restart_policy"),
        (lambda d: d["services"]["grafana"].__setitem__("ports", "3000"), "ports"),
    ],
    ids=["unknown service key", "ports not a list"],
)
def test_schema_check_rejects_a_broken_compose_file(
    tmp_path: Path, mutation: Any, expected: str
) -> None:
    doc = compose()
    mutation(doc)
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = check_jsonschema(broken)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


def test_the_stack_has_its_services() -> None:
    assert set(compose()["services"]) == SERVICES


def _bind_sources(service: dict[str, Any]) -> list[tuple[Path, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append(((COMPOSE_DIR / source).resolve(), target))
    return out


def test_every_mounted_path_exists() -> None:
    services = compose()["services"]
    checked = 0
    for name, service in services.items():
        for source, target in _bind_sources(service):
            assert source.exists(), f"{name}: mounts missing {source} at {target}"
            assert REPO in source.parents, f"{name}: {source} is outside the repository"
            checked += 1
    assert checked >= 10


def test_named_volumes_are_declared() -> None:
    doc = compose()
    declared = set(doc.get("volumes", {}))
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"


def _dockerfile(service: dict[str, Any]) -> tuple[Path, Path]:
    build = service["build"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    return context, context / build["dockerfile"]


def _copy_sources(dockerfile: Path) -> list[str]:
    """Sources of COPY/ADD instructions that read the build context (not --from=stage)."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    sources: list[str] = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0].upper() not in {"COPY", "ADD"}:
            continue
        args = words[1:]
        if any(a.startswith("--from") for a in args):
            continue
        args = [a for a in args if not a.startswith("--")]
        sources.extend(args[:-1])
    return sources


@pytest.mark.parametrize("name", ["bot", "collector"])
def test_built_images_have_their_files(name: str) -> None:
    service = compose()["services"][name]
    context, dockerfile = _dockerfile(service)
    assert context == REPO
    assert dockerfile.is_file(), dockerfile
    sources = _copy_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing from the context"
    for source in sources:
        assert (context / source).exists(), f"{dockerfile.name}: COPY {source} is missing"
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    allowed = [line[1:].rstrip("/") for line in ignore.read_text().splitlines()
               if line.startswith("!")]
    for source in sources:
        assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), (
            f"{ignore.name} hides {source}")


def test_collector_image_is_built_with_the_builder_in_two_stages() -> None:
    _, dockerfile = _dockerfile(compose()["services"]["collector"])
    text = dockerfile.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(stages) == 2
    assert "RUN ./build.sh" in text
    assert "COPY --from=build /src/collector/_build/otelcol-ensemble" in text
    builder = load_yaml(REPO / "collector" / "builder-config.yaml")
    assert builder["dist"]["name"] == "otelcol-ensemble"
    # the Go image must satisfy the go directive the builder writes (GOTOOLCHAIN=local)
    go_image = re.match(r"golang:(\d+\.\d+)", stages[0])
    assert go_image, stages[0]
    go_mod = REPO / "collector" / "_build" / "go.mod"
    if go_mod.exists():
        want = re.search(r"^go (\d+)\.(\d+)", go_mod.read_text(), flags=re.MULTILINE)
        assert want
        have = tuple(int(x) for x in go_image.group(1).split("."))
        assert have >= (int(want.group(1)), int(want.group(2))), (have, want.group(0))


def _collector_configs() -> list[Path]:
    """The collector's --config files, resolved through the service's mounts."""
    service = compose()["services"]["collector"]
    mounts = {target: source for source, target in _bind_sources(service)}
    configs = []
    for arg in service["command"]:
        assert arg.startswith("--config=")
        path = arg.split("=", 1)[1]
        assert path in mounts, f"collector config {path} is not mounted from collector/"
        configs.append(mounts[path])
    return configs


def test_collector_runs_the_project_configs_with_loki_and_tempo() -> None:
    configs = _collector_configs()
    collector_dir = REPO / "collector"
    assert configs[0] == collector_dir / "config.yaml"
    assert set(configs[1:]) == {collector_dir / "backends" / "loki.yaml",
                                collector_dir / "backends" / "tempo.yaml"}


def test_collector_gets_every_variable_its_configs_require() -> None:
    env = compose()["services"]["collector"]["environment"]
    required = set()
    used = set()
    for config in _collector_configs():
        for name, default in ENV_REF.findall(config.read_text(encoding="utf-8")):
            used.add(name)
            if not default:
                required.add(name)
    assert required, "the overlays have required variables; the parse found none"
    missing = required - set(env)
    assert not missing, f"collector env lacks {sorted(missing)}"
    unknown = set(env) - used
    assert not unknown, f"collector env sets variables no config reads: {sorted(unknown)}"


def _effective(variable: str) -> str:
    """The value the collector sees: the service's env, else the configs' default."""
    env = compose()["services"]["collector"]["environment"]
    if variable in env:
        return str(env[variable])
    for config in _collector_configs():
        for name, default in ENV_REF.findall(config.read_text(encoding="utf-8")):
            if name == variable and default:
                return default[2:]
    raise AssertionError(f"{variable}: neither set nor defaulted")


def _port(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[1]


def test_services_reach_each_other_on_the_configured_ports() -> None:
    services = compose()["services"]
    env = services["collector"]["environment"]
    prom = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    assert f"collector:{_port(env['ENSEMBLE_PROMETHEUS_ENDPOINT'])}" in targets
    assert f"collector:{_effective('ENSEMBLE_COLLECTOR_METRICS_PORT')}" in targets
    assert env["ENSEMBLE_COLLECTOR_METRICS_HOST"] == "0.0.0.0"
    bot_env = services["bot"]["environment"]
    assert bot_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        f"http://collector:{_port(env['ENSEMBLE_OTLP_GRPC_ENDPOINT'])}")
    assert bot_env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["ENSEMBLE_LOKI_OTLP_ENDPOINT"].startswith("http://loki:3100/")
    assert env["ENSEMBLE_TEMPO_ENDPOINT"] == "tempo:4317"
    tempo = load_yaml(COMPOSE_DIR / "tempo.yaml")
    assert _port(tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]) \
        == "4317"
    loki = load_yaml(COMPOSE_DIR / "loki.yaml")
    assert loki["server"]["http_listen_port"] == 3100
    # Prometheus finds the rule file beside its config, as mounted
    mounts = {t: s for s, t in _bind_sources(services["prometheus"])}
    config_dir = Path("/etc/prometheus/prometheus.yml").parent
    for rule_file in prom["rule_files"]:
        assert str(config_dir / rule_file) in mounts, rule_file


def test_bot_health_check_is_the_heartbeat_check() -> None:
    bot = compose()["services"]["bot"]
    test = bot["healthcheck"]["test"]
    assert test[:4] == ["CMD", "ensemble-otel", "heartbeat", "check"]
    args = dict(zip(test[4::2], test[5::2], strict=True))
    assert args["--root"] == bot["environment"]["PAPER_TRADING_ROOT"]
    assert args["--strategy"] == bot["environment"]["ENSEMBLE_STRATEGY_ID"]
    # stale after three metric exports at the configured interval, at least
    export_s = int(bot["environment"]["OTEL_METRIC_EXPORT_INTERVAL"]) / 1000
    assert float(args["--max-age"]) >= 3 * export_s


def test_published_ports_listen_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_images_are_pinned() -> None:
    for name, service in compose()["services"].items():
        image = service.get("image", "")
        if "build" in service:
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: pin {image}"


# --- hardening ---------------------------------------------------------------------------------


def hardening_findings(doc: dict[str, Any]) -> list[str]:
    """Every service: read-only root, no capabilities, no-new-privileges, CPU and memory
    limits."""
    findings = []
    for name, service in doc["services"].items():
        if service.get("read_only") is not True:
            findings.append(f"{name}: read_only is not true")
        if service.get("cap_drop") != ["ALL"]:
            findings.append(f"{name}: cap_drop is not [ALL]")
        if service.get("cap_add"):
            findings.append(f"{name}: adds capabilities {service['cap_add']}")
        if "no-new-privileges:true" not in service.get("security_opt", []):
            findings.append(f"{name}: security_opt lacks no-new-privileges:true")
        if service.get("privileged"):
            findings.append(f"{name}: privileged")
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        for key in ("cpus", "memory"):
            if not limits.get(key):
                findings.append(f"{name}: no {key} limit")
    return findings


def test_every_service_is_hardened_with_limits() -> None:
    doc = compose()
    assert set(doc["services"]) == SERVICES
    assert hardening_findings(doc) == []


@pytest.mark.parametrize(
    ("mutation", "finding"),
    [
        (lambda s: s["loki"].pop("read_only"), "loki: read_only"),
        (lambda s: s["tempo"].__setitem__("cap_drop", ["NET_RAW"]), "tempo: cap_drop"),
        (lambda s: s["bot"].__setitem__("security_opt", []), "bot: security_opt"),
        (lambda s: s["grafana"]["deploy"]["resources"]["limits"].pop("memory"),
         "grafana: no memory limit"),
        (lambda s: s["collector"].__setitem__("cap_add", ["SYS_ADMIN"]),
         "collector: adds capabilities"),
    ],
    ids=["writable root", "capabilities kept", "new privileges", "no memory limit", "cap_add"],
)
def test_the_check_finds_a_weakened_service(mutation: Any, finding: str) -> None:
    doc = compose()
    mutation(doc["services"])
    assert any(f.startswith(finding) for f in hardening_findings(doc)), hardening_findings(doc)


def test_grafana_has_no_default_password_and_no_anonymous_access() -> None:
    doc = compose()
    grafana = doc["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # never a password in the file
    [secret] = grafana["secrets"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == f"/run/secrets/{secret}"
    source = (COMPOSE_DIR / doc["secrets"][secret]["file"]).resolve()
    assert COMPOSE_DIR in source.parents
    relative = source.relative_to(REPO).as_posix()
    # the real file is ignored by git and not tracked; its .example is committed
    git = require_binary("git", "apt-get install git")
    ignored = subprocess.run([git, "check-ignore", "--no-index", "-q", relative], cwd=REPO,
                             check=False, timeout=30)
    assert ignored.returncode == 0, f"{relative} is not in .gitignore"
    tracked = subprocess.run([git, "ls-files", "--error-unmatch", relative], cwd=REPO,
                             capture_output=True, check=False, timeout=30)
    assert tracked.returncode != 0, f"{relative} is committed"
    example = source.with_name(source.name + ".example")
    assert example.is_file()
    assert subprocess.run([git, "check-ignore", "--no-index", "-q",
                           example.relative_to(REPO).as_posix()], cwd=REPO, check=False,
                          timeout=30).returncode == 1
    assert len(example.read_text(encoding="utf-8").splitlines()) == 1
