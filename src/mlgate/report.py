"""Render mlgate's results for people (text tables, Markdown) and machines (JSON-ready dicts).

Pure functions: data in, strings out. The CLI picks the format; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlgate.lineage import Lineage


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""

    def esc(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(esc(h) for h in headers) + " |"]
    out.append("|" + "|".join(" --- " for _ in headers) + "|")
    out.extend("| " + " | ".join(esc(c) for c in row) + " |" for row in rows)
    return "\n".join(out)


def render_lineage(info: Lineage) -> str:
    """A readable summary of a version's lineage."""
    git = info.git
    if git.present:
        state = "dirty" if git.dirty else "clean" if git.dirty is not None else "unknown"
        git_line = f"{git.commit[:12]} ({state})" + (f" on {git.branch}" if git.branch else "")
        if git.remote:
            git_line += f"  {git.remote}"
    else:
        git_line = "none (not in a git repository)"
    rows: list[list[Any]] = [
        ["model", f"{info.name} version {info.version}"],
        ["aliases", ", ".join(info.aliases) or "-"],
        ["run", info.run_id or "-"],
        ["source", info.source],
        ["git", git_line],
        ["artifact digest", info.artifact_digest or "not recorded (not registered by mlgate)"],
    ]
    for role in sorted(info.data):
        d = info.data[role]
        shape = ""
        if "rows" in d:
            shape = f"  {d['rows']} rows" + (f" x {d['columns']} cols" if "columns" in d else "")
        src = f"  {d['source']}" if "source" in d else ""
        rows.append([f"{role} data", f"{d.get('fingerprint', '?')}{shape}{src}"])
    env = info.environment
    if env.get("python"):
        pk = env.get("packages") or {}
        pk_text = " ".join(f"{k}={v}" for k, v in sorted(pk.items()))
        rows.append(
            ["environment", f"python {env['python']} {env.get('platform') or ''} {pk_text}".strip()]
        )
    if env.get("requirements"):
        rows.append(["requirements", env["requirements"]])
    if info.metrics:
        rows.append(
            ["metrics", ", ".join(f"{k}={_num(v)}" for k, v in sorted(info.metrics.items()))]
        )
    if info.params:
        rows.append(["params", ", ".join(f"{k}={v}" for k, v in sorted(info.params.items()))])
    if info.registered_by:
        rows.append(["registered", f"{info.registered_at} by {info.registered_by}"])
    if info.ci_run_url:
        rows.append(["ci run", info.ci_run_url])
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{str(k).ljust(width)}  {v}" for k, v in rows)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
