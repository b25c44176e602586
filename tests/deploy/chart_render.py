"""The opentelemetry-collector Helm chart's objects, rendered offline from this project's
values files the way the chart's templates do (only the parts these values touch; the chart
itself is not available offline): the pod (templates/_pod.tpl), its workload, the Service
(templates/service.yaml) and the NetworkPolicy (templates/networkpolicy.yaml).
"""

from __future__ import annotations

from typing import Any

from deploy_support import DEPLOY, load_yaml

K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes minor still commonly run; later ones accept it
VALUES = {"agent": K8S / "collector-agent-values.yaml",
          "gateway": K8S / "collector-gateway-values.yaml"}
CHART_LABELS = {"app.kubernetes.io/name": "opentelemetry-collector"}


def values(role: str) -> dict[str, Any]:
    return dict(load_yaml(VALUES[role]))


def render_pod(v: dict[str, Any]) -> dict[str, Any]:
    """The collector pod the chart's templates/_pod.tpl makes from these values (only the
    parts these values touch; the chart itself is not available offline)."""
    ports = []
    for name, port in v.get("ports", {}).items():
        if port.get("enabled"):
            item = {"name": name, "containerPort": port["containerPort"],
                    "protocol": port.get("protocol", "TCP")}
            if port.get("hostPort"):
                item["hostPort"] = port["hostPort"]
            ports.append(item)
    container = {
        "name": "opentelemetry-collector",
        "command": [f"/{v['command']['name']}"],
        "args": ["--config=/conf/relay.yaml", *v["command"].get("extraArgs", [])],
        "image": f"{v['image']['repository']}:{v['image']['tag']}",
        "imagePullPolicy": v["image"]["pullPolicy"],
        "ports": ports,
        "env": [{"name": "MY_POD_IP",
                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                *v.get("extraEnvs", [])],
        "livenessProbe": {"httpGet": {"path": "/", "port": 13133}},
        "readinessProbe": {"httpGet": {"path": "/", "port": 13133}},
        "resources": v.get("resources", {}),
        "securityContext": v.get("securityContext", {}),
        "volumeMounts": [{"mountPath": "/conf", "name": "opentelemetry-collector-configmap"},
                         *v.get("extraVolumeMounts", [])],
    }
    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": "opentelemetry-collector-configmap",
                     "configMap": {"name": v["configMap"]["existingName"],
                                   "items": [{"key": "relay", "path": "relay.yaml"}]}},
                    *v.get("extraVolumes", [])],
    }
    if v.get("initContainers"):
        spec["initContainers"] = v["initContainers"]
    if v.get("podSecurityContext"):
        spec["securityContext"] = v["podSecurityContext"]
    return spec


def render_workload(v: dict[str, Any]) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "opentelemetry-collector"}
    template = {"metadata": {"labels": {**labels, **v.get("podLabels", {})},
                             "annotations": v.get("podAnnotations", {})},
                "spec": render_pod(v)}
    kind = {"daemonset": "DaemonSet", "deployment": "Deployment"}[v["mode"]]
    spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": template}
    if kind == "Deployment":
        spec["replicas"] = v.get("replicaCount", 1)
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": v.get("fullnameOverride", "ensemble")}, "spec": spec}


def enabled_ports(v: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: port for name, port in v.get("ports", {}).items() if port.get("enabled")}


def render_service(v: dict[str, Any]) -> dict[str, Any] | None:
    """The chart's Service (made in daemonset mode only with service.enabled)."""
    service = v.get("service", {})
    if not service.get("enabled", v["mode"] != "daemonset"):
        return None
    spec: dict[str, Any] = {
        "type": service.get("type", "ClusterIP"),
        "ports": [{"name": name, "port": port["servicePort"], "targetPort": name,
                   "protocol": port.get("protocol", "TCP")}
                  for name, port in enabled_ports(v).items()],
        "selector": CHART_LABELS,
    }
    if service.get("internalTrafficPolicy"):
        spec["internalTrafficPolicy"] = service["internalTrafficPolicy"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": v.get("fullnameOverride", "ensemble")}, "spec": spec}


def render_network_policy(v: dict[str, Any]) -> dict[str, Any] | None:
    """The chart's NetworkPolicy: one rule for every enabled port, from allowIngressFrom
    (from anyone when that is empty), then extraIngressRules."""
    policy = v.get("networkPolicy", {})
    if not policy.get("enabled"):
        return None
    first: dict[str, Any] = {"ports": [{"port": p["containerPort"],
                                        "protocol": p.get("protocol", "TCP")}
                                       for p in enabled_ports(v).values()]}
    if policy.get("allowIngressFrom"):
        first["from"] = policy["allowIngressFrom"]
    spec: dict[str, Any] = {"podSelector": {"matchLabels": CHART_LABELS},
                            "policyTypes": ["Ingress"],
                            "ingress": [first, *policy.get("extraIngressRules", [])]}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": v.get("fullnameOverride", "ensemble")}, "spec": spec}
