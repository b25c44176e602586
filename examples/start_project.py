"""start_project.py: a bot's entry point, wired to ensemble-otel with as little as possible.

Zero-code (the bot's code never mentions ensemble-otel; identity and heartbeat only)::

    OTEL_PYTHON_DISTRO=ensemble ENSEMBLE_STRATEGY_ID=example \\
        opentelemetry-instrument python examples/start_project.py --plain

The same, plus equity and events: the bot asks for the telemetry that
``opentelemetry-instrument`` already configured (``configure()`` returns that same object;
without ``opentelemetry-instrument`` it configures from the environment)::

    OTEL_PYTHON_DISTRO=ensemble ENSEMBLE_STRATEGY_ID=example \\
        opentelemetry-instrument python examples/start_project.py

Or with no wrapper at all::

    ENSEMBLE_STRATEGY_ID=example python examples/start_project.py

Files go under ``PAPER_TRADING_ROOT`` (default ``./paper_trading_outputs``). The prices are
a seeded random walk so that the example needs nothing but ensemble-otel.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

START = 1_704_067_200.0  # 2024-01-01T00:00:00Z, bar time of the first bar


@dataclass
class Book:
    """A one-instrument paper book: cash, position, equity at the last price."""

    cash: float = 10_000.0
    position: float = 0.0
    price: float = 100.0

    @property
    def equity(self) -> float:
        return self.cash + self.position * self.price

    def trade(self, qty: float) -> float:
        """Buy (qty > 0) or sell at the last price; returns the traded notional."""
        self.cash -= qty * self.price
        self.position += qty
        return abs(qty) * self.price


def bars(n: int, seed: int = 7) -> Iterator[tuple[float, float]]:
    """(bar time, close) for n one-minute bars of a seeded random walk."""
    rng = random.Random(seed)
    price = 100.0
    for i in range(n):
        price *= 1.0 + rng.gauss(0.0, 0.002)
        yield START + 60.0 * i, price


def trade(n: int, pause: float, on_bar: Callable[..., Any] | None,
          on_event: Callable[..., Any] | None) -> Book:
    """The bot: buy when the price is below its running mean, sell above. Knows no telemetry."""
    book = Book()
    mean = None
    for ts, close in bars(n):
        book.price = close
        mean = close if mean is None else 0.9 * mean + 0.1 * close
        target = 10.0 if close < mean else 0.0
        notional = 0.0
        if target != book.position:
            qty = target - book.position
            notional = book.trade(qty)
            if on_event is not None:
                on_event("order_filled", side="buy" if qty > 0 else "sell", qty=abs(qty),
                         price=round(close, 4))
        if on_bar is not None:
            on_bar(ts, equity=book.equity, traded_notional=notional,
                   open_positions=1 if book.position else 0)
        time.sleep(pause)
    return book


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=240, help="one-minute bars (default 240)")
    parser.add_argument("--pause", type=float, default=0.02,
                        help="wall seconds between bars (default 0.02)")
    parser.add_argument("--plain", action="store_true",
                        help="do not import ensemble_otel: zero-code identity + heartbeat only")
    args = parser.parse_args(argv)

    # systemd and the smoke harness stop a bot with SIGTERM: exit normally, so that the
    # telemetry's shutdown runs (it writes the 'stopped' beat and sends STOPPING=1)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

    if args.plain:
        book = trade(args.bars, args.pause, None, None)
    else:
        import ensemble_otel

        # Under opentelemetry-instrument this returns the telemetry configured before this
        # script started (same settings: the environment); otherwise it configures it now.
        telemetry = ensemble_otel.configure()
        book = trade(args.bars, args.pause, telemetry.health.maybe_emit,
                     telemetry.events.emit)
    print(f"done: {args.bars} bars, equity {book.equity:,.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
