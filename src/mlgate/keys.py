"""Every name mlgate writes where others read it, and the defaults, in one place.

Tag keys on model versions and registered models, the ledger's and the lease's names in the
registry, image labels, and the defaults several packages share. These strings are a storage
format: renaming one orphans what an earlier release wrote, so ``tests/test_keys.py`` pins each
value. Imports nothing.
"""

from __future__ import annotations

import re

#: Every tag mlgate writes starts with this.
TAG_PREFIX = "mlgate."


class Tags:
    """Tag keys mlgate writes: on model versions (lineage, gate evidence, image) and on
    registered models (traffic, rollout)."""

    # --- on a model version
    MLGATE_VERSION = "mlgate.version"
    GIT_COMMIT = "mlgate.git.commit"
    GIT_BRANCH = "mlgate.git.branch"
    GIT_DIRTY = "mlgate.git.dirty"
    GIT_REMOTE = "mlgate.git.remote"
    GIT_SOURCE = "mlgate.git.source"
    ARTIFACT_DIGEST = "mlgate.artifact.digest"
    ARTIFACT_FILES = "mlgate.artifact.files"
    ENV_PYTHON = "mlgate.env.python"
    ENV_REQUIREMENTS = "mlgate.env.requirements"
    ENV_PACKAGES = "mlgate.env.packages"
    ENV_PLATFORM = "mlgate.env.platform"
    REGISTERED_BY = "mlgate.registered_by"
    REGISTERED_AT = "mlgate.registered_at"
    ATTACHED_BY = "mlgate.attached_by"
    ATTACHED_AT = "mlgate.attached_at"
    CI_RUN_URL = "mlgate.ci.run_url"
    METRICS = "mlgate.metrics"
    PARAMS = "mlgate.params"
    IMAGE = "mlgate.image"

    # --- on a registered model
    TRAFFIC = "mlgate.traffic"
    ROLLOUT = "mlgate.rollout"
    ROLLOUT_FAILED = "mlgate.rollout.failed"

    @staticmethod
    def data(role: str, part: str) -> str:
        """``mlgate.data.<role>.<part>``, e.g. ``mlgate.data.train.fingerprint``."""
        return f"mlgate.data.{role}.{part}"

    @staticmethod
    def parse_data(key: str) -> tuple[str, str] | None:
        """``(role, part)`` of a ``mlgate.data.<role>.<part>`` key, else None."""
        m = _DATA_TAG.match(key)
        return (m.group(1), m.group(2)) if m else None

    @staticmethod
    def gates(alias: str) -> str:
        """Compact JSON of the last gate decision for promotion to ``alias``."""
        return f"mlgate.gates.{alias}"


_DATA_TAG = re.compile(r"^mlgate\.data\.([\w-]+)\.([a-z_]+)$")

#: Run tags of a ledger event: ``mlgate.event.<field>``.
EVENT_TAG_PREFIX = "mlgate.event."
#: The experiment that holds the ledger, unless the policy names another.
DEFAULT_LEDGER = "mlgate-ledger"

#: The registered models that serialise writers of one model (see mlgate.registry.lease).
LEASE_PREFIX = "mlgate-lease."
BREAKER_PREFIX = "mlgate-lease-broken."
#: Seconds a lease lives unless renewed (the policy's ``lease_ttl``).
DEFAULT_LEASE_TTL = 60.0

#: The entry-point group third-party gate types register in.
GATES_ENTRY_POINTS = "mlgate.gates"


class Labels:
    """Image labels mlgate sets, beside the OCI ones (``org.opencontainers.image.*``)."""

    MODEL_NAME = "io.mlgate.model.name"
    MODEL_VERSION = "io.mlgate.model.version"
    MLGATE_VERSION = "io.mlgate.version"
    RUN_ID = "io.mlgate.run_id"
    GIT_COMMIT = "io.mlgate.git.commit"
    GIT_DIRTY = "io.mlgate.git.dirty"
    ARTIFACT_DIGEST = "io.mlgate.artifact.digest"
    ENV_PYTHON = "io.mlgate.env.python"
    IMAGE_KIND = "io.mlgate.image.kind"

    @staticmethod
    def data(role: str, part: str) -> str:
        """``io.mlgate.data.<role>.<part>``: a data role's fingerprint, rows or source."""
        return f"io.mlgate.data.{role}.{part}"
