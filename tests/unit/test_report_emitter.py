"""The report over files written by the real emitter (ensemble_otel.testing.capture)."""

from __future__ import annotations

import random
from pathlib import Path

from test_report_data import file_records, page_data, unix
from unit_support import at

from ensemble_otel.report import write_report
from ensemble_otel.testing import capture


def test_report_of_the_real_emitters_files(tmp_path: Path) -> None:
    rng = random.Random(7)
    equity = 50_000.0
    with capture(root=tmp_path, strategy_id="real-bot", heartbeat_interval=5.0) as cap:
        cap.events.emit("started", mode="paper")
        for i in range(24 * 3 * 4):  # three days of 15-minute bars
            equity *= 1.0 + rng.gauss(0.0, 0.002)
            cap.health.maybe_emit(
                at(minutes=15 * i), equity=equity,
                traded_notional=rng.choice([0.0, 0.0, 2500.0]),
                risk_warnings=1 if rng.random() < 0.05 else 0,
                risk_breaches=1 if rng.random() < 0.01 else 0,
                realized_pnl=0.0, unrealized_pnl=equity - 50_000.0, open_positions=1,
            )
        cap.health.maybe_emit(at(days=3, minutes=1), equity=equity)  # closes the last hour
        cap.events.emit("stopping")
    for period in ("1h", "24h"):
        result = write_report(tmp_path, tmp_path / f"{period}.html", period=period)
        assert result.ok and result.bad_lines == 0, result
        data = page_data(result.path)
        (s,) = data["strategies"]
        records = file_records(tmp_path, period, "real-bot")
        assert len(records) == {"1h": 72, "24h": 3}[period]
        assert s["columns"]["t"] == [unix(r["ts"]) for r in records]
        assert s["columns"]["equity"] == [r["equity"] for r in records]
        assert s["columns"]["max_drawdown"] == [r["max_drawdown"] for r in records]
        assert s["summary"]["bars"] == sum(r["bars"] for r in records) == 288
        assert s["summary"]["warnings"] == sum(r["risk_warnings"] for r in records)
        assert s["heartbeat"]["strategy_id"] == "real-bot"
        assert s["heartbeat"]["interval_s"] == 5.0
        assert s["events"]["names"] == {"started": 1, "stopping": 1}
