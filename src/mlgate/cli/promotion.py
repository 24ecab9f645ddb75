"""Commands that judge and move aliases, and shift traffic: ``check``, ``promote``,
``rollback``, ``history``, ``status``, ``traffic``, ``rollout``."""

from __future__ import annotations

import json
from typing import get_args

import click

from mlgate import api
from mlgate.cli import _options as opt
from mlgate.cli._output import echo_json, emit_decision, emit_event
from mlgate.errors import GateRejected


@click.command()
@click.argument("model", metavar="MODEL[/VERSION|@ALIAS]")
@click.option("--version", "-v", "version", help="Candidate version number or alias.")
@click.option("--to", "to", required=True, help="Target alias, e.g. champion or challenger.")
@click.option(
    "--eval-data",
    type=click.Path(dir_okay=False),
    help="Score candidate and champion on this file.",
)
@opt.target_option
@opt.policy_option
@opt.format_options
@click.pass_context
def check(
    ctx: click.Context,
    model: str,
    version: str | None,
    to: str,
    eval_data: str | None,
    target: str | None,
    policy: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """Run the promotion gates for a version and report. Never changes anything.

    Exit 0 when every gate passes, 3 when one rejects.
    """
    opt.one_format(as_json, markdown)
    decision = api.check(
        model,
        version,
        to=to,
        policy=policy,
        eval_data=eval_data,
        target=target,
        store=opt.tracking_uri(ctx),
    )
    emit_decision(decision, None, as_json, markdown)
    if not decision.passed:
        raise GateRejected(decision.summary(), decision=decision)


@click.command()
@click.argument("model", metavar="MODEL[/VERSION|@ALIAS]")
@click.option("--version", "-v", "version", help="Candidate version number or alias.")
@click.option("--to", "to", required=True, help="Target alias, e.g. champion or challenger.")
@click.option(
    "--expected",
    help="Move only if the alias points at this version ('none': unset) "
    "[default: where it pointed when the check started].",
)
@click.option("--reason", "-m", default="", help="Why; recorded in the ledger.")
@click.option(
    "--eval-data",
    type=click.Path(dir_okay=False),
    help="Score candidate and champion on this file.",
)
@opt.target_option
@click.option("--lease-ttl", type=float, help="Seconds the promotion lease may be held.")
@click.option(
    "--dry-run", is_flag=True, help="Run the gates and show what would happen; change nothing."
)
@click.option(
    "--quiet", "-q", is_flag=True, help="Print one summary line instead of the gate table."
)
@opt.policy_option
@opt.format_options
@click.pass_context
def promote(
    ctx: click.Context,
    model: str,
    version: str | None,
    to: str,
    expected: str | None,
    reason: str,
    eval_data: str | None,
    target: str | None,
    lease_ttl: float | None,
    dry_run: bool,
    quiet: bool,
    policy: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """Check the gates, then move the alias to the version, guarded and recorded.

    The alias moves only if it still points where it did when the check started (or at
    --expected). Prints the gate table and the move (one line with --quiet). Exit 3 when a gate
    rejects, 4 on a conflict.
    """
    opt.one_format(as_json, markdown, quiet)
    try:
        event = api.promote(
            model,
            version,
            to=to,
            expected=opt.expected(expected),
            reason=reason,
            policy=policy,
            eval_data=eval_data,
            target=target,
            dry_run=dry_run,
            lease_ttl=lease_ttl,
            store=opt.tracking_uri(ctx),
        )
    except GateRejected as exc:
        if exc.decision is not None:
            emit_decision(exc.decision, exc.event, as_json, markdown, quiet=quiet)
        raise
    emit_event(event, as_json, markdown, gates=not quiet)


@click.command()
@click.argument("model")
@click.option("--alias", help="Alias to roll back [default: the policy's champion alias].")
@click.option(
    "--version",
    "-v",
    "to_version",
    help="Version number to return to [default: the one before, per the ledger].",
)
@click.option(
    "--to",
    "old_to",
    hidden=True,
    help="Old spelling of --version (elsewhere --to names an alias).",
)
@click.option("--reason", "-m", default="", help="Why; recorded in the ledger.")
@click.option("--lease-ttl", type=float, help="Seconds the promotion lease may be held.")
@click.option(
    "--force",
    is_flag=True,
    help="Allow --version to name a version that never held the alias (no gates run).",
)
@click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")
@opt.policy_option
@opt.format_options
@click.pass_context
def rollback(
    ctx: click.Context,
    model: str,
    alias: str | None,
    to_version: str | None,
    old_to: str | None,
    reason: str,
    lease_ttl: float | None,
    force: bool,
    dry_run: bool,
    policy: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """Move the champion back to the version it held before (guarded, recorded).

    --version returns to a version the ledger shows holding the alias before; any other
    version needs `mlgate promote` (gates run), or --force.
    """
    opt.one_format(as_json, markdown)
    if old_to is not None:
        if to_version is not None and to_version != old_to:
            raise click.UsageError("--to is the old spelling of --version: give one of them")
        to_version = old_to
    event = api.rollback(
        model,
        alias=alias,
        version=to_version,
        reason=reason,
        policy=policy,
        dry_run=dry_run,
        lease_ttl=lease_ttl,
        force=force,
        store=opt.tracking_uri(ctx),
    )
    emit_event(event, as_json, markdown)


@click.command()
@click.argument("model")
@click.option("--alias", help="Only events of this alias.")
@click.option(
    "--kind",
    type=click.Choice(get_args(api.EventKind)),
    help="Only events of this kind.",
)
@click.option("--limit", "-n", type=click.IntRange(min=1), help="At most this many events.")
@opt.policy_option
@opt.format_options
@click.pass_context
def history(
    ctx: click.Context,
    model: str,
    alias: str | None,
    kind: api.EventKind | None,
    limit: int | None,
    policy: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """List the ledger's events for a model, newest first."""
    from mlgate.report import markdown_events, render_events

    opt.one_format(as_json, markdown)
    events = api.history(
        model, alias=alias, kind=kind, limit=limit, policy=policy, store=opt.tracking_uri(ctx)
    )
    if as_json:
        echo_json([e.to_dict() for e in events])
    elif markdown:
        click.echo(markdown_events(events))
    else:
        click.echo(render_events(events))


@click.command()
@click.argument("model")
@opt.policy_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_context
def status(ctx: click.Context, model: str, policy: str | None, as_json: bool) -> None:
    """Show a model's aliases, their versions, and when and why each last moved."""
    from mlgate.report import render_status

    st = api.status(model, policy=policy, store=opt.tracking_uri(ctx))
    if as_json:
        echo_json(st.to_dict())
    else:
        click.echo(render_status(st))


@click.command()
@click.argument("model")
@click.option(
    "--weight",
    "-w",
    required=True,
    type=click.FloatRange(0, 100),
    help="Percent of requests the challenger answers.",
)
@click.option(
    "--mode",
    default="split",
    show_default=True,
    type=click.Choice(get_args(api.TrafficMode)),
    help="split: challenger answers its share; shadow: it only scores copies.",
)
@click.option("--reason", "-m", default="", help="Why; recorded in the ledger.")
@click.option(
    "--force", is_flag=True, help="Set a weight above 0 even though no challenger is set."
)
@opt.policy_option
@click.option("--json", "as_json", is_flag=True, help="Print the ledger event as JSON.")
@click.pass_context
def traffic(
    ctx: click.Context,
    model: str,
    weight: float,
    mode: api.TrafficMode,
    reason: str,
    force: bool,
    policy: str | None,
    as_json: bool,
) -> None:
    """Set how much traffic the challenger gets; every `mlgate serve` follows within a poll.

    A weight above 0 with no challenger set is refused (exit 2) unless --force.
    """
    event = api.traffic(
        model,
        weight=weight,
        mode=mode,
        reason=reason,
        force=force,
        policy=policy,
        store=opt.tracking_uri(ctx),
    )
    if as_json:
        echo_json(event.to_dict())
    else:
        click.echo(f"{model}: {event.message}")


@click.command()
@click.argument("model")
@click.option(
    "--endpoint",
    "-e",
    "endpoints",
    multiple=True,
    metavar="URL",
    help="A serving endpoint whose /metrics to read (repeat for replicas).",
)
@click.option(
    "--steps",
    default="5,25,50,100",
    show_default=True,
    help="Challenger percentages, ending at 100.",
)
@click.option(
    "--min-requests",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Challenger requests each step needs before it is judged.",
)
@click.option(
    "--min-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Shortest time a step is held.",
)
@click.option(
    "--max-seconds",
    default=900.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="A step without enough traffic by then rolls back.",
)
@click.option(
    "--max-error-delta",
    default=0.01,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Largest allowed excess of the challenger's error rate over the champion's.",
)
@click.option(
    "--max-latency-ratio",
    default=1.5,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Largest allowed challenger/champion mean-latency ratio.",
)
@click.option(
    "--poll",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between metric reads.",
)
@click.option("--status", "show_status", is_flag=True, help="Show the rollout state and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --status: print the state as JSON.")
@click.option(
    "--abort", "do_abort", is_flag=True, help="Stop the running rollout: challenger to 0%."
)
@click.option("--reason", "-m", default="", help="Why (for --abort); recorded in the ledger.")
@opt.policy_option
@click.pass_context
def rollout(
    ctx: click.Context,
    model: str,
    endpoints: tuple[str, ...],
    steps: str,
    min_requests: int,
    min_seconds: float,
    max_seconds: float,
    max_error_delta: float,
    max_latency_ratio: float,
    poll: float,
    show_status: bool,
    as_json: bool,
    do_abort: bool,
    reason: str,
    policy: str | None,
) -> None:
    """Shift traffic to the challenger step by step on live metrics; promote or roll back.

    Resumes a rollout interrupted half-way (its state is in the registry). Exit 3 when a step
    breaches its bounds and the rollout rolls back.
    """
    if as_json and not show_status:
        raise click.UsageError("--json applies to --status only")
    uri = opt.tracking_uri(ctx)
    if show_status:
        from mlgate.report import render_rollout

        state = api.rollout_status(model, store=uri)
        if as_json:
            echo_json(None if state is None else json.loads(state.to_json()))
        else:
            click.echo(render_rollout(model, state))
        return
    if do_abort:
        state = api.abort_rollout(model, reason=reason, policy=policy, store=uri).state
        click.echo(f"rollout of {model} version {state.challenger} aborted; challenger traffic 0%")
        return
    result = api.rollout(
        model,
        endpoints,
        steps=opt.steps(steps),
        min_requests=min_requests,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        max_error_delta=max_error_delta,
        max_latency_ratio=max_latency_ratio,
        poll=poll,
        policy=policy,
        store=uri,
    )
    click.echo(result.message)


COMMANDS = (check, promote, rollback, history, status, traffic, rollout)
