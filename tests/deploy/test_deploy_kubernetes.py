"""deploy/kubernetes, offline: manifests against the Kubernetes schemas that PyPI's
kubernetes-validate ships, the Instrumentation against the Operator CRD subset in
deploy/kubernetes/schemas, the Helm values rendered the way the chart's pod template does,
and the liveness probe's command run for real against a heartbeat file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from chart_render import K8S, K8S_VERSION, render_workload, values
from deploy_support import DEPLOY, REPO, load_yaml, load_yaml_documents

from ensemble_otel.settings import DEFAULT_HEARTBEAT_INTERVAL

INSTRUMENTATION_SCHEMA = K8S / "schemas" / "instrumentation-v1alpha1.subset.schema.json"
ENV_REF = re.compile(r"\$\{env:([A-Z0-9_]+)(:-[^}]*)?\}")
# Top-level keys of the opentelemetry-collector chart's values.yaml that these files use.
CHART_KEYS = {
    "mode", "image", "command", "configMap", "extraEnvs", "extraVolumes", "extraVolumeMounts",
    "initContainers", "ports", "resources", "useGOMEMLIMIT", "replicaCount",
    "fullnameOverride", "podAnnotations", "podSecurityContext", "securityContext",
    "podLabels", "service", "networkPolicy",
}


def k8s_validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def configmaps_module() -> ModuleType:
    path = K8S / "collector_configmaps.py"
    spec = importlib.util.spec_from_file_location("collector_configmaps", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated_configmaps(role: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, str(K8S / "collector_configmaps.py"), role, "--namespace", "ensemble"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    doc = json.loads(out)
    return list(doc["items"]) if doc["kind"] == "List" else [doc]


# --- plain manifests ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bot.yaml", "gateway-storage.yaml"])
def test_manifests_validate_strictly(name: str) -> None:
    docs = load_yaml_documents(K8S / name)
    assert docs
    for doc in docs:
        k8s_validate(doc)


def test_strict_validation_catches_a_typo() -> None:
    [_, deployment] = load_yaml_documents(K8S / "bot.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenessProbes"):
        k8s_validate(deployment)


@pytest.mark.parametrize("role", ["agent", "gateway"])
def test_generated_configmaps_hold_the_collector_files(role: str) -> None:
    module = configmaps_module()
    maps = generated_configmaps(role)
    assert [m["metadata"]["name"] for m in maps] == list(module.CONFIGMAPS[role])
    for cm in maps:
        k8s_validate(cm)
        files = module.CONFIGMAPS[role][cm["metadata"]["name"]]
        assert "relay" in cm["data"]
        for key, path in files.items():
            assert cm["data"][key] == (REPO / "collector" / path).read_text(encoding="utf-8")
        assert cm["metadata"]["namespace"] == "ensemble"


def test_configmap_script_rejects_an_unknown_role() -> None:
    result = subprocess.run(
        [sys.executable, str(K8S / "collector_configmaps.py"), "agnet"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "role" in result.stderr and "agnet" in result.stderr


# --- the Instrumentation resource -------------------------------------------------------------


def instrumentation() -> dict[str, Any]:
    [doc] = load_yaml_documents(K8S / "instrumentation.yaml")
    return dict(doc)


def instrumentation_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(INSTRUMENTATION_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)]


def test_instrumentation_matches_the_crd_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(
        json.loads(INSTRUMENTATION_SCHEMA.read_text(encoding="utf-8")))
    assert instrumentation_errors(instrumentation()) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("spec", "pyhton"), {}, "'pyhton' was unexpected"),
        (("spec", "propagators"), ["w3c"], "'w3c' is not one of"),
        (("spec", "sampler", "type"), "sometimes", "'sometimes' is not one of"),
        (("spec", "python", "env"), [{"value": "x"}], "'name' is a required property"),
        (("spec", "exporter", "endpiont"), "http://x", "'endpiont' was unexpected"),
    ],
)
def test_crd_schema_rejects_bad_instrumentations(
    path: tuple[str, ...], value: Any, expected: str
) -> None:
    doc = instrumentation()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = instrumentation_errors(doc)
    assert any(expected in e for e in errors), errors


def test_instrumentation_picks_the_ensemble_distro_and_configurator() -> None:
    env = {e["name"]: e["value"] for e in instrumentation()["spec"]["python"]["env"]}
    distros = {ep.name for ep in entry_points(group="opentelemetry_distro")}
    configurators = {ep.name for ep in entry_points(group="opentelemetry_configurator")}
    assert env["OTEL_PYTHON_DISTRO"] in distros
    assert env["OTEL_PYTHON_CONFIGURATOR"] in configurators
    assert env["OTEL_PYTHON_DISTRO"] == env["OTEL_PYTHON_CONFIGURATOR"] == "ensemble"


def test_bot_pod_asks_for_this_instrumentation() -> None:
    [_, deployment] = load_yaml_documents(K8S / "bot.yaml")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["instrumentation.opentelemetry.io/inject-python"] == (
        instrumentation()["metadata"]["name"])


# --- the bot's probes -----------------------------------------------------------------------


def bot_container() -> dict[str, Any]:
    [_, deployment] = load_yaml_documents(K8S / "bot.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def probe_argv() -> list[str]:
    container = bot_container()
    argv = container["livenessProbe"]["exec"]["command"]
    assert container["startupProbe"]["exec"]["command"] == argv
    return list(argv)


def test_liveness_probe_checks_this_bots_heartbeat() -> None:
    container = bot_container()
    env = {e["name"]: e.get("value") for e in container["env"]}
    argv = probe_argv()
    assert argv[:2] == ["env", "OTEL_SDK_DISABLED=true"]
    assert argv[2:5] == ["ensemble-otel", "heartbeat", "check"]
    flags = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert flags["--root"] == env["PAPER_TRADING_ROOT"]
    assert flags["--strategy"] == env["ENSEMBLE_STRATEGY_ID"]
    assert float(flags["--max-age"]) >= 3 * DEFAULT_HEARTBEAT_INTERVAL
    assert any(m["mountPath"] == flags["--root"] for m in container["volumeMounts"])


def _run_probe(
    root: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = probe_argv()
    argv[argv.index("--root") + 1] = str(root)
    exe_dir = str(Path(sys.executable).parent)  # ensemble-otel from this environment
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENSEMBLE_", "OTEL_")) and k not in ("PAPER_TRADING_ROOT",
                                                                    "PYTHONPATH")}
    env["PATH"] = exe_dir + os.pathsep + env.get("PATH", "")
    env.update(extra_env or {})
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60,
                          check=False)


@pytest.fixture
def running_bot(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A process that configured ensemble-otel for the probe's strategy and stays up."""
    strategy = dict(zip(probe_argv()[5::2], probe_argv()[6::2], strict=True))["--strategy"]
    code = (  # SIGTERM exits cleanly, as a bot (and the demo) does: shutdown beats `stopped`
        "import signal, sys, time, ensemble_otel\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        f"ensemble_otel.configure(root=sys.argv[1], strategy_id={strategy!r})\n"
        "print('up', flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSEMBLE_", "OTEL_"))}
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "up"
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_probe_fails_without_a_heartbeat(tmp_path: Path) -> None:
    result = _run_probe(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "missing" in result.stderr


def test_probe_passes_while_the_bot_runs_and_fails_once_it_stopped(
    tmp_path: Path, running_bot: subprocess.Popen[str]
) -> None:
    alive = _run_probe(tmp_path)
    assert alive.returncode == 0, alive.stdout + alive.stderr
    running_bot.send_signal(signal.SIGTERM)
    running_bot.wait(30)
    assert running_bot.returncode == 0
    stopped = _run_probe(tmp_path)
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "stopped" in stopped.stderr


def test_probe_under_operator_injection_does_not_beat_for_the_bot(tmp_path: Path) -> None:
    """The Operator puts its auto-instrumentation on the container's PYTHONPATH, which the
    exec probe inherits. The probe must still see no heartbeat where the bot wrote none,
    and must not write one itself."""
    import opentelemetry.instrumentation.auto_instrumentation as auto

    injected = {
        "PYTHONPATH": str(Path(auto.__file__).parent),
        "OTEL_PYTHON_DISTRO": "ensemble",
        "OTEL_PYTHON_CONFIGURATOR": "ensemble",
    }
    for e in bot_container()["env"]:
        if "value" in e and "$(" not in e["value"] and e["name"] != "PAPER_TRADING_ROOT":
            injected[e["name"]] = e["value"]
    injected["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens there
    injected["PAPER_TRADING_ROOT"] = str(tmp_path)
    result = _run_probe(tmp_path, injected)
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (tmp_path / "logs" / "heartbeat").exists()


# --- the Helm values --------------------------------------------------------------------------


def test_agent_is_a_daemonset_and_gateway_a_deployment() -> None:
    assert values("agent")["mode"] == "daemonset"
    assert values("gateway")["mode"] == "deployment"


@pytest.mark.parametrize("role", ["agent", "gateway"])
def test_values_use_known_chart_keys(role: str) -> None:
    unknown = set(values(role)) - CHART_KEYS
    assert not unknown, unknown


@pytest.mark.parametrize("role", ["agent", "gateway"])
def test_values_render_a_valid_workload(role: str) -> None:
    k8s_validate(render_workload(values(role)))


@pytest.mark.parametrize("role", ["agent", "gateway"])
def test_values_run_this_projects_collector_image(role: str) -> None:
    v = values(role)
    builder = load_yaml(REPO / "collector" / "builder-config.yaml")
    assert v["command"]["name"] == builder["dist"]["name"]
    assert v["image"]["tag"] == str(builder["dist"]["version"])
    compose = load_yaml(DEPLOY / "compose" / "compose.yaml")
    assert compose["services"]["collector"]["image"].rsplit(":", 1)[0] == v["image"]["repository"]
    dockerfile = (DEPLOY / "compose" / "collector.Dockerfile").read_text(encoding="utf-8")
    assert f"/{v['command']['name']}\n" in dockerfile  # the chart runs /<command.name>


def _config_files(role: str) -> list[Path]:
    """The collector files the pod runs: relay plus each --config overlay, via the ConfigMap."""
    v = values(role)
    module = configmaps_module()
    [(cm_name, files)] = module.CONFIGMAPS[role].items()
    assert v["configMap"] == {"create": False, "existingName": cm_name}
    mounts = {m["name"]: m["mountPath"] for m in v["extraVolumeMounts"]}
    volumes = {vol["name"]: vol for vol in v["extraVolumes"]}
    mounted_keys: dict[str, str] = {}
    for name, vol in volumes.items():
        if vol.get("configMap", {}).get("name") == cm_name:
            for item in vol["configMap"]["items"]:
                assert item["key"] in files, f"{role}: ConfigMap has no key {item['key']}"
                mounted_keys[f"{mounts[name]}/{item['path']}"] = item["key"]
    paths = [REPO / "collector" / files["relay"]]
    for arg in v["command"]["extraArgs"]:
        path = arg.split("=", 1)[1]
        assert path in mounted_keys, f"{role}: {path} is not mounted from {cm_name}"
        paths.append(REPO / "collector" / files[mounted_keys[path]])
    return paths


def test_agent_runs_config_and_gateway_forward() -> None:
    names = [p.relative_to(REPO / "collector").as_posix() for p in _config_files("agent")]
    assert names == ["config.yaml", "backends/gateway-forward.yaml"]


def test_gateway_runs_gateway_with_loki_and_tempo() -> None:
    names = [p.relative_to(REPO / "collector").as_posix() for p in _config_files("gateway")]
    assert names == ["gateway.yaml", "backends/loki.yaml", "backends/tempo.yaml"]


@pytest.mark.parametrize("role", ["agent", "gateway"])
def test_values_set_every_variable_the_configs_need(role: str) -> None:
    v = values(role)
    env = {e["name"]: e.get("value") for e in v["extraEnvs"]}
    used: set[str] = set()
    required: set[str] = set()
    for path in _config_files(role):
        for name, default in ENV_REF.findall(path.read_text(encoding="utf-8")):
            used.add(name)
            if not default:
                required.add(name)
    assert not required - set(env), f"{role}: unset {sorted(required - set(env))}"
    assert not set(env) - used, f"{role}: no config reads {sorted(set(env) - used)}"
    # the chart probes the health check on the pod IP, port 13133
    assert env["ENSEMBLE_HEALTH_ENDPOINT"] == "$(MY_POD_IP):13133"
    # $(VAR) references must name a variable defined before them
    defined = ["MY_POD_IP"]
    for e in v["extraEnvs"]:
        for ref in re.findall(r"\$\(([A-Z0-9_]+)\)", e.get("value", "")):
            assert ref in defined, f"{role}: {e['name']} uses $({ref}) before it is set"
        defined.append(e["name"])


@pytest.mark.parametrize("role", ["agent", "gateway"])
def test_file_variables_point_into_mounted_volumes(role: str) -> None:
    v = values(role)
    mounts = [m["mountPath"] for m in v["extraVolumeMounts"]]
    for e in v["extraEnvs"]:
        if e["name"].endswith(("_FILE", "_DIR")):
            assert any(e["value"].startswith(m + "/") for m in mounts), e


def test_bots_reach_the_agent_on_their_node_through_its_service() -> None:
    """No hostPort: the agent's node-local Service (internalTrafficPolicy Local)."""
    v = values("agent")
    assert v["service"]["enabled"] is True
    assert v["service"]["internalTrafficPolicy"] == "Local"
    name = v["fullnameOverride"]
    bot_env = {e["name"]: e.get("value") for e in bot_container()["env"]}
    assert bot_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        f"http://{name}:{v['ports']['otlp']['servicePort']}")
    exporter = instrumentation()["spec"]["exporter"]["endpoint"]
    assert exporter == f"http://{name}:{v['ports']['otlp-http']['servicePort']}"


def test_agent_forwards_to_the_gateway_service() -> None:
    agent = {e["name"]: e.get("value") for e in values("agent")["extraEnvs"]}
    gateway = values("gateway")
    host, port = agent["ENSEMBLE_GATEWAY_ENDPOINT"].rsplit(":", 1)
    assert host == gateway["fullnameOverride"] == agent["ENSEMBLE_GATEWAY_SERVER_NAME"]
    assert int(port) == gateway["ports"]["otlp"]["servicePort"]


def test_gateway_volume_claim_exists() -> None:
    [pvc] = load_yaml_documents(K8S / "gateway-storage.yaml")
    claims = [vol["persistentVolumeClaim"]["claimName"] for vol in values("gateway")["extraVolumes"]
              if "persistentVolumeClaim" in vol]
    assert claims == [pvc["metadata"]["name"]]
