"""Render mlgate's results for people (text tables, Markdown) and machines (JSON-ready dicts).

Pure functions: data in, strings out. The CLI picks the format; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlgate.lineage import GIT_SOURCE_TEXT, Lineage

_FROM_RUN = "  [read from the MLflow run; not recorded by mlgate]"


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
        state = "dirty" if git.dirty else "clean" if git.dirty is not None else "dirty: unknown"
        git_line = f"{git.commit[:12]} ({state})" + (f" on {git.branch}" if git.branch else "")
        if git.remote:
            git_line += f"  {git.remote}"
        if info.git_source in GIT_SOURCE_TEXT and "git" not in info.from_run:
            git_line += f"  ({GIT_SOURCE_TEXT[info.git_source]})"
    elif info.git_source == "checkout-at-registration" or info.registered_by:
        git_line = "none (not in a git repository)"
    else:
        git_line = "not recorded (neither mlgate nor the MLflow run recorded a commit)"
    if "git" in info.from_run:
        git_line += _FROM_RUN
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
        parts = [f"python {env['python']}", env.get("platform") or "", pk_text]
        rows.append(["environment", " ".join(p for p in parts if p)])
    if env.get("requirements"):
        rows.append(["requirements", env["requirements"]])
    if info.metrics:
        text = ", ".join(f"{k}={_num(v)}" for k, v in sorted(info.metrics.items()))
        rows.append(["metrics", text + (_FROM_RUN if "metrics" in info.from_run else "")])
    if info.params:
        text = ", ".join(f"{k}={v}" for k, v in sorted(info.params.items()))
        rows.append(["params", text + (_FROM_RUN if "params" in info.from_run else "")])
    if info.image:
        img = info.image
        pushed = f"  pushed {img['digest']}" if img.get("digest") else ""
        rows.append(["image", f"{img.get('image', '?')}  {str(img.get('id', ''))[:19]}{pushed}"])
    if info.registered_by:
        rows.append(["registered", f"{info.registered_at} by {info.registered_by}"])
    if info.attached_by:
        rows.append(["attached", f"{info.attached_at} by {info.attached_by} (mlgate attach)"])
    if info.ci_run_url:
        rows.append(["ci run", info.ci_run_url])
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{str(k).ljust(width)}  {v}" for k, v in rows)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value + 0.0:.6g}"  # never "-0"
    return str(value)


# --------------------------------------------------------------------------- decisions


def _observed(value: Any, width: int = 48) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        text = f"{len(value)} columns"
    elif isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if v is None:
                continue
            if isinstance(v, list | tuple):
                parts.append(f"{k}: {len(v)} columns")
            elif isinstance(v, str) and len(v) >= 24:
                parts.append(f"{k}={v[:19]}…")
            else:
                parts.append(f"{k}={_num(v)}")
        text = ", ".join(parts) or "-"
    else:
        text = _num(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_decision(decision: Any) -> str:
    """A gate report for a terminal."""
    verdict = "PASSED" if decision.passed else "REJECTED"
    verdict = "UNCHANGED" if decision.already_there else verdict
    champ = (
        "no champion yet (first promotion)"
        if decision.first_promotion
        else f"champion: version {decision.champion_version}"
    )
    lines = [
        f"{verdict}: {decision.model} version {decision.version} -> {decision.alias}  ({champ})"
    ]
    if decision.evaluation:
        ev = decision.evaluation
        lines.append(
            f"evaluated on {ev['rows']} rows of {ev['fingerprint']} "
            f"({ev['task']}, target {ev['target']!r})"
        )
    rows = [
        ["ok" if r.passed else "FAIL", r.name, _observed(r.observed), r.expected, r.reason]
        for r in decision.results
    ]
    if decision.already_there:
        lines.append(f"version {decision.version} already holds {decision.alias}: unchanged")
    elif rows:
        lines.append(table(["result", "gate", "observed", "expected", "reason"], rows))
    else:
        lines.append("no gates are configured for this alias (ungated by policy)")
    if decision.policy_path:
        lines.append(f"policy: {decision.policy_path}")
    return "\n".join(lines)


def markdown_decision(decision: Any, event: Any = None) -> str:
    """A gate report for a GitHub job summary or a pull-request comment."""
    icon = "✅" if decision.passed else "❌"
    verdict = "passed" if decision.passed else "rejected"
    out = [
        f"### {icon} mlgate: `{decision.model}` version {decision.version} "
        f"→ `{decision.alias}` {verdict}"
    ]
    if decision.first_promotion:
        out.append("\nNo champion yet: this is the first promotion.")
    else:
        out.append(f"\nCompared with champion version {decision.champion_version}.")
    if decision.evaluation:
        ev = decision.evaluation
        out.append(f"Evaluated on {ev['rows']} rows of `{ev['fingerprint']}`.")
    if event is not None:
        out.append(f"Outcome: **{event.outcome}** ({event.before or '-'} → {event.after}).")
    rows = [
        ["✅" if r.passed else "❌", r.name, _observed(r.observed), r.expected, r.reason]
        for r in decision.results
    ]
    out.append("")
    if decision.already_there:
        out.append(f"_Version {decision.version} already holds `{decision.alias}`: unchanged._")
    else:
        out.append(
            markdown_table(["", "gate", "observed", "expected", "reason"], rows)
            if rows
            else "_No gates configured._"
        )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- ledger and status


def _event_row(e: Any, arrow: str) -> list[Any]:
    """One ledger event as a history row. ``move`` is what changed: versions for an alias
    move, ``split:5% -> split:25%`` for traffic, ``- -> 3`` for an event about version 3.
    ``reason`` is the person's reason, else what mlgate concluded (for a registration or a
    build: what was registered or built)."""
    move = f"{e.before or '-'} {arrow} {e.after or '-'}"
    return [e.at, e.kind, e.outcome, e.alias, move, e.actor, e.reason or e.message]


_EVENT_HEADERS = ["time", "kind", "outcome", "alias", "move", "actor", "reason"]


def render_events(events: Sequence[Any]) -> str:
    if not events:
        return "no events"
    return table(_EVENT_HEADERS, [_event_row(e, "->") for e in events])


def markdown_events(events: Sequence[Any]) -> str:
    return markdown_table(_EVENT_HEADERS, [_event_row(e, "→") for e in events]) + "\n"


def render_event(event: Any) -> str:
    verbs = {
        "moved": "moved",
        "unchanged": "unchanged (already there)",
        "dry_run": "dry run: would move",
        "rejected": "rejected",
        "conflict": "conflict",
    }
    what = verbs.get(event.outcome, event.outcome)
    aliases = getattr(event, "cleared", ())  # an alias move may clear the challenger
    cleared = f"; cleared {', '.join(aliases)}" if aliases else ""
    return (
        f"{event.kind} {what}: {event.model}@{event.alias} "
        f"{event.before or '-'} -> {event.after}{cleared}"
    )


def render_promotion(event: Any) -> str:
    """A promotion that passed its gates, for a terminal: the gate table, then the move."""
    if event.outcome not in ("moved", "dry_run"):
        return render_event(event)  # unchanged: no gates ran
    lines = [f"PASSED: {event.model} version {event.after} -> {event.alias}"]
    rows = _gate_rows(event, "ok", "FAIL")
    if rows:
        lines.append(table(["result", "gate", "observed", "expected", "reason"], rows))
    else:
        lines.append("no gates are configured for this alias (ungated by policy)")
    lines.append(render_event(event))
    return "\n".join(lines)


def _gate_rows(event: Any, ok: str, fail: str) -> list[list[Any]]:
    """One row per gate of a promotion event: verdict mark, name, observed, expected, reason."""
    return [
        [
            ok if g.get("passed") else fail,
            g.get("name"),
            _observed(g.get("observed")),
            g.get("expected"),
            g.get("reason"),
        ]
        for g in event.gates
    ]


def markdown_promotion(event: Any) -> str:
    """A promotion that passed its gates, in Markdown: the verdict, the gate table (as a
    rejection shows it), then the ledger's row."""
    if event.kind != "promote" or event.outcome not in ("moved", "dry_run"):
        return markdown_events([event])
    verdict = "passed (dry run)" if event.outcome == "dry_run" else "passed"
    head = f"### ✅ mlgate: `{event.model}` version {event.after} → `{event.alias}` {verdict}"
    rows = _gate_rows(event, "✅", "❌")
    gates = (
        markdown_table(["", "gate", "observed", "expected", "reason"], rows)
        if rows
        else "_No gates configured._"
    )
    return f"{head}\n\n{gates}\n\n{markdown_events([event])}"


