"""The HTML page: tables and messages written here, charts drawn by page.js with uPlot.

Everything is inlined (uPlot, styles, script, data) and a Content-Security-Policy forbids
any request, so the file opens offline and cannot reach a network.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from string import Template
from typing import Any

import orjson

from .payload import to_script_json
from .times import human_age

_ASSETS = files(__package__)


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _inline_script(js: str) -> str:
    # An inline <script> ends at the first "</script"; the vendored code contains none.
    if "</script" in js.lower():
        raise ValueError("script asset contains '</script'")
    return js


MISSING = "n/a"


def money(v: float | None) -> str:
    return MISSING if v is None else f"{v:,.2f}"


def signed(v: float | None) -> str:
    return MISSING if v is None else f"{v:+,.2f}"


def percent(v: float | None) -> str:
    return MISSING if v is None else f"{v * 100:.2f} %"


def ratio(v: float | None) -> str:
    return MISSING if v is None else f"{v:,.3f}"


def _compact(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode()


def _e(v: object) -> str:
    return escape(str(v), quote=True)


def _heartbeat_cell(hb: dict[str, Any] | None) -> str:
    if hb is None:
        return '<span class="badge bad">no heartbeat</span>'
    state = str(hb.get("state"))
    if hb.get("future"):
        return (f'<span class="badge bad" data-state="{_e(state)}">{_e(state)}, from the '
                f'future</span> <span class="age">last beat {_e(hb["ts"])}: ahead of this '
                'clock, not proof of life</span>')
    if hb["stale"]:
        cls, label = "warn", f"{state}, stale"
    else:
        cls = {"running": "ok", "stopped": "muted"}.get(state, "warn")
        label = state
    return (f'<span class="badge {cls}" data-state="{_e(state)}">{_e(label)}</span> '
            f'<span class="age" title="last beat {_e(hb["ts"])}">'
            f'{_e(human_age(hb["age_s"]))} ago</span>')


def _overview(payload: dict[str, Any]) -> str:
    head = ("<tr><th>Strategy</th><th>Heartbeat</th><th>Last bar</th><th>Buckets</th>"
            "<th>Bars</th><th>Final equity</th><th>Total PnL</th><th>Max drawdown</th>"
            "<th>Total turnover</th><th>Traded notional</th><th>Breaches</th>"
            "<th>Warnings</th></tr>")
    rows = []
    for i, s in enumerate(payload["strategies"]):
        sm = s["summary"]
        name = f'<a href="#strategy-{i}">{_e(s["id"])}</a>'
        if sm is None:
            cells = '<td colspan="10" class="missing">no health snapshots in the selection</td>'
            rows.append(f'<tr data-strategy="{_e(s["id"])}"><td class="name">{name}</td>'
                        f'<td>{_heartbeat_cell(s["heartbeat"])}</td>{cells}</tr>')
            continue
        pnl_cls = "neg" if (sm["total_pnl"] or 0.0) < 0 else "pos"
        cells = "".join((
            f'<td class="when">{_e(sm["last_bar_ts"] or MISSING)}</td>',
            f'<td class="num" data-field="buckets">{sm["buckets"]}</td>',
            f'<td class="num" data-field="bars">{sm["bars"]}</td>',
            f'<td class="num" data-field="final_equity">{money(sm["final_equity"])}</td>',
            f'<td class="num {pnl_cls}" data-field="total_pnl">{signed(sm["total_pnl"])}</td>',
            f'<td class="num" data-field="max_drawdown">{percent(sm["max_drawdown"])}</td>',
            f'<td class="num" data-field="total_turnover">{ratio(sm["total_turnover"])}</td>',
            f'<td class="num" data-field="traded_notional">{money(sm["traded_notional"])}</td>',
            f'<td class="num" data-field="breaches">{sm["breaches"]}</td>',
            f'<td class="num" data-field="warnings">{sm["warnings"]}</td>',
        ))
        rows.append(f'<tr data-strategy="{_e(s["id"])}"><td class="name">{name}</td>'
                    f'<td>{_heartbeat_cell(s["heartbeat"])}</td>{cells}</tr>')
    if not rows:
        return ""
    return (f'<section id="overview"><h2>Summary</h2><table class="grid">'
            f'<thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
            '<p class="hint">Computed from every record in the selection. Max drawdown is '
            "the running maximum since the strategy's first bar; turnover is summed over "
            "buckets.</p></section>")


def _validation(payload: dict[str, Any]) -> str:
    v = payload["validation"]
    cls = "bad" if v["bad"] else "ok"
    text = (f'Read <b data-field="files">{v["files"]}</b> files, '
            f'<b data-field="lines">{v["lines"]}</b> lines; '
            f'<b data-field="bad" class="{cls}-text">{v["bad"]}</b> bad lines skipped.')
    how = f'Lines checked with {_e(v["checked_with"])}.'
    if v["validator_unavailable"]:
        how += f' The contract validator was not used: {_e(v["validator_unavailable"])}.'
    parts = [f'<section id="validation"><h2>Files read</h2><p>{text}</p>'
             f'<p class="hint" id="checked-with">{how}</p>']
    if v["notes"]:
        notes = "".join(f"<li>{_e(n)}</li>" for n in v["notes"])
        parts.append(f'<ul class="notes">{notes}</ul>')
    if v["bad_lines"]:
        listed = len(v["bad_lines"])
        more = f" (first {listed} of {v['bad']})" if listed < v["bad"] else ""
        rows = "".join(
            f'<tr><td class="mono">{_e(b["path"])}:{b["line"]}</td><td>{_e(b["reason"])}</td></tr>'
            for b in v["bad_lines"]
        )
        parts.append(f'<details open><summary>Bad lines{more}</summary><table class="grid" '
                     f'id="bad-lines"><thead><tr><th>file:line</th><th>reason</th></tr></thead>'
                     f'<tbody>{rows}</tbody></table></details>')
    if v["per_file"]:
        rows = "".join(
            f'<tr><td class="mono">{_e(f["path"])}</td><td>{_e(f["kind"])}</td>'
            f'<td class="num">{f["lines"]}</td><td class="num">{f["bad"]}</td></tr>'
            for f in v["per_file"]
        )
        parts.append('<details><summary>Per file</summary><table class="grid"><thead><tr>'
                     '<th>file</th><th>kind</th><th>lines</th><th>bad</th></tr></thead>'
                     f'<tbody>{rows}</tbody></table></details>')
    parts.append("</section>")
    return "".join(parts)


def _events(s: dict[str, Any]) -> str:
    ev = s["events"]
    if not ev["count"]:
        return '<p class="hint">No events in the selection.</p>'
    names = ", ".join(f"{_e(k)}: {n}" for k, n in ev["names"].items())
    meta = {"ts", "event", "strategy_id", "schema_version"}
    rows = "".join(
        f'<tr><td class="mono">{_e(r["ts"])}</td><td>{_e(r["event"])}</td>'
        f'<td class="mono">{_e(_compact({k: v for k, v in r.items() if k not in meta}))}'
        "</td></tr>"
        for r in reversed(ev["latest"])
    )
    return (f'<details class="events"><summary>Events: {ev["count"]} ({names})</summary>'
            f'<table class="grid"><thead><tr><th>time (UTC)</th><th>event</th><th>fields</th>'
            f'</tr></thead><tbody>{rows}</tbody></table>'
            f'<p class="hint">Latest {len(ev["latest"])} shown, newest first.</p></details>')


def _strategy(i: int, s: dict[str, Any], charts: list[dict[str, Any]]) -> str:
    n = len(s["columns"]["t"])
    hb = s["heartbeat"]
    if hb is not None:
        hb_text = (f'Heartbeat: {_heartbeat_cell(hb)} · pid {_e(hb.get("pid", MISSING))} on '
                   f'{_e(hb.get("host", MISSING))} · {_e(hb.get("environment", MISSING))} · '
                   f'schema {_e(hb.get("schema_version", MISSING))}')
    else:
        hb_text = f"Heartbeat: {_heartbeat_cell(None)}"
    sm = s["summary"]
    last_bar = f' · last bar {_e(sm["last_bar_ts"])}' if sm else ""
    notes = "".join(f"<li>{_e(x)}</li>" for x in s["notes"])
    parts = [
        f'<section class="strategy" id="strategy-{i}" data-strategy="{_e(s["id"])}">',
        f'<h2>{_e(s["id"])}</h2><p class="hb">{hb_text}{last_bar}</p>',
        f'<ul class="notes">{notes}</ul>' if notes else "",
    ]
    if n:
        parts.append('<div class="charts">')
        for c in charts:
            parts.append(
                f'<figure class="chart" data-chart="{_e(c["id"])}" data-strategy="{_e(s["id"])}"'
                f' data-points="{n}" data-drawn="0"><figcaption>{_e(c["title"])}</figcaption>'
                '<div class="plot"></div></figure>'
            )
        parts.append("</div>")
    parts.append(_events(s))
    parts.append("</section>")
    return "".join(parts)


def _header(payload: dict[str, Any]) -> str:
    rng = ""
    if payload["from"] or payload["to"]:
        rng = f' · from {_e(payload["from"] or "the start")} to {_e(payload["to"] or "the end")}'
    problems = "".join(f"<li>{_e(p)}</li>" for p in payload["problems"])
    box = (f'<div class="problems" id="problems"><b>Missing:</b><ul>{problems}</ul></div>'
           if problems else "")
    nav = ""
    if len(payload["strategies"]) > 1:
        links = " ".join(f'<a href="#strategy-{i}">{_e(s["id"])}</a>'
                         for i, s in enumerate(payload["strategies"]))
        nav = f'<nav class="strategies">Strategies: {links}</nav>'
    return (f'<header><h1>Ensemble report</h1><p class="meta">{_e(payload["period"])} health '
            f'snapshots under <span class="mono">{_e(payload["root"])}</span>{rng} · generated '
            f'{_e(payload["generated_at"])} · times in UTC</p>{box}{nav}</header>')


def render(payload: dict[str, Any]) -> str:
    """The whole page as one string."""
    charts = payload["charts"]
    body = "".join((
        _header(payload),
        _overview(payload),
        "".join(_strategy(i, s, charts) for i, s in enumerate(payload["strategies"])),
        _validation(payload),
        '<footer>Charts drawn with uPlot '
        f'{_e(payload["uplot_version"])} (MIT, embedded). Drag across a chart to zoom all '
        "charts of a strategy; double-click to reset.</footer>",
    ))
    return Template(_asset("page.html")).substitute(
        title=_e(f"Ensemble report · {payload['root']}"),
        uplot_css=_asset("uPlot.min.css"),
        page_css=_asset("page.css"),
        body=body,
        data=to_script_json(payload),
        uplot_js=_inline_script(_asset("uPlot.iife.min.js")),
        page_js=_inline_script(_asset("page.js")),
    )
