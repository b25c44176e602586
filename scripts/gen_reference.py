#!/usr/bin/env python3
"""Generate docs/reference.md from the contract registry (metrics, resource, records).

    python scripts/gen_reference.py           # write docs/reference.md
    python scripts/gen_reference.py --check   # exit 1 when the committed file is stale

A unit test checks the committed file equals :func:`render`, so it cannot drift.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ensemble_otel.contract import registry, schemas

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "docs" / "reference.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return lines


def _rules(kind: registry.RecordKind, field: registry.Field) -> str:
    rules: list[str] = []
    enum = schemas.field_enum(kind, field)
    if enum:
        rules.append("one of " + ", ".join(f"`{v}`" for v in enum))
    elif field.type == "string" and field.format is None:
        rules.append("non-empty")
    if field.format == "date-time":
        rules.append("ISO-8601 UTC (`Z` or `+00:00`)")
    elif field.pattern:
        rules.append(f"matches `{field.pattern}`")
    if field.minimum is not None:
        bound = int(field.minimum) if float(field.minimum).is_integer() else field.minimum
        rules.append(f">= {bound}")
    if field.nullable:
        rules.append("may be null")
    if not field.required:
        rules.append("optional")
    return "; ".join(rules)


def render() -> str:
    """The text of docs/reference.md."""
    out = [
        "# Telemetry reference",
        "",
        "Generated from `ensemble_otel/contract/registry.py` by `scripts/gen_reference.py`;",
        "do not edit by hand. The JSON Schemas of the records are in",
        "`ensemble_otel/contract/schemas/` (generated from the same registry); check files",
        "with `ensemble-otel validate [--strict] PATH...`.",
        "",
        "## Metrics",
        "",
        "Identity (strategy, schema version, environment) is on the resource, not on the",
        "points. Prometheus names are the series after the collector's translation.",
        "",
    ]
    out += _table(
        ["OpenTelemetry name", "instrument", "unit", "Prometheus series", "attributes",
         "description"],
        [[f"`{m.name}`", m.instrument.replace("_", " "), f"`{m.unit}`", f"`{m.prometheus}`",
          ", ".join(f"`{a}`" for a in m.attributes), m.description]
         for m in registry.METRICS],
    )
    out += ["", "## Resource attributes", ""]
    out += _table(["attribute", "meaning"],
                  [[f"`{k}`", v] for k, v in registry.RESOURCE_ATTRIBUTES.items()])
    out += ["", "## Records", "",
            "Files under `PAPER_TRADING_ROOT` (default `./paper_trading_outputs`). JSONL: one",
            "JSON object per line, UTF-8, each line ending in a newline; numbers are finite.",
            ""]
    for kind in registry.RECORD_KINDS:
        out += [
            f"### {kind.name}",
            "",
            f"`{kind.path}`: {kind.description}",
            "",
            f"Schema: `ensemble_otel/contract/schemas/{schemas.file_name(kind)}`. "
            + ("Other fields: the caller's own, free." if kind.additional_fields
               else "No other fields."),
            "",
        ]
        out += _table(["field", "type", "rules", "description"],
                      [[f"`{f.name}`", f.type, _rules(kind, f), f.description]
                       for f in kind.fields])
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale: run `python scripts/gen_reference.py`", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
