"""Print the ConfigMaps that hold the project's collector configs for the Helm values.

The official opentelemetry-collector chart, given ``configMap.existingName``, mounts that
ConfigMap's key ``relay`` as ``/conf/relay.yaml`` and runs ``--config=/conf/relay.yaml``;
the values files mount the other keys (the backend overlays) under
``/etc/otelcol-ensemble/overlays`` and add one ``--config`` per overlay. This script builds
those ConfigMaps from collector/ as they are, so the cluster runs the same files the tests
run::

    python3 deploy/kubernetes/collector_configmaps.py agent   | kubectl apply -n NS -f -
    python3 deploy/kubernetes/collector_configmaps.py gateway | kubectl apply -n NS -f -

Standard library only; the output is a JSON ConfigMap, which kubectl takes as it takes YAML.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLLECTOR = Path(__file__).resolve().parents[2] / "collector"
OVERLAY_DIR = "/etc/otelcol-ensemble/overlays"

# ConfigMap name -> {key: file under collector/}; "relay" is the chart's main config.
CONFIGMAPS: dict[str, dict[str, dict[str, str]]] = {
    "agent": {
        "ensemble-otel-agent": {
            "relay": "config.yaml",
            "gateway-forward.yaml": "backends/gateway-forward.yaml",
        },
    },
    "gateway": {
        "ensemble-otel-gateway": {
            "relay": "gateway.yaml",
            "loki.yaml": "backends/loki.yaml",
            "tempo.yaml": "backends/tempo.yaml",
            "prometheus-remote-write.yaml": "backends/prometheus-remote-write.yaml",
        },
    },
}


def configmap(name: str, files: dict[str, str], namespace: str | None = None) -> dict[str, object]:
    """One ConfigMap with each file of collector/ under its key."""
    metadata: dict[str, object] = {
        "name": name,
        "labels": {"app.kubernetes.io/part-of": "ensemble-otel"},
    }
    if namespace:
        metadata["namespace"] = namespace
    data = {key: (COLLECTOR / path).read_text(encoding="utf-8") for key, path in files.items()}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=sorted(CONFIGMAPS), help="agent or gateway")
    parser.add_argument("--namespace", default=None, help="metadata.namespace to set")
    args = parser.parse_args(argv)
    items = [configmap(name, files, args.namespace)
             for name, files in CONFIGMAPS[args.role].items()]
    doc = items[0] if len(items) == 1 else {"apiVersion": "v1", "kind": "List", "items": items}
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
