"""A bot replaying history: ensemble-otel's health snapshots against a hand-rolled writer.

Workload: a minimal SMA-crossover bot over backtesting.py's EURUSD hourly bars (5,000), and
over the same prices as 1-minute bars (tiled to 60,000 bars). Each bar the bot updates its
book and hands equity, PnL, traded notional and positions to a sink:

- baseline: the writer a bot author would write by hand: a running peak and drawdown,
  per-hour and per-day sums, one orjson line appended (and flushed) per closed bucket; no
  OTel, no restart safety, no validation;
- ensemble: ``telemetry.health.maybe_emit`` (files, journal, observable instruments);
- bot alone: the same loop with a sink that does nothing (reported, to show the bot's share).

Rounds are interleaved (baseline, ensemble, bot alone, again) and each takes its best of
several; ratios come from the same run. Each round replays the series shifted 400 days
later than the last (bar times must increase; nothing is dropped), into one configured
process. Targets: hourly replay <= 3x the baseline, minute replay <= 1.5x.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import QUICK, Row, fresh_dir, print_rows, row, save

SHIFT = 400 * 86400.0  # each round's bars start this much later than the previous round's
Sink = Callable[..., Any]


def prices() -> tuple[list[float], list[float]]:
    """EURUSD hourly closes and their bar times (unix seconds)."""
    from backtesting.test import EURUSD

    closes = [float(x) for x in EURUSD["Close"]]
    times = [ts.timestamp() for ts in EURUSD.index.tz_localize("UTC")]
    return times, closes


def minute_series(times: list[float], closes: list[float], n: int) -> tuple[list[float],
                                                                            list[float]]:
    """The same prices as 1-minute bars from the first bar's time, tiled to ``n`` bars."""
    t0 = times[0]
    return [t0 + 60.0 * i for i in range(n)], [closes[i % len(closes)] for i in range(n)]


def bot(times: list[float], closes: list[float], sink: Sink, base: list[float]) -> None:
    """SMA(10)/SMA(30) crossover, long or flat, 100,000 units; one sink call per bar."""
    fast_n, slow_n, units = 10, 30, 100_000.0
    cash, position = 10_000.0, 0.0
    fast_sum = slow_sum = 0.0
    offset = base[0]
    for i, (t, price) in enumerate(zip(times, closes, strict=True)):
        fast_sum += price
        slow_sum += price
        if i >= fast_n:
            fast_sum -= closes[i - fast_n]
        if i >= slow_n:
            slow_sum -= closes[i - slow_n]
        traded = 0.0
        if i >= slow_n:
            want = units if fast_sum / fast_n > slow_sum / slow_n else 0.0
            if want != position:
                traded = abs(want - position) * price
                cash -= (want - position) * price
                position = want
        equity = cash + position * price
        sink(offset + t, equity=equity, realized_pnl=cash - 10_000.0,
             unrealized_pnl=position * price, traded_notional=traded, risk_breaches=0,
             risk_warnings=0, open_positions=1 if position else 0)


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class HandRolled:
    """The writer a bot author would write: peak, drawdown, 1h/24h sums, a line per close."""

    def __init__(self, directory: Path) -> None:
        import orjson

        self._dumps = orjson.dumps
        self._opt = orjson.OPT_APPEND_NEWLINE
        self._files = {p: open(directory / f"{p}.jsonl", "ab") for p in ("1h", "24h")}  # noqa: SIM115
        self.peak = 0.0
        self.max_dd = 0.0
        self.open: dict[str, dict[str, Any]] = {}

    def __call__(self, ts: float, *, equity: float, realized_pnl: float,
                 unrealized_pnl: float, traded_notional: float, risk_breaches: int,
                 risk_warnings: int, open_positions: int) -> None:
        if equity > self.peak:
            self.peak = equity
        dd = 1.0 - equity / self.peak
        if dd > self.max_dd:
            self.max_dd = dd
        for period, seconds in (("1h", 3600), ("24h", 86400)):
            start = int(ts // seconds) * seconds
            b = self.open.get(period)
            if b is not None and b["start"] != start:
                self._write(period, b)
                b = None
            if b is None:
                prev = self.open.get(period + "close", equity)
                b = self.open[period] = {"start": start, "bars": 0, "notional": 0.0,
                                         "prev": prev}
            b["bars"] += 1
            b["notional"] += traded_notional
            b["equity"] = equity
            b["dd"] = dd
            b["realized"] = realized_pnl
            b["unrealized"] = unrealized_pnl
            b["positions"] = open_positions

    def _write(self, period: str, b: dict[str, Any]) -> None:
        equity = b["equity"]
        record = {"ts": _iso(b["start"]), "period": period, "equity": equity,
                  "peak_equity": self.peak, "drawdown": b["dd"], "max_drawdown": self.max_dd,
                  "pnl": equity - b["prev"], "turnover": b["notional"] / equity,
                  "traded_notional": b["notional"], "realized_pnl": b["realized"],
                  "unrealized_pnl": b["unrealized"], "open_positions": b["positions"],
                  "bars": b["bars"]}
        self.open[period + "close"] = equity
        f = self._files[period]
        f.write(self._dumps(record, option=self._opt))
        f.flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()


def _nothing(ts: float, **fields: Any) -> None:
    return None


def _time_replay(times: list[float], closes: list[float], sinks: dict[str, Sink],
                 rounds: int) -> dict[str, float]:
    """Best seconds of a whole replay per sink, rounds interleaved, each round later."""
    best = dict.fromkeys(sinks, float("inf"))
    base = [0.0]
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            base[0] = (r + 1) * SHIFT
            for name, sink in sinks.items():
                t0 = time.perf_counter()
                bot(times, closes, sink, base)
                best[name] = min(best[name], time.perf_counter() - t0)
    finally:
        if gc_was:
            gc.enable()
    return best


def main() -> list[Row]:
    import ensemble_otel

    rounds = 3 if QUICK else 7
    hourly_t, hourly_c = prices()
    minute_t, minute_c = minute_series(hourly_t, hourly_c, 12_000 if QUICK else 60_000)
    root = fresh_dir("replay")
    rows: list[Row] = []
    for label, times, closes, target in (("hourly", hourly_t, hourly_c, 3.0),
                                         ("minute", minute_t, minute_c, 1.5)):
        telemetry = ensemble_otel.configure(
            root=root / label, strategy_id=f"replay-{label}", heartbeat_interval=3600,
            otlp_metrics=False, otlp_logs=False)
        (root / label / "hand").mkdir(parents=True)
        hand = HandRolled(root / label / "hand")
        sinks: dict[str, Sink] = {"baseline": hand, "ensemble": telemetry.health.maybe_emit,
                                  "bot alone": _nothing}
        best = _time_replay(times, closes, sinks, rounds)
        bars = telemetry.health.total_bars
        ensemble_otel.shutdown()
        hand.close()
        assert bars == len(times) * rounds, (bars, len(times) * rounds)  # nothing dropped
        n = len(times)
        rows += [
            row("replay", f"{label} ({n:,} bars): bot alone", best["bot alone"] * 1e3, "ms"),
            row("replay", f"{label} ({n:,} bars): bot + hand-rolled writer",
                best["baseline"] * 1e3, "ms"),
            row("replay", f"{label} ({n:,} bars): bot + maybe_emit", best["ensemble"] * 1e3,
                "ms", baseline="hand-rolled writer", base_value=best["baseline"] * 1e3,
                at_most=target),
        ]
    os.sync()
    return rows


if __name__ == "__main__":
    rows = main()
    print_rows(rows)
    save("replay", rows)
