"""Buckets in detail: a new bucket's fields, what reset and load change, the hour and day
starts, which buckets a bar closes, which bars fall on disk, and when sums stay finite."""

from __future__ import annotations

import pytest

from ensemble_otel.health.buckets import (
    BUCKET_STATE,
    PERIODS,
    Bucket,
    closing,
    on_disk,
    starts,
    sums_stay_finite,
)

DAY = 86400


def _fields(b: Bucket) -> dict[str, object]:
    return {k: getattr(b, k) for k in Bucket.__slots__}


def test_a_new_bucket() -> None:
    assert _fields(Bucket("1h", 3600)) == {
        "bars": 0, "breaches": 0, "first_ts": 0.0, "last_pnl": None, "last_start": None,
        "last_ts": 0.0, "last_turnover": None, "last_written": -1, "notional": 0.0,
        "period": "1h", "prev_close": None, "refused_base": 0, "seconds": 3600, "start": -1,
        "warnings": 0}
    assert PERIODS == (("1h", 3600), ("24h", 86400))


def test_reset_opens_a_bucket_and_keeps_what_its_last_record_said() -> None:
    b = Bucket("24h", DAY)
    b.load({"bars": 3, "notional": 2.5, "breaches": 1, "warnings": 4, "first_ts": 5.0,
            "last_ts": 6.0, "prev_close": 7.0, "last_written": 0, "last_pnl": 1.0,
            "last_turnover": 0.5, "last_start": 0, "refused_base": 2, "start": 0})
    b.reset(DAY)
    assert _fields(b) == {
        "bars": 0, "breaches": 0, "first_ts": 5.0, "last_pnl": 1.0, "last_start": 0,
        "last_ts": 6.0, "last_turnover": 0.5, "last_written": 0, "notional": 0.0,
        "period": "24h", "prev_close": 7.0, "refused_base": 2, "seconds": DAY, "start": DAY,
        "warnings": 0}


def test_load_takes_the_state_keys_present_only() -> None:
    assert BUCKET_STATE == (
        "bars", "breaches", "first_ts", "last_pnl", "last_start", "last_ts", "last_turnover",
        "last_written", "notional", "prev_close", "refused_base", "start", "warnings")
    b = Bucket("1h", 3600)
    b.load({"bars": 2, "period": "24h", "seconds": 1, "other": 3})
    assert (b.bars, b.period, b.seconds, b.start) == (2, "1h", 3600, -1)


@pytest.mark.parametrize(("t", "expected"), [
    (0.0, (0, 0)), (3599.999, (0, 0)), (3600.0, (3600, 0)), (7199.5, (3600, 0)),
    (DAY - 0.5, (DAY - 3600, 0)), (DAY, (DAY, DAY)), (DAY + 3601.0, (DAY + 3600, DAY)),
])
def test_starts(t: float, expected: tuple[int, int]) -> None:
    assert starts(t) == expected
    assert all(type(s) is int for s in starts(t))


def _pair(hour_start: int, hour_bars: int, day_start: int, day_bars: int
          ) -> tuple[Bucket, Bucket]:
    hour, day = Bucket("1h", 3600), Bucket("24h", DAY)
    hour.start, hour.bars, day.start, day.bars = hour_start, hour_bars, day_start, day_bars
    return hour, day


def test_closing() -> None:
    hour, day = _pair(0, 2, 0, 2)
    assert closing(hour, day, 0, 0) == []
    assert closing(hour, day, 3600, 0) == [hour]
    assert closing(hour, day, DAY, DAY) == [hour, day]
    hour, day = _pair(0, 0, 0, 1)  # an hour without bars closes nothing
    assert closing(hour, day, DAY, DAY) == [day]
    hour, day = _pair(0, 1, 0, 0)
    assert closing(hour, day, DAY, DAY) == [hour]


def test_on_disk() -> None:
    hour, day = Bucket("1h", 3600), Bucket("24h", DAY)
    assert not on_disk(hour, day, 0.0)  # nothing written
    hour.last_written = 0
    assert on_disk(hour, day, 0.0) and on_disk(hour, day, 3599.9)
    assert not on_disk(hour, day, 3600.0)
    hour.last_written = 7200
    assert on_disk(hour, day, 10799.0) and not on_disk(hour, day, 10800.0)
    hour.last_written = -1
    day.last_written = 0
    assert on_disk(hour, day, 0.0) and on_disk(hour, day, DAY - 0.5)
    assert not on_disk(hour, day, DAY)
    day.last_written = DAY
    assert on_disk(hour, day, 2 * DAY - 1) and not on_disk(hour, day, 2 * DAY)


