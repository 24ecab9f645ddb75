"""The gate types mlgate knows: its own, one module each, and those plug-ins register.

A plug-in is an installed distribution with an entry point in the ``mlgate.gates`` group whose
name is the gate type and whose object is a :class:`~mlgate.promotion.gates.base.Gate`::

    [project.entry-points."mlgate.gates"]
    latency = "my_gates.latency:GATE"

Entry points are read only when a policy names a type mlgate does not have, so a policy of
built-in gates costs no scan of the installed distributions. A built-in type cannot be replaced.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlgate.errors import PolicyError
from mlgate.keys import GATES_ENTRY_POINTS
from mlgate.promotion.gates.base import Gate, GateSpec
from mlgate.promotion.schema import Schema, String, join, kind, problem

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

#: The entry-point group third-party gate types register in.
GROUP = GATES_ENTRY_POINTS
#: mlgate's own gate types: one module of this package each, defining ``GATE``.
BUILTIN = ("threshold", "no_regression", "improvement", "bootstrap", "data", "signature", "lineage")

_NAME = String("name")
_builtin: dict[str, Gate] = {}
_plugins: dict[str, Gate] = {}


def builtin() -> dict[str, Gate]:
    """mlgate's own gate types by name (imported on first use)."""
    if not _builtin:
        for module in BUILTIN:
            gate = importlib.import_module(f"{__package__}.{module}").GATE
            _builtin[gate.type] = gate
    return _builtin


def known() -> list[str]:
    """Every gate type a policy may name: mlgate's and the installed plug-ins'."""
    return sorted(set(builtin()) | {ep.name for ep in _entry_points()})


def _entry_points() -> list[EntryPoint]:
    # Imported here: importlib.metadata costs ~20 ms, paid only for a type mlgate lacks.
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def gate_type(name: Any) -> Gate:
    """The gate type called ``name``.

    Raises:
        PolicyError: (key ``type``, no path) an unknown type, or a plug-in that cannot be
            loaded or is not a Gate; the message names the entry point.
    """
    if isinstance(name, str):
        found = builtin().get(name) or _plugins.get(name)
        if found is not None:
            return found
        eps = [ep for ep in _entry_points() if ep.name == name]
        if eps:
            _plugins[name] = _load(name, eps)
            return _plugins[name]
    raise problem("type", f"unknown gate type {name!r}; known: {', '.join(known())}")


def _load(name: str, eps: list[EntryPoint]) -> Gate:
    """The Gate an entry point names, or a one-line problem that names the entry point."""
    values = sorted({ep.value for ep in eps})
    if len(values) > 1:
        twice = " and ".join(values)
        raise problem("type", f"gate type {name!r} is registered twice in {GROUP}: {twice}")
    where = f"gate type {name!r}: entry point {name} = {values[0]} (group {GROUP})"
    try:
        obj = eps[0].load()
    except Exception as exc:  # noqa: BLE001 - a plug-in's import may raise anything
        first = (str(exc).splitlines() or [""])[0]
        raise problem("type", f"{where} failed to load: {type(exc).__name__}: {first}") from None
    if not isinstance(obj, Gate):
        what = type(obj).__name__
        raise problem("type", f"{where} is a {what}, not an mlgate.promotion.gates.Gate")
    if obj.type != name:
        raise problem("type", f"{where} declares type {obj.type!r}: the two must be the same")
    return obj


def schema(gate: Gate) -> Schema:
    """A gate type's schema plus the key every gate takes, ``name``."""
    return Schema((*gate.schema.options, _NAME), gate.schema.rules)


def parse_spec(table: Any, *, path: str, key: str) -> GateSpec:
    """One gate of a policy (the table at ``key``), checked against its type's schema.

    Raises:
        PolicyError: naming ``path`` and the key path.
    """
    if not isinstance(table, Mapping):
        raise PolicyError(path, key, f"must be a table, got {kind(table)}")
    try:
        gate = gate_type(table.get("type"))
    except PolicyError as exc:
        raise PolicyError(path, join(key, exc.key), exc.problem) from None
    values = schema(gate).parse(table, path=path, key=key, also=("type",))
    if values["name"] is not None:
        name = str(values["name"])
    else:
        name = f"{gate.type}:{table['metric']}" if "metric" in table else gate.type
    return GateSpec(type=gate.type, options=values, where=key, name=name)


def resolve(spec: GateSpec) -> tuple[Gate, GateSpec]:
    """A spec's gate type, and the spec with its options checked and defaults filled in (a
    spec built in Python has not been through a policy file).

    Raises:
        PolicyError: (no path) an unknown type or an option its schema refuses.
    """
    gate = gate_type(spec.type)
    given = {k: v for k, v in spec.options.items() if v is not None}
    values = schema(gate).parse(given, path="", key="", also=("type",))
    return gate, replace(spec, options=values)
