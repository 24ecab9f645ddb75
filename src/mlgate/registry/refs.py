"""Model references (``NAME``, ``NAME@ALIAS``, ``NAME/VERSION``) and resolving them to versions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgate.errors import NotFoundError, UsageError
from mlgate.registry.store import Store, VersionRecord

_ALIAS_RE = re.compile(r"^[\w\-]+$")


@dataclass(frozen=True)
class ModelRef:
    """``name``, ``name@alias`` or ``name/version`` (also accepted with a ``models:/`` prefix)."""

    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        if self.version:
            return f"{self.name}/{self.version}"
        return self.name


def parse_ref(text: str) -> ModelRef:
    """Parse a model reference; raises :class:`UsageError` with the accepted forms."""
    raw = text.strip()
    if raw.startswith("models:/"):
        raw = raw[len("models:/") :]
    if not raw:
        raise UsageError("empty model reference", hint="use NAME, NAME@ALIAS or NAME/VERSION")
    if "/" in raw:
        name, _, version = raw.rpartition("/")
        if not name or not version.isdigit() or "/" in name or "@" in name:
            raise UsageError(
                f"bad model reference {text!r}", hint="use NAME, NAME@ALIAS or NAME/VERSION"
            )
        return ModelRef(name=name, version=str(int(version)))
    if "@" in raw:
        name, _, alias = raw.rpartition("@")
        if not name or not alias or "@" in name:
            raise UsageError(
                f"bad model reference {text!r}", hint="use NAME, NAME@ALIAS or NAME/VERSION"
            )
        validate_alias(alias)
        return ModelRef(name=name, alias=alias)
    return ModelRef(name=raw)


def validate_alias(alias: str) -> str:
    """MLflow's alias rules, checked before any server call: ``[\\w-]+``, not reserved."""
    if not _ALIAS_RE.match(alias):
        raise UsageError(f"bad alias {alias!r}: use letters, digits, '_' and '-' only")
    if alias.lower() == "latest" or re.fullmatch(r"v\d+", alias.lower()):
        raise UsageError(f"alias {alias!r} is reserved by MLflow")
    return alias


def resolve(store: Store, ref: ModelRef | str, *, default_latest: bool = True) -> VersionRecord:
    """The version a reference names. A bare name means its newest version.

    Raises:
        NotFoundError: the model, version or alias does not exist.
    """
    if isinstance(ref, str):
        ref = parse_ref(ref)
    if ref.version is not None:
        return store.get_version(ref.name, ref.version)
    if ref.alias is not None:
        found = store.version_by_alias(ref.name, ref.alias)
        if found is None:
            raise NotFoundError(f"alias {ref.name}@{ref.alias} is not set")
        return found
    if not default_latest:
        raise UsageError(f"{ref.name}: say which version (NAME/VERSION or NAME@ALIAS)")
    latest = store.latest_version(ref.name)
    if latest is None:
        if not store.model_exists(ref.name):
            raise NotFoundError(f"registered model {ref.name!r}: not found")
        raise NotFoundError(f"registered model {ref.name!r} has no versions")
    return latest
