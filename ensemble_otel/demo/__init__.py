"""The demo paper bot: real market data replayed through an instrumented strategy.

``ensemble-otel demo`` (``make demo``) replays backtesting.py's bundled EUR/USD hourly or
GOOG daily bars (nothing is downloaded) through an SMA-crossover strategy with paper fills.
The bot uses only the public API: ``ensemble_otel.configure()``, ``telemetry.health.maybe_emit``
and ``telemetry.events.emit``.

- :mod:`ensemble_otel.demo.data`: the bars;
- :mod:`ensemble_otel.demo.strategy`: the signal (pure, no I/O);
- :mod:`ensemble_otel.demo.broker`: paper account, fills, risk limits;
- :mod:`ensemble_otel.demo.bot`: the bar loop and its telemetry;
- :mod:`ensemble_otel.demo.cli`: the ``demo`` subcommand.
"""
