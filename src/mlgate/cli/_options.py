"""Options several commands share, and the parsing of option values (before anything is
contacted: a bad value is a usage error, exit 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from mlgate import api


def tracking_uri(ctx: click.Context) -> str | None:
    """The group's ``--tracking-uri`` (None: ``$MLFLOW_TRACKING_URI`` or the default store)."""
    return ctx.obj.get("tracking_uri") if ctx.obj else None


def policy_option(f: Any) -> Any:
    return click.option(
        "--policy",
        type=click.Path(dir_okay=False),
        help="Policy file (mlgate.toml or pyproject.toml) [default: search upward from here].",
    )(f)


def format_options(f: Any) -> Any:
    f = click.option("--markdown", is_flag=True, help="Print a Markdown report.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(f)
    return f


def target_option(f: Any) -> Any:
    return click.option(
        "--target",
        help="Target column of the evaluation data [default: the policy's evaluation.target].",
    )(f)


def one_format(as_json: bool, markdown: bool, quiet: bool = False) -> None:
    """Refuse output flags that contradict each other (before anything is contacted)."""
    flags = {"--json": as_json, "--markdown": markdown, "--quiet": quiet}
    chosen = [flag for flag, on in flags.items() if on]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be combined: choose one")


def pairs(values: Sequence[str], what: str, *, numeric: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` options as a dict (values as numbers with ``numeric``)."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=what)
        if numeric:
            try:
                out[key] = float(value)
            except ValueError:
                raise click.BadParameter(
                    f"{item!r}: {value!r} is not a number", param_hint=what
                ) from None
        else:
            out[key] = value
    return out


def expected(value: str | None) -> Any:
    """``--expected``: a version number, ``none`` (must not be set), or unset (where the alias
    pointed when the check started)."""
    if value is None:
        return api.CURRENT
    if value.lower() in ("none", "unset"):
        return None
    if not value.isdigit():
        raise click.BadParameter(f"{value!r}: a version number, or 'none'", param_hint="--expected")
    return value


def steps(value: str) -> list[float]:
    """``--steps 5,25,50,100``."""
    try:
        return [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: comma-separated numbers", param_hint="--steps"
        ) from None


def storage_map(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``--storage-map PREFIX=URI`` (repeatable; order kept: the first match wins)."""
    out = []
    for item in values:
        prefix, sep, uri = item.partition("=")
        if not sep or not prefix or not uri:
            raise click.BadParameter(f"{item!r}: expected PREFIX=URI", param_hint="--storage-map")
        out.append((prefix, uri))
    return tuple(out)


#: ``mlgate build`` options that only make sense for a model's image.
_MODEL_ONLY = {
    "ref": "MODEL@ALIAS|MODEL/VERSION",
    "no_verify": "--no-verify",
    "no_check": "--no-check",
}


def tools_image(ctx: click.Context) -> dict[str, Any]:
    """``mlgate build --tools-image``: the api's arguments from the options the user set (the
    others keep the tools image's defaults); a model-only option is a usage error."""
    params = ctx.params
    given = {
        k for k in params if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT
    }
    for key, what in _MODEL_ONLY.items():
        if key in given and params.get(key):
            raise click.UsageError(f"--tools-image builds no model's image: drop {what}")
    return {
        "repo": params["repository"] if "repository" in given else None,
        "tag": params["tag"] if "tag" in given else None,
        "base_image": params.get("base_image"),
        "python_version": params.get("python"),
        "offline": bool(params.get("offline")),
        "wheelhouse": params.get("wheelhouse"),
        "no_download": bool(params.get("no_download")),
        "ca_bundle": params.get("ca_bundle"),
        "platform": params.get("platform"),
        "network": params.get("network_mode"),
        "full_mlflow": bool(params.get("full_mlflow")),
        "no_cache": bool(params.get("nocache")),
        "push": bool(params.get("push")),
    }
