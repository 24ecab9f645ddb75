"""Typed operations on model versions and aliases: references, resolution, leases, guarded moves.

MLflow has no compare-and-set for aliases (the last writer wins), so mlgate serialises writers
per model with a *lease*: a registered model named ``<prefix><model>`` whose creation is atomic on
the tracking server (a second creator gets ``RESOURCE_ALREADY_EXISTS``). The holder checks that
the alias still points where it expected, moves it, and deletes the lease. A lease carries its
holder, a token and an expiry; a lease past its expiry is broken by whoever first creates the
uniquely named *breaker* entity for that exact token, so two processes can never both break (and
both take) the same stale lease.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mlgate.errors import ConflictError, LeaseHeldError, NotFoundError, UsageError
from mlgate.keys import BREAKER_PREFIX, DEFAULT_LEASE_TTL, LEASE_PREFIX
from mlgate.registry.store import Store


@dataclass(frozen=True)
class Lease:
    """A held promotion lease for one model."""

    model: str
    token: str
    holder: str
    expires_at: float

    @property
    def entity(self) -> str:
        return lease_name(self.model)


def lease_name(model: str) -> str:
    return f"{LEASE_PREFIX}{model}"


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _expired(tags: dict[str, str], now: float) -> bool:
    try:
        return float(tags.get("expires_at", "0")) < now
    except ValueError:
        return True  # a lease with a garbled expiry cannot be trusted to ever expire


def acquire_lease(store: Store, model: str, *, ttl: float = DEFAULT_LEASE_TTL) -> Lease:
    """Take the promotion lease for ``model`` or raise :class:`LeaseHeldError` at once.

    A stale lease (past its expiry) is broken exactly once, by whichever caller first creates the
    breaker entity named after the stale lease's token.
    """
    if ttl <= 0:
        raise UsageError("lease ttl must be positive")
    name = lease_name(model)
    for _ in range(3):
        token = uuid.uuid4().hex
        expires = time.time() + ttl
        tags = {"holder": _holder(), "token": token, "expires_at": f"{expires:.3f}", "model": model}
        description = f"mlgate promotion lease for {model!r}; deleted when the promotion ends"
        if store.create_model_exclusive(name, tags, description):
            return Lease(model=model, token=token, holder=tags["holder"], expires_at=expires)
        try:
            current = store.get_model(name)
        except NotFoundError:
            continue  # released between our create and our read: try again
        if not _expired(current.tags, time.time()):
            raise LeaseHeldError(
                f"another promotion of {model!r} is in progress "
                f"(lease held by {current.tags.get('holder', '?')})",
                hint="retry when it finishes; a lease whose holder died expires by itself",
            )
        stale_token = current.tags.get("token", "none")
        breaker = f"{BREAKER_PREFIX}{model}.{stale_token}"
        if store.create_model_exclusive(breaker, {"model": model}, "mlgate: stale lease broken"):
            # The breaker stays: deleting it would let a slow racer that read the same stale
            # token break the *fresh* lease taken after this one. It is also the record that a
            # holder died mid-promotion.
            store.delete_model(name)
        # Either we broke it or a racer did; loop and compete for the fresh lease.
    raise LeaseHeldError(f"could not take the promotion lease for {model!r}: contended")


def lease_is_current(store: Store, lease: Lease) -> bool:
    """True while ``lease`` is still the model's lease and has not expired (fencing check)."""
    try:
        current = store.get_model(lease.entity)
    except NotFoundError:
        return False
    return current.tags.get("token") == lease.token and time.time() < lease.expires_at


def release_lease(store: Store, lease: Lease) -> None:
    """Delete the lease if it is still ours (never someone else's fresh lease)."""
    try:
        current = store.get_model(lease.entity)
    except NotFoundError:
        return
    if current.tags.get("token") == lease.token:
        store.delete_model(lease.entity)


@contextmanager
def leased(store: Store, model: str, *, ttl: float = DEFAULT_LEASE_TTL) -> Iterator[Lease]:
    """Hold the promotion lease for the duration of the block."""
    lease = acquire_lease(store, model, ttl=ttl)
    try:
        yield lease
    finally:
        release_lease(store, lease)


def guarded_move(
    store: Store,
    lease: Lease,
    model: str,
    alias: str,
    version: str,
    *,
    expected: str | None,
) -> str | None:
    """Move ``model@alias`` to ``version`` only if it still points at ``expected``.

    ``expected=None`` means "the alias must not be set". Must be called while holding ``lease``.
    Returns the version the alias pointed at before.

    Raises:
        ConflictError: the alias moved since the caller looked, or the lease was lost.
    """
    current = store.version_by_alias(model, alias)
    current_version = current.version if current else None
    if current_version != expected:
        raise ConflictError(
            f"{model}@{alias} points at {_v(current_version)}, expected {_v(expected)}",
            hint="someone else moved it; re-run the check against the new state",
        )
    if not lease_is_current(store, lease):
        raise ConflictError(
            f"the promotion lease for {model!r} expired before the alias could move",
            hint="raise the lease ttl or find what made the promotion slow",
        )
    store.set_alias(model, alias, version)
    return current_version


def _v(version: str | None) -> str:
    return "nothing (unset)" if version is None else f"version {version}"
