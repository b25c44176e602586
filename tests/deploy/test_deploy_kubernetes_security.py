"""deploy/kubernetes, offline: every workload runs hardened (container securityContext,
requests and limits), nothing listens on a node's interfaces, the agent admits only the
bots, the gateway's scrape port is not a Service port and only Prometheus may scrape it,
and the gateway checks its token file before it starts.

The Helm values are rendered the way the chart's templates do (chart_render); every object
checked is also validated against the Kubernetes schemas.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from chart_render import (
    K8S,
    K8S_VERSION,
    render_network_policy,
    render_service,
    render_workload,
    values,
)
from deploy_support import DEPLOY, REPO, load_yaml_documents

HARDENED = {
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
}
TOKEN_CHECKER_IN_IMAGE = "/usr/local/bin/check-gateway-tokens"


def workloads(overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Every workload the project ships: the bot Deployment and the rendered collectors."""
    out = {"bot": next(d for d in load_yaml_documents(K8S / "bot.yaml")
                       if d["kind"] == "Deployment")}
    for role in ("agent", "gateway"):
        out[role] = render_workload((overrides or {}).get(role) or values(role))
    return out


def containers(workload: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, container, pod securityContext) for every container and init container."""
    pod = workload["spec"]["template"]["spec"]
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        yield container["name"], container, pod.get("securityContext", {})


def is_root_chown(container: dict[str, Any]) -> bool:
    """The one root container allowed: hands a data directory to the image's user."""
    caps = container.get("securityContext", {}).get("capabilities", {})
    return container.get("command", [""])[0] == "chown" and caps.get("add") == ["CHOWN"]


def hardening_findings(workload: dict[str, Any]) -> list[str]:
    findings = []
    for name, container, pod_context in containers(workload):
        context = container.get("securityContext", {})
        # runAsNonRoot and seccompProfile are inherited from the pod's securityContext
        effective = {**{k: pod_context[k] for k in ("runAsNonRoot", "seccompProfile")
                        if k in pod_context}, **context}
        for key, want in HARDENED.items():
            if context.get(key) is not want:
                findings.append(f"{name}: securityContext.{key} is not {want}")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            findings.append(f"{name}: capabilities do not drop ALL")
        if effective.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            findings.append(f"{name}: seccompProfile is not RuntimeDefault")
        if effective.get("runAsNonRoot") is not True and not is_root_chown(container):
            findings.append(f"{name}: runAsNonRoot is not true")
        if context.get("capabilities", {}).get("add") and not is_root_chown(container):
            findings.append(f"{name}: adds capabilities")
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(kind, {}):
                    findings.append(f"{name}: no {resource} in resources.{kind}")
        for port in container.get("ports", []):
            if "hostPort" in port and port.get("hostIP") != "127.0.0.1":
                findings.append(f"{name}: hostPort {port['hostPort']} on every node interface")
    return findings


@pytest.mark.parametrize("name", ["bot", "agent", "gateway"])
def test_every_container_is_hardened_with_requests_and_limits(name: str) -> None:
    workload = workloads()[name]
    kubernetes_validate.validate(workload, K8S_VERSION, strict=True)
    assert list(containers(workload)), name
    assert hardening_findings(workload) == []


def test_bot_mounts_a_scratch_directory_and_no_api_token() -> None:
    pod = workloads()["bot"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data", "/tmp"}


@pytest.mark.parametrize(
    ("role", "mutate", "finding"),
    [
        ("agent", lambda v: v["securityContext"].pop("readOnlyRootFilesystem"),
         "readOnlyRootFilesystem"),
        ("agent", lambda v: v["ports"]["otlp"].__setitem__("hostPort", 4317), "hostPort 4317"),
        ("gateway", lambda v: v["resources"]["limits"].pop("cpu"), "no cpu in resources.limits"),
        ("gateway", lambda v: v["initContainers"][0]["securityContext"]["capabilities"]
         .__setitem__("add", ["NET_ADMIN"]), "adds capabilities"),
        ("gateway", lambda v: v["podSecurityContext"].pop("seccompProfile")
         and v["securityContext"].pop("seccompProfile"), "seccompProfile"),
    ],
    ids=["writable root", "hostPort", "no cpu limit", "extra capability", "no seccomp"],
)
def test_the_check_finds_a_weakened_workload(role: str, mutate: Any, finding: str) -> None:
    v = copy.deepcopy(values(role))
    mutate(v)
    findings = hardening_findings(workloads({role: v})[role])
    assert any(finding in f for f in findings), findings


def test_agent_admits_only_the_bots() -> None:
    v = values("agent")
    policy = render_network_policy(v)
    assert policy is not None
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    bot_labels = workloads()["bot"]["spec"]["template"]["metadata"]["labels"]
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), f"an ingress rule admits everyone: {rule}"
        for peer in rule["from"]:
            wanted = peer["podSelector"]["matchLabels"]
            assert wanted.items() <= bot_labels.items(), (wanted, bot_labels)
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {4317, 4318}


