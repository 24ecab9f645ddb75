"""The names mlgate writes into MLflow and images are a storage format: they never change."""

from __future__ import annotations

from mlgate import keys
from mlgate.keys import Labels, Tags


def test_version_and_model_tag_keys_are_stable():
    """Every tag key keeps the value earlier releases wrote (a rename would orphan them)."""
    assert {k: v for k, v in vars(Tags).items() if k.isupper()} == {
        "MLGATE_VERSION": "mlgate.version",
        "GIT_COMMIT": "mlgate.git.commit",
        "GIT_BRANCH": "mlgate.git.branch",
        "GIT_DIRTY": "mlgate.git.dirty",
        "GIT_REMOTE": "mlgate.git.remote",
        "GIT_SOURCE": "mlgate.git.source",
        "ARTIFACT_DIGEST": "mlgate.artifact.digest",
        "ARTIFACT_FILES": "mlgate.artifact.files",
        "ENV_PYTHON": "mlgate.env.python",
        "ENV_REQUIREMENTS": "mlgate.env.requirements",
        "ENV_PACKAGES": "mlgate.env.packages",
        "ENV_PLATFORM": "mlgate.env.platform",
        "REGISTERED_BY": "mlgate.registered_by",
        "REGISTERED_AT": "mlgate.registered_at",
        "ATTACHED_BY": "mlgate.attached_by",
        "ATTACHED_AT": "mlgate.attached_at",
        "CI_RUN_URL": "mlgate.ci.run_url",
        "METRICS": "mlgate.metrics",
        "PARAMS": "mlgate.params",
        "IMAGE": "mlgate.image",
        "TRAFFIC": "mlgate.traffic",
        "ROLLOUT": "mlgate.rollout",
        "ROLLOUT_FAILED": "mlgate.rollout.failed",
    }
    assert Tags.data("train", "fingerprint") == "mlgate.data.train.fingerprint"
    assert Tags.gates("champion") == "mlgate.gates.champion"


def test_data_keys_parse_back_and_nothing_else_does():
    """``mlgate.data.<role>.<part>`` parses to (role, part); other keys do not."""
    assert Tags.parse_data(Tags.data("eval-holdout", "rows")) == ("eval-holdout", "rows")
    assert Tags.parse_data("mlgate.gates.champion") is None
    assert Tags.parse_data("mlgate.data.train") is None


def test_registry_names_and_defaults_are_stable():
    """The ledger, lease and entry-point names, and the shared defaults, keep their values."""
    assert keys.TAG_PREFIX == "mlgate."
    assert keys.EVENT_TAG_PREFIX == "mlgate.event."
    assert keys.DEFAULT_LEDGER == "mlgate-ledger"
    assert keys.LEASE_PREFIX == "mlgate-lease."
    assert keys.BREAKER_PREFIX == "mlgate-lease-broken."
    assert keys.DEFAULT_LEASE_TTL == 60.0
    assert keys.GATES_ENTRY_POINTS == "mlgate.gates"


def test_image_labels_are_stable():
    """Image labels keep the names deploy tooling and users select on."""
    assert Labels.MODEL_NAME == "io.mlgate.model.name"
    assert Labels.MODEL_VERSION == "io.mlgate.model.version"
    assert Labels.MLGATE_VERSION == "io.mlgate.version"
    assert Labels.RUN_ID == "io.mlgate.run_id"
    assert Labels.GIT_COMMIT == "io.mlgate.git.commit"
    assert Labels.GIT_DIRTY == "io.mlgate.git.dirty"
    assert Labels.ARTIFACT_DIGEST == "io.mlgate.artifact.digest"
    assert Labels.ENV_PYTHON == "io.mlgate.env.python"
    assert Labels.IMAGE_KIND == "io.mlgate.image.kind"
    assert Labels.data("train", "rows") == "io.mlgate.data.train.rows"


def test_the_modules_that_write_them_use_these_names():
    """The lease, ledger, policy and lineage read their names from mlgate.keys (one place)."""
    from mlgate import lineage
    from mlgate.promotion import ledger, policy, rollout
    from mlgate.registry import lease

    assert lineage.Tags is Tags
    assert lease.LEASE_PREFIX is keys.LEASE_PREFIX
    assert ledger.PREFIX is keys.EVENT_TAG_PREFIX
    assert policy.DEFAULT_LEDGER is keys.DEFAULT_LEDGER
    assert rollout.ROLLOUT_TAG is Tags.ROLLOUT


def test_mlgate_actor_and_run_url_come_before_the_ci_systems(monkeypatch):
    """$MLGATE_ACTOR and $MLGATE_RUN_URL name who acts and the run, ahead of CI variables."""
    from mlgate import lineage

    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("BUILD_URL", "https://jenkins.example/job/7")
    assert lineage.actor() == "octocat"
    assert lineage.ci_run_url() == "https://jenkins.example/job/7"
    monkeypatch.setenv("MLGATE_ACTOR", "kfp:run-7")
    monkeypatch.setenv("MLGATE_RUN_URL", "kfp:run/7/check")
    assert lineage.actor() == "kfp:run-7"
    assert lineage.ci_run_url() == "kfp:run/7/check"
    with lineage.acting_as("alice"):
        assert lineage.actor() == "alice"
