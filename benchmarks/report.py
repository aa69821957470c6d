"""Tables as text (console) and Markdown (RESULTS.md), and the raw results as JSON."""

from __future__ import annotations

import json
import math

import numpy as np

from .common import Section, Table, Target


def fmt(value) -> str:
    """A table cell: numbers to about three significant digits, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if not math.isfinite(x):
            return str(x)
        a = abs(x)
        if a >= 100:
            return f"{x:.0f}"
        if a >= 10:
            return f"{x:.1f}"
        if a >= 1:
            return f"{x:.2f}"
        return f"{x:.3g}"
    return " ".join(str(value).split())


def text_table(table: Table) -> str:
    cells = [[fmt(row.get(col)) for col in table.columns] for row in table.rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(table.columns)]
    widths = [min(w, 60) for w in widths]

    def line(values):
        return "  ".join(v[:w].ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [table.title, line(table.columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _md_cell(value) -> str:
    return fmt(value).replace("|", "\\|")


def markdown_table(table: Table) -> str:
    out = [f"**{table.title}**", "",
           "| " + " | ".join(table.columns) + " |",
           "|" + "|".join("---" for _ in table.columns) + "|"]
    out += ["| " + " | ".join(_md_cell(row.get(c)) for c in table.columns) + " |"
            for row in table.rows]
    return "\n".join(out)


def _met(target: Target) -> str:
    return {True: "met", False: "missed", None: "not measured at this size"}[target.met]


def targets_table(targets: list[Target]) -> Table:
    table = Table("Targets (issue 6)", ["target", "goal", "measured", "result", "detail"])
    for t in targets:
        table.add(target=t.name, goal=t.goal, measured=t.measured, result=_met(t),
                  detail=t.detail)
    return table


def section_text(section: Section) -> str:
    parts = [f"== {section.title} ({section.seconds:.0f} s) =="]
    parts += [text_table(t) for t in section.tables]
    return "\n\n".join(parts)


def markdown(header: dict, machine: dict, versions: dict, targets: list[Target],
             sections: list[Section], analysis: list[str]) -> str:
    lines = ["# bayesgmm benchmarks", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in machine.items()]
    lines += ["", "## Versions", "",
              ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    lines += ["## Targets", "", markdown_table(targets_table(targets)), ""]
    if analysis:
        lines += ["### What bounds the targets", ""] + [f"- {a}" for a in analysis] + [""]
    for section in sections:
        lines += [f"## {section.title}", "", f"Section wall time: {section.seconds:.0f} s. "
                  f"{section.description}", ""]
        for table in section.tables:
            lines += [markdown_table(table), ""]
        if section.notes:
            lines += ["<details><summary>Warnings and notes</summary>", ""]
            lines += [f"- {_md_cell(n)}" for n in dict.fromkeys(section.notes)]
            lines += ["", "</details>", ""]
    return "\n".join(lines)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def to_json(header, machine, versions, targets, sections) -> str:
    doc = {
        "header": header, "machine": machine, "versions": versions,
        "targets": [t.__dict__ for t in targets],
        "sections": {s.key: {"title": s.title, "seconds": s.seconds,
                             "tables": [{"title": t.title, "columns": t.columns,
                                         "rows": t.rows} for t in s.tables],
                             "notes": s.notes} for s in sections},
    }
    return json.dumps(_jsonable(doc), indent=1)