def render_rollout(model: str, state: Any) -> str:
    """A rollout's state in words (``state`` None: no rollout was ever started)."""
    if state is None:
        return f"{model}: no rollout has been started"
    steps = " -> ".join(f"{s:g}%" for s in state.steps)
    if state.status == "running":
        where = f"running, at step {min(state.step + 1, len(state.steps))} of {len(state.steps)}"
    else:
        where = f"{state.status.replace('_', ' ')} after {state.step} of {len(state.steps)} steps"
    lines = [
        f"rollout of {model} version {state.challenger}: {where} "
        f"(champion {state.champion}; steps {steps}; started {state.started_at or '-'})"
    ]
    for r in state.results:
        verdict = "passed" if r.get("ok") else "failed"
        lines.append(
            f"  step {r.get('step')} at {r.get('weight', 0):g}%: {verdict}: {r.get('detail', '')}"
        )
    return "\n".join(lines)


def render_status(status: Any) -> str:
    lines = [f"model {status.model}  (latest version {status.latest_version or '-'})"]
    rows = []
    for a in status.aliases:
        m = a.last_move
        rows.append(
            [
                a.alias,
                a.version,
                m.at if m else "-",
                m.actor if m else "-",
                (m.reason or m.message) if m else "set outside mlgate",
            ]
        )
    lines.append(
        table(["alias", "version", "moved at", "by", "why"], rows) if rows else "no aliases set"
    )
    traffic = getattr(status, "traffic", None)
    alias = getattr(status, "challenger_alias", "challenger")
    challenger = next((a.version for a in status.aliases if a.alias == alias), None)
    if traffic and challenger:
        weight = float(traffic.get("challenger_weight", 0.0))
        share = (
            "scores a copy of every request (shadow: the champion answers)"
            if traffic.get("mode") == "shadow"
            else f"answers {weight:g}% of requests"
        )
        lines.append(f"traffic: challenger (version {challenger}) {share}")
    if status.lease:
        lines.append(
            f"lease: held by {status.lease.get('holder', '?')} "
            f"until {status.lease.get('expires_at', '?')}"
        )
    lines.extend(f"note: {n}" for n in status.notes)
    return "\n".join(lines)