def test_gateway_scrape_port_is_only_for_prometheus() -> None:
    v = values("gateway")
    service = render_service(v)
    assert service is not None
    kubernetes_validate.validate(service, K8S_VERSION, strict=True)
    assert 8889 not in {p["port"] for p in service["spec"]["ports"]}
    policy = render_network_policy(v)
    assert policy is not None
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    agent_labels = values("agent")["podLabels"]
    scrape_rules = []
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), f"an ingress rule admits everyone: {rule}"
        ports = {p["port"] for p in rule["ports"]}
        if 8889 in ports:
            scrape_rules.append(rule)
            assert ports == {8889}
            for peer in rule["from"]:
                assert peer["podSelector"]["matchLabels"] == {
                    "app.kubernetes.io/name": "prometheus"}
                assert "namespaceSelector" in peer
        else:
            assert ports == {4317, 4318}
            for peer in rule["from"]:
                assert peer["podSelector"]["matchLabels"].items() <= agent_labels.items()
    assert len(scrape_rules) == 1
    annotations = workloads()["gateway"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8889"


def test_gateway_checks_its_tokens_before_it_starts() -> None:
    """The init container runs the token check on the Secret and writes the copy that
    ENSEMBLE_GATEWAY_TOKEN_FILE names; the image carries the tested script there."""
    v = values("gateway")
    [check] = [c for c in v["initContainers"] if c["name"] == "check-tokens"]
    assert check["image"] == f"{v['image']['repository']}:{v['image']['tag']}"
    assert check["command"][:2] == ["/bin/sh", TOKEN_CHECKER_IN_IMAGE]
    source, checked = check["command"][2:]
    env = {e["name"]: e.get("value") for e in v["extraEnvs"]}
    assert env["ENSEMBLE_GATEWAY_TOKEN_FILE"] == checked
    volumes = {vol["name"]: vol for vol in v["extraVolumes"]}
    init_mounts = {m["mountPath"]: m for m in check["volumeMounts"]}
    secret_mount = init_mounts[source.rsplit("/", 1)[0]]
    secret = volumes[secret_mount["name"]]["secret"]
    assert secret["secretName"] == "ensemble-otel-gateway-tokens"
    assert "--from-file=tokens=" in (K8S / "collector-gateway-values.yaml").read_text()
    assert source.rsplit("/", 1)[1] == "tokens"
    copy_mount = init_mounts[checked.rsplit("/", 1)[0]]
    assert "emptyDir" in volumes[copy_mount["name"]]
    main_mounts = {m["mountPath"]: m for m in v["extraVolumeMounts"]}
    assert main_mounts[copy_mount["mountPath"]]["name"] == copy_mount["name"]
    assert main_mounts[copy_mount["mountPath"]]["readOnly"] is True
    # the raw Secret is not mounted in the collector's container: it reads only the copy
    assert secret_mount["name"] not in {m["name"] for m in v["extraVolumeMounts"]}
    dockerfile = (DEPLOY / "compose" / "collector.Dockerfile").read_text(encoding="utf-8")
    assert f"COPY scripts/check-gateway-tokens.sh {TOKEN_CHECKER_IN_IMAGE}\n" in dockerfile
    assert (REPO / "scripts" / "check-gateway-tokens.sh").is_file()
