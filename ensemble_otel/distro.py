"""Zero-code wiring: the ``ensemble`` distro and configurator for ``opentelemetry-instrument``.

``opentelemetry-instrument python bot.py`` loads a distro, then a configurator, before the
bot's first line runs (through a ``sitecustomize`` on ``PYTHONPATH``):

- :class:`EnsembleDistro` only sets environment defaults (``os.environ.setdefault``): it
  names the ``ensemble`` resource detector in ``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS`` (a
  registered detector runs only when named there; names already listed are kept), picks the
  ``ensemble`` configurator, and exports traces over OTLP only when an endpoint is set;
- :class:`EnsembleConfigurator` calls :func:`ensemble_otel.configure`, so the telemetry it
  builds is the process-wide one: a later ``configure()`` in the bot returns the same object
  (no second set of readers), and the global meter and logger providers are its providers.
  It replaces the SDK's own configurator; traces get a ``TracerProvider`` with the same
  resource.

Bad settings never stop the bot: the configurator prints one error on stderr naming the
variable and the rule, and ensemble-otel stays off (no files, no export); a later
``configure()`` in the bot raises the same :class:`~ensemble_otel.ConfigError`. Under
systemd it still sends ``READY=1`` (with the error as ``STATUS=``) but never ``WATCHDOG=1``.

Processes started by :mod:`multiprocessing` (spawn and forkserver children, the resource
tracker) inherit ``PYTHONPATH`` and run the ``sitecustomize`` again; they are not configured
automatically (they would share the parent's strategy id and files). Such a child may call
``configure()`` with its own strategy id.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _BaseConfigurator

from ensemble_otel import notify
from ensemble_otel.errors import ConfigError
from ensemble_otel.settings import _otlp_wanted

_log = logging.getLogger("ensemble_otel")

NAME = "ensemble"  # the entry-point name in all three groups
DETECTORS_VAR = "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"
CONFIGURATOR_VAR = "OTEL_PYTHON_CONFIGURATOR"
TRACES_EXPORTER_VAR = "OTEL_TRACES_EXPORTER"
LOGGING_AUTO_VAR = "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"


class EnsembleDistro(BaseDistro):  # type: ignore[misc]
    """Distro ``ensemble`` (select it with ``OTEL_PYTHON_DISTRO=ensemble`` when others exist)."""

    def _configure(self, **kwargs: Any) -> None:
        env = os.environ
        names = [n.strip() for n in env.get(DETECTORS_VAR, "").split(",") if n.strip()]
        if NAME not in names and "*" not in names:
            env[DETECTORS_VAR] = ",".join([*names, NAME])
        env.setdefault(CONFIGURATOR_VAR, NAME)
        env.setdefault(TRACES_EXPORTER_VAR, "otlp" if _otlp_wanted("TRACES", env, None) else "none")
        if env.get(LOGGING_AUTO_VAR, "").strip().lower() == "true":
            env.setdefault("ENSEMBLE_LOGGING_BRIDGE", "true")


class EnsembleConfigurator(_BaseConfigurator):
    """Configurator ``ensemble``: ``ensemble_otel.configure()`` from the environment."""

    def _configure(self, **kwargs: Any) -> None:
        if multiprocessing_helper():
            _log.debug("ensemble-otel: multiprocessing child; not configured automatically")
            return
        if ensemble_tool():
            _log.debug("ensemble-otel: a checking tool, not a bot; not configured")
            return
        import ensemble_otel

        try:
            telemetry = ensemble_otel.configure()
        except ConfigError as exc:
            _report(f"{exc}")
            return
        except OSError as exc:
            _report(f"cannot write under PAPER_TRADING_ROOT: {exc}")
            return
        except Exception as exc:  # the bot runs whatever happens here
            _report(f"start-up failed: {type(exc).__name__}: {exc}")
            return
        if isinstance(telemetry, ensemble_otel.Telemetry):
            try:
                _init_tracing(telemetry.resource)
            except Exception as exc:
                _report(f"tracing not set up: {type(exc).__name__}: {exc}", off=False)


def _report(reason: str, *, off: bool = True) -> None:
    tail = ("; ensemble-otel is off in this process (no files, no export) and the bot runs on. "
            "Fix the setting and restart; ensemble_otel.configure() raises the same error."
            if off else "")
    print(f"ensemble-otel (opentelemetry-instrument): {reason}{tail}", file=sys.stderr,
          flush=True)
    if off:
        # Under systemd (Type=notify) the bot still starts; no watchdog pings follow, since
        # there are no heartbeats: a unit with WatchdogSec= restarts it, as it asked to.
        notify.notify(f"READY=1\nSTATUS=ensemble-otel is off: {reason}")


def multiprocessing_helper() -> bool:
    """True in a process that :mod:`multiprocessing` started with a fresh interpreter."""
    argv = getattr(sys, "orig_argv", sys.argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == "-c":
            return argv[i + 1].lstrip().startswith("from multiprocessing.")
    return "--multiprocessing-fork" in argv


def ensemble_tool() -> bool:
    """True in an ``ensemble-otel`` command other than ``demo`` (a probe, validate, report).

    A liveness probe runs inside the bot's environment (same ``PYTHONPATH``): configuring
    telemetry there would write a fresh heartbeat for the very bot it is checking.
    """
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if len(argv) >= 3 and argv[1] == "-m" and argv[2].startswith("ensemble_otel"):
        return not argv[2].startswith("ensemble_otel.demo")
    for i, arg in enumerate(argv[:2]):
        if os.path.basename(arg) == "ensemble-otel":
            rest = [a for a in argv[i + 1:] if not a.startswith("-")]
            return not rest or rest[0] != "demo"
    return False


class _ParentOnlySpanExporter:
    """Sends spans from the process that built it; a forked child's copy drops them."""

    def __init__(self, inner: Any) -> None:
        from ensemble_otel._process import on_fork_in_child

        self._inner = inner
        self.active = True
        on_fork_in_child(self._forked)

    def _forked(self) -> None:
        self.active = False

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if not self.active:
            return SpanExportResult.SUCCESS
        return self._inner.export(spans)

    def shutdown(self) -> None:
        if self.active:
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if not self.active:
            return True
        return bool(self._inner.force_flush(timeout_millis))


def _init_tracing(resource: Any) -> None:
    """A global TracerProvider with the strategy resource, exporting over OTLP when asked."""
    names = {n.strip().lower() for n in os.environ.get(TRACES_EXPORTER_VAR, "").split(",")}
    if "otlp" not in names:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from ensemble_otel.telemetry import otlp_exporter

    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(
        _ParentOnlySpanExporter(otlp_exporter("TRACES"))))  # type: ignore[arg-type]
    trace.set_tracer_provider(provider)
