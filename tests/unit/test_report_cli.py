"""`ensemble-otel report`: arguments, defaults, exit codes, and pages that say what is missing."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from report_synthetic import write_strategy
from test_report_data import page_data

from ensemble_otel.cli import main
from ensemble_otel.report import write_report
from ensemble_otel.report.times import parse_bound

START = datetime(2024, 3, 1, tzinfo=timezone.utc)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_writes_the_page_and_prints_its_path(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_strategy(tmp_path, "s1", start=START, hours=30)
    code, out, err = run(capsys, str(tmp_path))
    assert code == 0
    assert out == f"{tmp_path / 'report.html'}\n"
    assert err == ""
    assert page_data(tmp_path / "report.html")["strategies"][0]["summary"]["buckets"] == 30


def test_root_defaults_to_paper_trading_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_strategy(tmp_path, "s1", start=START, hours=3)
    monkeypatch.setenv("PAPER_TRADING_ROOT", str(tmp_path))
    code, out, _ = run(capsys)
    assert (code, out) == (0, f"{tmp_path / 'report.html'}\n")


def test_root_defaults_to_paper_trading_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    write_strategy(tmp_path / "paper_trading_outputs", "s1", start=START, hours=3)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys)
    assert (code, out) == (0, "paper_trading_outputs/report.html\n")


def test_options_reach_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for sid in ("a", "b", "c"):
        write_strategy(tmp_path, sid, start=START, hours=24 * 5)
    out_file = tmp_path / "sub" / "r.html"
    code, out, _ = run(capsys, str(tmp_path), "--strategy", "c", "--strategy", "a",
                       "--period", "24h", "--from", "2024-03-02", "--to", "2024-03-03",
                       "-o", str(out_file))
    assert (code, out) == (0, f"{out_file}\n")
    data = page_data(out_file)
    assert data["period"] == "24h"
    assert [s["id"] for s in data["strategies"]] == ["c", "a"]
    assert [s["summary"]["first_ts"] for s in data["strategies"]] == ["2024-03-02T00:00:00Z"] * 2
    assert [s["summary"]["buckets"] for s in data["strategies"]] == [2, 2]  # --to: whole day


def test_empty_root_gives_a_page_and_exit_1(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(tmp_path))
    assert code == 1
    assert out == f"{tmp_path / 'report.html'}\n"
    assert "no records under" in err
    assert "Traceback" not in err
    data = page_data(tmp_path / "report.html")
    assert data["strategies"] == []
    (problem,) = data["problems"]
    assert "logs/1h/health_snapshot/<strategy>/" in problem
    assert "logs/heartbeat/<strategy>.json" in problem
    assert 'id="problems"' in (tmp_path / "report.html").read_text()


def test_missing_root_gives_a_page_and_exit_1(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "r.html"
    code, out, err = run(capsys, str(tmp_path / "nowhere"), "-o", str(out_file))
    assert (code, out) == (1, f"{out_file}\n")
    assert "does not exist" in err
    assert "does not exist" in page_data(out_file)["problems"][0]


def test_heartbeat_only_is_shown_but_exit_1(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write_strategy(tmp_path, "s1", start=START, hours=3)
    for p in (tmp_path / "logs/1h").rglob("*.jsonl"):
        p.unlink()
    code, _, err = run(capsys, str(tmp_path))
    assert code == 1
    s = page_data(tmp_path / "report.html")["strategies"][0]
    assert s["heartbeat"]["state"] == "running"
    assert s["notes"] == ["no 1h health snapshot files (logs/1h/health_snapshot/s1/)"]
    assert "no 1h health snapshots to chart for s1" in err


def test_unknown_strategy_is_named_with_the_known_ones(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    write_strategy(tmp_path, "s1", start=START, hours=3)
    code, _, err = run(capsys, str(tmp_path), "--strategy", "s9")
    assert code == 1
    assert "strategy 's9' has no files under" in err and "found: s1" in err


def test_range_with_nothing_in_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_strategy(tmp_path, "s1", start=START, hours=3)
    code, _, _ = run(capsys, str(tmp_path), "--from", "2030-01-01")
    assert code == 1
    assert page_data(tmp_path / "report.html")["strategies"][0]["notes"][0] == (
        "no usable 1h health snapshots in the selection (logs/1h/health_snapshot/s1/)")


@pytest.mark.parametrize(("args", "message"), [
    (["--period", "5m"], "argument --period: invalid choice: '5m'"),
    (["--from", "yesterday"], "argument --from: 'yesterday' is not a date (YYYY-MM-DD)"),
    (["--to", "2024-02-30"], "argument --to: '2024-02-30' is not a date"),
    (["--strategy", "../other"], "argument --strategy: '../other' is not a strategy id"),
    (["--strategy", ""], "argument --strategy: '' is not a strategy id"),
])
def test_bad_arguments_name_the_option_and_the_rule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_from_after_to_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(tmp_path), "--from", "2024-03-02", "--to", "2024-03-01")
    assert (code, out) == (2, "")
    assert "--from must not be after --to" in err
    assert not (tmp_path / "report.html").exists()


def test_an_unwritable_output_is_a_clear_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run(capsys, str(tmp_path), "-o", str(blocker / "r.html"))
    assert (code, out) == (1, "")
    assert err.startswith("ensemble-otel report: cannot write the page:")


@pytest.mark.parametrize(("text", "end", "expected"), [
    ("2024-03-01", False, datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()),
    ("2024-03-01", True, datetime(2024, 3, 2, tzinfo=timezone.utc).timestamp() - 1e-6),
    ("2024-03-01T05:30", False, datetime(2024, 3, 1, 5, 30, tzinfo=timezone.utc).timestamp()),
    ("2024-03-01T05:30:00Z", True, datetime(2024, 3, 1, 5, 30, tzinfo=timezone.utc).timestamp()),
    ("2024-03-01T07:30:00+02:00", False,
     datetime(2024, 3, 1, 5, 30, tzinfo=timezone.utc).timestamp()),
    ("1709251200", False, 1709251200.0),
])
def test_time_bounds(text: str, end: bool, expected: float) -> None:
    assert parse_bound(text, end=end) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"period": "1d"}, "period: '1d' is not one of 1h, 24h"),
    ({"strategies": ["a", "x/y"]}, "strategies: 'x/y' is not a strategy id"),
])
def test_write_report_refuses_bad_arguments(tmp_path: Path, kwargs: dict[str, Any],
                                            message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        write_report(tmp_path, **kwargs)
    assert not (tmp_path / "report.html").exists()


def test_missing_root_is_never_created(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "nowhere"
    code, out, err = run(capsys, str(root))
    assert code == 1 and out == ""
    assert "does not exist" in err and "nothing written" in err
    assert not root.exists()
    with pytest.raises(FileNotFoundError):
        write_report(root)
    assert not root.exists()


def test_page_is_0640_whatever_the_umask_and_links_are_not_followed(tmp_path: Path) -> None:
    import os

    write_strategy(tmp_path, "s1", start=START, hours=3)
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_text("precious\n")
    # the old predictable temp name, and the page itself, as links to the victim
    (tmp_path / f".report.html.{os.getpid()}.tmp").symlink_to(victim)
    (tmp_path / "report.html").symlink_to(victim)
    old = os.umask(0)
    try:
        path = write_report(tmp_path).path
    finally:
        os.umask(old)
    assert victim.read_text() == "precious\n"
    assert not path.is_symlink() and (path.stat().st_mode & 0o777) == 0o640
    assert page_data(path)["strategies"][0]["id"] == "s1"
    leftovers = [p.name for p in tmp_path.glob(".report.html.*.tmp") if not p.is_symlink()]
    assert leftovers == []