def _finite(*, hour_start: int = 0, day_start: int = 0, day_notional: float = 0.0,
            h_bars: int = 1, h_notional: float = 0.0, c_notional: float = 0.0,
            end: float = 3600.0, t: float = 10.0, equity: float = 1.0,
            notional: float = 0.0) -> bool:
    hour, day = Bucket("1h", 3600), Bucket("24h", DAY)
    hour.start, day.start, day.notional = hour_start, day_start, day_notional
    return sums_stay_finite(hour, day, h_bars, h_notional, c_notional, end, t, equity,
                            notional)


def test_sums_within_the_open_hour() -> None:
    assert _finite(h_notional=1e308, notional=0.0)
    assert not _finite(h_notional=1e308, notional=1e308)  # the hour's sum
    assert not _finite(c_notional=1e308, h_notional=1e308)  # the total
    assert not _finite(day_notional=1e308, h_notional=1e308)  # the day's
    assert _finite(day_notional=1e308, c_notional=1e308, h_notional=1e307)
    assert not _finite(h_notional=1e300, equity=1e-10)  # turnover
    assert not _finite(h_notional=1e300, equity=-1e-10)
    assert not _finite(day_notional=1e299, h_notional=1e299, equity=1e-10)  # day turnover
    assert _finite(h_notional=1e300, equity=0.0)  # no turnover at equity 0
    assert _finite(h_notional=1e298, equity=1e-10)
    assert _finite(t=3599.9, h_notional=1e298, notional=1e298, equity=1e-10) is False


def test_sums_after_the_bar_closes_the_hour() -> None:
    # the hour's sum goes to the day and the total; the new hour starts from 0
    # within the day the day's sum is the same either way
    assert not _finite(t=3600.0, h_notional=1e298, notional=1e298, equity=1e-10)
    assert _finite(t=3600.0, h_notional=1e298, notional=1e298, equity=2e-10)
    assert not _finite(t=3600.0, h_notional=1e308, notional=1e308)  # the day's sum
    assert not _finite(t=3600.0, c_notional=1e308, h_notional=1e308)  # the total
    # a bar in the open hour's own hour (the hour of a restored state) folds nothing
    assert not _finite(t=3600.0, hour_start=3600, h_notional=1e308, notional=1e308)
    # no bars in the hour: nothing goes to the day
    assert _finite(t=3600.0, h_bars=0, day_notional=1e300, h_notional=1e308, equity=1e-8)


def test_sums_after_the_bar_closes_the_day() -> None:
    assert _finite(t=DAY, day_notional=1e308, h_notional=1e308, notional=1e307)
    assert not _finite(t=DAY - 1.0, end=DAY, day_notional=1e308, h_notional=1e308,
                       notional=1e307)
    assert not _finite(t=DAY, end=DAY + 1.0, day_notional=1e308, h_notional=1e308,
                       notional=1e307)  # not closing the open hour: nothing resets
    assert _finite(t=DAY, day_notional=1e299, h_notional=1e299, notional=1e298,
                   equity=1e-10)
    assert not _finite(t=DAY, day_start=DAY, day_notional=1e299, h_notional=1e299,
                       notional=1e298, equity=1e-10)


def test_sums_when_the_closing_hour_adds_to_a_big_day() -> None:
    assert not _finite(t=3600.0, day_notional=1e308, h_notional=1e308)  # the day overflows
    assert _finite(t=3600.0, day_notional=1e308, h_notional=1e308, h_bars=0)


def test_a_new_hour_and_a_new_day_start_their_sums_at_zero() -> None:
    tiny = 5e-324  # any sum but zero over this equity is an infinite turnover
    assert _finite(t=3600.0, equity=tiny)
    assert _finite(t=DAY, equity=tiny)
    assert not _finite(t=10.0, equity=tiny, notional=1.0)
