"""The control plane: policy, evidence, gates, the ledger, and every write that changes what serves.

May import :mod:`mlgate.registry`, :mod:`mlgate.serving` (its pure routing types and the
registry read, never a server) and the pure modules; never :mod:`mlgate.deploy`,
:mod:`mlgate.versioning`, :mod:`mlgate.api` or :mod:`mlgate.cli`.

* :mod:`mlgate.promotion.policy` — the policy file, parsed and validated.
* :mod:`mlgate.promotion.gates` — pure gate checks over collected evidence.
* :mod:`mlgate.promotion.evidence` / :mod:`mlgate.promotion.evaluation` /
  :mod:`mlgate.promotion.measures` — what the gates look at: recorded facts, and the candidate
  and champion scored on the same rows.
* :mod:`mlgate.promotion.ledger` — the append-only history, stored as MLflow runs.
* :mod:`mlgate.promotion.workflow` — check, promote, rollback, history, status.
* :mod:`mlgate.promotion.traffic` — the challenger's share of traffic.
* :mod:`mlgate.promotion.rollout` — traffic shifted step by step on live metrics.
"""
