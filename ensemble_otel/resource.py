"""The strategy resource: identity attached to every metric and log record.

The strategy id and schema version in the resource are always the ones written into the
files. A conflicting value in ``OTEL_RESOURCE_ATTRIBUTES`` is overridden, with a warning
naming both values: a dashboard and a JSONL file must never disagree on who a bot is.
"""

from __future__ import annotations

import logging
import uuid

from opentelemetry.sdk.resources import OTELResourceDetector, Resource, ResourceDetector

from ensemble_otel._process import on_fork_in_child
from ensemble_otel._version import __version__
from ensemble_otel.contract.registry import (
    ENVIRONMENT_ATTRIBUTE,
    SCHEMA_VERSION_ATTRIBUTE,
    STRATEGY_ID_ATTRIBUTE,
)
from ensemble_otel.settings import DEFAULT_SERVICE_NAME, Settings, load_settings

_log = logging.getLogger("ensemble_otel")
_instance_id = str(uuid.uuid4())


def _new_instance_id() -> None:
    global _instance_id
    _instance_id = str(uuid.uuid4())


# A forked child is another process: it gets its own service.instance.id.
on_fork_in_child(_new_instance_id)


def instance_id() -> str:
    """This process's ``service.instance.id``."""
    return _instance_id


def strategy_attributes(settings: Settings) -> dict[str, str]:
    """The attributes this package owns, for the current process."""
    return {
        STRATEGY_ID_ATTRIBUTE: settings.strategy_id,
        SCHEMA_VERSION_ATTRIBUTE: settings.schema_version,
        ENVIRONMENT_ATTRIBUTE: settings.environment,
        "service.instance.id": _instance_id,
        "telemetry.distro.name": "ensemble-otel",
        "telemetry.distro.version": __version__,
    }


def build_resource(settings: Settings) -> Resource:
    """Merge the SDK's detectors and ``OTEL_RESOURCE_ATTRIBUTES`` with the strategy identity."""
    ours = strategy_attributes(settings)
    from_env = OTELResourceDetector().detect().attributes
    for key in (STRATEGY_ID_ATTRIBUTE, SCHEMA_VERSION_ATTRIBUTE):
        if key in from_env and from_env[key] != ours[key]:
            _log.warning(
                "OTEL_RESOURCE_ATTRIBUTES sets %s=%r but the strategy settings say %r; "
                "using %r so that metrics, logs and files agree",
                key, from_env[key], ours[key], ours[key],
            )
    service_from_settings = settings.service_name != DEFAULT_SERVICE_NAME
    if service_from_settings or "service.name" not in from_env:
        ours["service.name"] = settings.service_name
    return Resource.create(ours)


class EnsembleResourceDetector(ResourceDetector):
    """Resource detector ``ensemble`` (entry point group ``opentelemetry_resource_detector``).

    It runs only when named in ``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS``; the ``ensemble``
    distro adds it there. Bad settings make it return an empty resource (the error is
    reported by whoever configures the package).
    """

    def detect(self) -> Resource:
        try:
            settings = load_settings()
        except ValueError:
            if self.raise_on_error:
                raise
            return Resource.get_empty()
        attrs = strategy_attributes(settings)
        if settings.service_name != DEFAULT_SERVICE_NAME:
            attrs["service.name"] = settings.service_name
        return Resource(attrs)
