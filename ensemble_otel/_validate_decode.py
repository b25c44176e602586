"""Decoding the lines of a range into records: all at once when they are good (the common
case), else line by line, grouped by record kind (told by a marker, else by the fields).

Lines that fail to decode are left out here; the range checker diagnoses them one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import compress
from operator import not_
from typing import Any

from ensemble_otel import _validate_rules as rules

Decoded = tuple[list[Any], list[int]]  # records and their line indices


def is_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 (ASCII, the usual case, is checked several times faster)."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def bad_lines(n: int, good_lists: list[list[int]]) -> list[int]:
    good = sum(len(g) for g in good_lists)
    if good == n:
        return []
    seen = set().union(*good_lists) if good_lists else set()
    return [i for i in range(n) if i not in seen]


def decode_all(lines: list[bytes], decode: Callable[[bytes], Any], utf8_ok: bool
               ) -> Decoded:
    """Decode every line; (records, their line indices). Failing lines are left out."""
    n = len(lines)
    if utf8_ok:
        try:
            return list(map(decode, lines)), list(range(n))  # all good: the common case
        except Exception:  # some line is bad: go line by line below
            pass
    recs: list[Any] = []
    idx: list[int] = []
    add_rec, add_idx = recs.append, idx.append
    start = j = 0
    while start < n:
        try:
            if utf8_ok:
                for j in range(start, n):
                    add_rec(decode(lines[j]))
                    add_idx(j)
            else:
                for j in range(start, n):
                    line = lines[j]
                    line.decode("utf-8")
                    add_rec(decode(line))
                    add_idx(j)
            break
        except Exception:  # any failure is diagnosed later, line by line
            start = j + 1
    return recs, idx


SNIFF_WINDOW = 64  # bytes: where the package's writers put a record's kind marker


def decode_sniffed(lines: list[bytes], utf8_ok: bool) -> dict[str, Decoded]:
    """Decode lines of any kind: grouped by the sniffed kind, else told by their fields.

    Sniffing looks for each kind's marker in the first SNIFF_WINDOW bytes of a line (the
    package writes it second, after ts), then anywhere in the lines still unclaimed.
    """
    out: dict[str, Decoded] = {}
    rest = list(range(len(lines)))
    failed: list[int] = []
    for window in (SNIFF_WINDOW, None):
        for needle, kind in rules.SNIFF:
            if not rest:
                break
            everything = len(rest) == len(lines)
            if window is not None:
                flags = ([line.find(needle, 0, window) >= 0 for line in lines] if everything
                         else [lines[i].find(needle, 0, window) >= 0 for i in rest])
            else:
                flags = [needle in lines[i] for i in rest]
            mine = list(compress(rest, flags))
            if not mine:
                continue
            rest = [] if len(mine) == len(rest) else list(compress(rest, map(not_, flags)))
            group = lines if everything and not rest else [lines[i] for i in mine]
            recs, local = decode_all(group, rules.record_decoder(kind).decode, utf8_ok)
            if len(local) == len(mine):
                idx = mine
            else:
                idx = [mine[k] for k in local]
                failed.extend(set(mine).difference(idx))
            got = out.setdefault(kind, ([], []))
            got[0].extend(recs)
            got[1].extend(idx)
    failed.extend(rest)
    unsorted = {kind for kind, (_, idx) in out.items() if idx != sorted(idx)}
    for i in sorted(failed):
        unsorted.update(_decode_exact(lines[i], i, out))
    for kind in unsorted:
        recs, idx = out[kind]
        order = sorted(range(len(idx)), key=idx.__getitem__)
        out[kind] = ([recs[k] for k in order], [idx[k] for k in order])
    return out


def _decode_exact(line: bytes, i: int, out: dict[str, Decoded]
                  ) -> tuple[str, ...]:
    """Decode a line as the kind its fields tell; returns the kind it was added to."""
    obj, _ = rules.parse(line)
    if obj is None:
        return ()
    kind = rules.kind_of(obj)
    if kind is None:
        return ()
    try:
        rec = rules.record_decoder(kind).decode(line)
    except Exception:  # diagnosed later
        return ()
    recs, idx = out.setdefault(kind, ([], []))
    recs.append(rec)
    idx.append(i)
    return (kind,)
