"""`mlgate export`: Kubernetes, KServe and Seldon manifests from one read of a real registry."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import click
import pytest
import yaml

import mlgate
from mlgate.cli import EXPORT_TARGETS, main
from mlgate.deploy.export import (
    ALL_INTERFACES,
    TARGETS,
    Export,
    ExportOptions,
    Served,
    Snapshot,
    export,
    render,
    to_yaml,
)
from mlgate.errors import EXIT_USAGE, NotFoundError, UsageError
from mlgate.keys import Tags
from mlgate.promotion.traffic import set_traffic

K8S_VERSION = "1.30.0"  # the Kubernetes version the built-in kinds are validated against


@pytest.fixture
def served(store, model_name, make_version):
    """A model with champion v1 and challenger v2, each with an image recorded as `build` does."""
    for _ in range(2):
        make_version()
    for version in ("1", "2"):
        record = {
            "image": f"registry.example.com/ml/models:{model_name}-v{version}",
            "id": f"sha256:{version * 64}",
            "mlgate": "0.1.0",
        }
        if version == "1":
            record["digest"] = "sha256:" + "a" * 64
        store.set_version_tags(model_name, version, {Tags.IMAGE: json.dumps(record)})
    store.set_alias(model_name, "champion", "1")
    store.set_alias(model_name, "challenger", "2")
    return model_name


def _docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def test_cli_targets_are_the_library_targets():
    """The CLI offers exactly the targets the library renders."""
    assert EXPORT_TARGETS == TARGETS


def test_k8s_replicas_follow_the_registry(served, store, capsys):
    """k8s: a validated Deployment running `serve MODEL`, Service, HPA and PDB, hardened."""
    import kubernetes_validate

    set_traffic(store, served, weight=25)
    code, out, err = _cli(capsys, "export", "k8s", served, "-n", "ml", "--replicas", "3")
    assert code == 0, err
    docs = _docs(out)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = _by_kind(docs)
    assert sorted(kinds) == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]
    dep = kinds["Deployment"][0]
    assert dep["metadata"]["namespace"] == "ml" and "replicas" not in dep["spec"]  # the HPA's
    assert "25%" not in out and "mlgate.io/traffic" not in out  # the replicas read the weight
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    (c,) = pod["spec"]["containers"]
    assert c["image"] == f"registry.example.com/ml/models:{served}-v1@sha256:" + "a" * 64
    assert c["args"][:2] == ["serve", served] and ALL_INTERFACES in c["args"]
    assert c["envFrom"] == [{"secretRef": {"name": "mlflow-tracking"}}]
    assert not any("TRACKING" in e["name"] for e in c["env"])  # credentials never inline
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["runAsUser"] == 10001
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    assert {"name": "tmp", "emptyDir": {}} in pod["spec"]["volumes"]
    hpa = kinds["HorizontalPodAutoscaler"][0]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 5)
    assert kinds["PodDisruptionBudget"][0]["spec"]["maxUnavailable"] == 1  # drains never block
    assert "follows the registry" in err


def test_k8s_pinned_runs_each_versions_image(served, store):
    """k8s --pinned: one validated Deployment and Service per served version, its own image."""
    import kubernetes_validate

    result = export("k8s", served, options=ExportOptions(pinned=True), store=store)
    deployments = [d for d in result.documents if d["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == [f"{served}-v1", f"{served}-v2"]
    images = [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments]
    assert images[1] == f"registry.example.com/ml/models:{served}-v2"
    assert "args" not in deployments[0]["spec"]["template"]["spec"]["containers"][0]
    for doc in result.documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert any("service mesh" in n for n in result.notes)


def _check_inference_service(doc: dict) -> dict:
    """The fields KServe's v1beta1 InferenceService documents, with their types and ranges."""
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    assert isinstance(doc["metadata"]["name"], str)
    predictor = doc["spec"]["predictor"]
    if "canaryTrafficPercent" in predictor:
        pct = predictor["canaryTrafficPercent"]
        assert isinstance(pct, int) and not isinstance(pct, bool) and 0 <= pct <= 100
    assert ("model" in predictor) != ("containers" in predictor)
    if "model" in predictor:
        m = predictor["model"]
        assert m["modelFormat"] == {"name": "mlflow"}  # no version: MLServer lists "1"/"2" only
        assert m["protocolVersion"] == "v2" and isinstance(m["storageUri"], str)
    else:
        assert predictor["containers"][0]["name"] == "kserve-container"
    return predictor


def test_kserve_challenger_is_the_canary_at_its_weight(served, store, capsys):
    """kserve: weight 25 in the registry is canaryTrafficPercent 25 on the challenger's image."""
    set_traffic(store, served, weight=25)
    code, out, err = _cli(capsys, "export", "kserve", served)
    assert code == 0, err
    (doc,) = _docs(out)
    predictor = _check_inference_service(doc)
    assert predictor["canaryTrafficPercent"] == 25
    assert predictor["containers"][0]["image"] == f"registry.example.com/ml/models:{served}-v2"
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert "previously rolled-out revision" in err and "--stage champion" in err

    set_traffic(store, served, weight=0)
    (doc,) = _docs(export("kserve", served, store=store).yaml())
    predictor = _check_inference_service(doc)
    assert "canaryTrafficPercent" not in predictor
    assert predictor["containers"][0]["image"].endswith(f"{served}-v1@sha256:" + "a" * 64)


def test_kserve_refuses_what_it_cannot_express(served, store, capsys):
    """A fractional weight or shadow mode is exit 2 for KServe, with what to do instead."""
    set_traffic(store, served, weight=12.5)
    code, _, err = _cli(capsys, "export", "kserve", served)
    assert code == EXIT_USAGE and "not a whole percent" in err and "--weight 12" in err
    set_traffic(store, served, weight=10, mode="shadow")
    code, _, err = _cli(capsys, "export", "kserve", served)
    assert code == EXIT_USAGE and "cannot mirror" in err and "seldon" in err


def test_kserve_native_maps_the_artifact_location(served, store, capsys):
    """kserve --mode native: KServe cannot read mlflow-artifacts:/, so it must be mapped."""
    set_traffic(store, served, weight=40)
    code, _, err = _cli(capsys, "export", "kserve", served, "--mode", "native")
    assert code == EXIT_USAGE
    assert "mlflow-artifacts:/" in err and "--storage-map" in err
    args = ["--mode", "native", "--storage-map", "mlflow-artifacts:/=s3://ml-bucket/artifacts/"]
    code, out, err = _cli(capsys, "export", "kserve", served, *args)
    assert code == 0, err
    predictor = _check_inference_service(_docs(out)[0])
    location = store.artifact_location(served, "2")
    assert predictor["model"]["storageUri"] == (
        "s3://ml-bucket/artifacts/" + location[len("mlflow-artifacts:/") :]
    )
    assert predictor["canaryTrafficPercent"] == 40


def _check_seldon(docs: list[dict]) -> dict[str, list[dict]]:
    """Seldon Core v2's Model and Experiment fields, with their types."""
    kinds = _by_kind(docs)
    for m in kinds["Model"]:
        assert m["apiVersion"] == "mlops.seldon.io/v1alpha1"
        assert isinstance(m["spec"]["storageUri"], str) and m["spec"]["requirements"] == ["mlflow"]
    for e in kinds.get("Experiment", []):
        assert e["apiVersion"] == "mlops.seldon.io/v1alpha1"
        names = {m["metadata"]["name"] for m in kinds["Model"]}
        assert e["spec"]["default"] in names
        for c in e["spec"]["candidates"]:
            assert c["name"] in names and isinstance(c["weight"], int) and c["weight"] >= 0
        if "mirror" in e["spec"]:
            assert e["spec"]["mirror"]["name"] in names
            assert isinstance(e["spec"]["mirror"]["percent"], int)
    return kinds


def test_seldon_experiment_carries_the_weights(served, store, tmp_path):
    """seldon: a Model per version and an Experiment whose candidate weights are the registry's."""
    opts = ExportOptions(storage_map=(("mlflow-artifacts:/", "s3://b/"),))
    set_traffic(store, served, weight=25)
    kinds = _check_seldon(list(export("seldon", served, options=opts, store=store).documents))
    (exp,) = kinds["Experiment"]
    assert exp["spec"]["candidates"] == [
        {"name": served, "weight": 75},
        {"name": f"{served}-challenger", "weight": 25},
    ]
    set_traffic(store, served, weight=12.5)
    (exp,) = _check_seldon(list(export("seldon", served, options=opts, store=store).documents))[
        "Experiment"
    ]
    assert [c["weight"] for c in exp["spec"]["candidates"]] == [875, 125]
    set_traffic(store, served, weight=10, mode="shadow")
    (exp,) = _check_seldon(list(export("seldon", served, options=opts, store=store).documents))[
        "Experiment"
    ]
    assert exp["spec"]["mirror"] == {"name": f"{served}-challenger", "percent": 100}  # as serve
    assert exp["spec"]["candidates"] == [{"name": served, "weight": 100}]
    out = tmp_path / "deploy"
    (out / "notes.yaml").parent.mkdir()
    (out / "notes.yaml").write_text("kind: ConfigMap\n")  # not an mlgate export: left alone
    export("seldon", served, options=opts, store=store).write(out)
    set_traffic(store, served, weight=0)
    result = export("seldon", served, options=opts, store=store)
    kinds = _check_seldon(list(result.documents))
    assert "Experiment" not in kinds and len(kinds["Model"]) == 2
    written, removed = result.write(out)
    assert [p.name for p in removed] == [f"experiment-{served}-experiment.yaml"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.yaml", *(p.name for p in written)]
    )


@pytest.mark.parametrize("target", TARGETS)
def test_same_registry_state_gives_byte_identical_yaml(served, store, target, tmp_path):
    """Export twice from an unchanged registry: the same bytes (GitOps sees no false diff)."""
    opts = ExportOptions(storage_map=(("mlflow-artifacts:/", "s3://b/"),))
    set_traffic(store, served, weight=30)
    first = export(target, served, options=opts, store=store)
    second = export(target, served, options=opts, store=store)
    assert first.yaml() == second.yaml()
    assert "&id" not in first.yaml() and "*id" not in first.yaml()  # no YAML aliases
    written, removed = first.write(tmp_path / "out")
    assert removed == [] and [yaml.safe_load(p.read_text()) for p in written] == list(
        first.documents
    )
    set_traffic(store, served, weight=31)
    changed = export(target, served, options=opts, store=store).yaml() != first.yaml()
    # k8s replicas read the weight from the registry: no manifest changes (no GitOps diff)
    assert changed == (target != "k8s")


def test_bad_input_is_one_line_and_exit_2(served, store, model_name, capsys, make_version):
    """Unknown target, missing model, no champion, no image: exit 2 with what to do."""
    code, _, err = _cli(capsys, "export", "helm", served)
    assert code == EXIT_USAGE and "helm" in err
    code, _, err = _cli(capsys, "export", "k8s", "no-such-model-x")
    assert code == EXIT_USAGE and "not found" in err
    store.delete_alias(served, "champion")
    code, _, err = _cli(capsys, "export", "k8s", served)
    assert code == EXIT_USAGE and "has no champion" in err and "mlgate promote" in err
    make_version()
    store.set_alias(served, "champion", "3")  # no image recorded for version 3
    code, _, err = _cli(capsys, "export", "kserve", served)
    assert code == EXIT_USAGE and "version 3 (champion) has no image" in err
    assert f"mlgate build {served}/3 --repo" in err and "--image" not in err  # kserve: no --image
    set_traffic(store, served, weight=25)  # the predictor is now challenger v2, which has one
    code, out, err = _cli(capsys, "export", "kserve", served)
    assert code == 0 and "canaryTrafficPercent: 25" in out
    code, _, err = _cli(capsys, "export", "k8s", served)
    assert code == EXIT_USAGE and "version 3 (champion) has no image" in err
    code, out, err = _cli(capsys, "export", "k8s", served, "--image", "mlgate:any")
    assert code == 0 and "image: mlgate:any" in out
    with pytest.raises(UsageError, match="not a valid Kubernetes name"):
        export("k8s", served, options=ExportOptions(namespace="Bad_NS"), store=store)
    with pytest.raises(NotFoundError):
        mlgate.export("k8s", "no-such-model-y", store=store)


def _git(cwd, *args: str) -> str:
    import subprocess

    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def test_export_workflow_commits_only_when_the_registry_changed(
    served, store, tracking_uri, tmp_path
):
    """export.yml's steps: manifests committed and pushed; unchanged registry, no commit."""
    from test_example import run_job

    origin, repo = tmp_path / "origin.git", tmp_path / "repo"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(tmp_path, "clone", "-q", str(origin), str(repo))
    _git(
        repo,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "init",
    )
    _git(repo, "push", "-q", "origin", "HEAD:main")

    def run() -> dict:
        steps, _, failed = run_job(
            "export",
            repo,
            tmp_path / f"run{len(_git(origin, 'log', '--oneline').splitlines())}",
            secrets={"MLFLOW_TRACKING_URI": tracking_uri},
            inputs={"target": "k8s"},
            workflow="export.yml",
            env={"MODEL": served},
        )
        assert failed is None, steps
        return steps

    set_traffic(store, served, weight=20)
    run()
    log = _git(origin, "log", "--format=%s", "main").splitlines()
    assert log[0] == f"deploy: {served} k8s manifests from the registry" and len(log) == 2
    deployment = yaml.safe_load(
        (repo / "deploy" / served / "k8s" / f"deployment-{served}.yaml").read_text()
    )
    assert deployment["metadata"]["namespace"] == "ml"
    steps = run()  # the same registry state: nothing to commit
    assert any("manifests unchanged" in s.get("stdout", "") for s in steps.values())
    assert len(_git(origin, "log", "--oneline", "main").splitlines()) == 2
    set_traffic(store, served, weight=60)  # the replicas read it: the manifests do not change
    run()
    assert len(_git(origin, "log", "--oneline", "main").splitlines()) == 2
    store.set_alias(served, "champion", "2")  # a promotion: the champion's image changes
    run()
    assert len(_git(origin, "log", "--oneline", "main").splitlines()) == 3


def test_an_image_without_a_registry_digest_is_flagged(served, store):
    """A recorded image that was never pushed (no digest) is named in the export's notes."""
    result = export("k8s", served, options=ExportOptions(pinned=True), store=store)
    unpushed = [n for n in result.notes if "no registry digest" in n]
    assert len(unpushed) == 1 and f"{served}-v2" in unpushed[0]  # v1 was pushed (has a digest)


# --------------------------------------------------------------------------- the pod lifecycle
def _probe_paths(container: dict) -> dict[str, str]:
    return {
        kind: container[kind]["httpGet"]["path"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if kind in container
    }


def test_probes_keep_a_waiting_server_alive_and_unready(served, store, tmp_path):
    """Served against an unreachable registry (the server waits for it), the exported startup
    and liveness probes answer 200 and readiness 503, in k8s and KServe image mode: the kubelet
    restarts a container whose liveness probe fails, so liveness must not wait for the model."""
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from mlgate.testing import free_port, wait_http

    k8s = export("k8s", served, store=store).documents[0]["spec"]["template"]["spec"]
    kserve = export("kserve", served, store=store).documents[0]["spec"]["predictor"]
    probes = {
        "k8s": _probe_paths(k8s["containers"][0]),
        "kserve": _probe_paths(kserve["containers"][0]),
    }
    assert set(probes["k8s"]) == {"startupProbe", "livenessProbe", "readinessProbe"}
    # Knative admits startupProbe only from Serving 1.15: KServe's container has none
    assert set(probes["kserve"]) == {"livenessProbe", "readinessProbe"}
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "serve", served, "--port", str(port), "--poll", "0.5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        wait_http(f"http://127.0.0.1:{port}/health", status=503, alive=lambda: proc.poll() is None)
        for target, paths in probes.items():
            answers = {kind: status(path) for kind, path in paths.items()}
            expected = {kind: 503 if kind == "readinessProbe" else 200 for kind in paths}
            assert answers == expected, target
        assert status("/ping") == 503  # what liveness was: it would have killed this pod
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --------------------------------------------------------------------------- KServe
#: Knative Serving's validation of a container port name (pkg/apis/serving/k8s_validation.go):
#: "Name must be empty, or one of: 'h2c', 'http1'".
KNATIVE_PORT_NAMES = (None, "h2c", "http1")


@pytest.mark.parametrize("weight", [0, 25])
def test_kserve_container_is_what_knative_admits(served, store, weight):
    """KServe image mode runs on Knative whenever there is a canary: one port whose name Knative
    admits (empty, h2c or http1), probes on that port, and no startupProbe (Knative < 1.15)."""
    set_traffic(store, served, weight=weight)
    (doc,) = export("kserve", served, store=store).documents
    (container,) = doc["spec"]["predictor"]["containers"]
    (port,) = container["ports"]
    assert port.get("name") in KNATIVE_PORT_NAMES
    for kind in ("livenessProbe", "readinessProbe"):
        assert container[kind]["httpGet"]["port"] == port["containerPort"]
    assert "startupProbe" not in container


def test_kserve_deployment_mode_never_changes_and_weights_touch_only_the_percent(served, store):
    """Every InferenceService mlgate writes for one model carries the same deployment mode from
    the first deploy (KServe's webhook refuses a change of mode), and a weight change touches
    only canaryTrafficPercent (annotations are copied into the Knative revision template)."""
    docs = {}
    set_traffic(store, served, weight=0)
    docs["champion alone"] = export("kserve", served, store=store).documents[0]
    for weight in (10, 40):
        set_traffic(store, served, weight=weight)
        docs[f"canary {weight}"] = export("kserve", served, store=store).documents[0]
    docs["stage champion"] = mlgate.export(
        "kserve", served, store=store, stage="champion"
    ).documents[0]
    modes = {
        k: d["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] for k, d in docs.items()
    }
    assert set(modes.values()) == {"Knative"}, modes  # KServe 0.16's name
    legacy = mlgate.export("kserve", served, store=store, deployment_mode="Serverless").documents[0]
    assert legacy["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    ten, forty = docs["canary 10"], docs["canary 40"]
    assert ten["metadata"] == forty["metadata"]
    forty["spec"]["predictor"]["canaryTrafficPercent"] = 10
    assert ten == forty
    with pytest.raises(UsageError, match="deployment mode"):
        mlgate.export("kserve", served, store=store, deployment_mode="RawDeployment")


def test_kserve_stages_roll_out_the_champion_then_the_canary(served, store, capsys):
    """--stage champion exports the champion alone while the registry has a challenger weight
    (KServe sends 100% to the latest revision when no earlier one is ready); --stage canary is
    the canary; a stage with nothing to stage, or for another target, is exit 2."""
    set_traffic(store, served, weight=25)
    code, out, err = _cli(capsys, "export", "kserve", served, "--stage", "champion")
    assert code == 0, err
    predictor = _check_inference_service(_docs(out)[0])
    assert "canaryTrafficPercent" not in predictor
    assert predictor["containers"][0]["image"].endswith(f"{served}-v1@sha256:" + "a" * 64)
    assert "--stage canary" in err
    code, out, err = _cli(capsys, "export", "kserve", served, "--stage", "canary")
    assert code == 0, err
    assert _check_inference_service(_docs(out)[0])["canaryTrafficPercent"] == 25
    set_traffic(store, served, weight=0)
    code, _, err = _cli(capsys, "export", "kserve", served, "--stage", "canary")
    assert code == EXIT_USAGE and "no challenger with traffic" in err
    code, _, err = _cli(capsys, "export", "k8s", served, "--stage", "champion")
    assert code == EXIT_USAGE and "--stage is for kserve" in err


# --------------------------------------------------------------------------- Seldon
def test_seldon_clients_call_one_name_across_promotions_and_rollbacks(served, store):
    """The name a client calls (the champion's Model, which the Experiment's default takes over)
    is the model's name before a canary, during it, after a promotion and after a rollback."""
    opts = ExportOptions(storage_map=(("mlflow-artifacts:/", "s3://b/"),))

    def called() -> tuple[str, str]:
        kinds = _check_seldon(list(export("seldon", served, options=opts, store=store).documents))
        champion = [m for m in kinds["Model"] if m["metadata"]["name"] == served]
        (model,) = champion
        if "Experiment" in kinds:
            assert kinds["Experiment"][0]["spec"]["default"] == served
        return model["metadata"]["name"], model["metadata"]["annotations"]["mlgate.io/serves"]

    set_traffic(store, served, weight=0)
    assert called() == (served, "champion v1")
    set_traffic(store, served, weight=25)
    assert called() == (served, "champion v1")
    store.set_alias(served, "champion", "2")  # promoted
    store.delete_alias(served, "challenger")
    assert called() == (served, "champion v2")
    store.set_alias(served, "champion", "1")  # rolled back
    assert called() == (served, "champion v1")


# --------------------------------------------------------------------------- refused first
@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--cpu", "banana"], "--cpu 'banana' is not a Kubernetes quantity"),
        (["--memory-limit", "lots"], "--memory-limit 'lots' is not a Kubernetes quantity"),
        (["--memory-limit=-5"], "--memory-limit '-5' is not a Kubernetes quantity"),
        (["--cpu", "2", "--cpu-limit", "1"], "CPU request 2 (--cpu) is more than its limit 1"),
        (["--memory", "2Gi", "--memory-limit", "1Gi"], "memory request 2Gi (--memory) is more"),
        (["--memory", "1.5G", "--memory-limit", "1Gi"], "memory request 1.5G (--memory) is more"),
        (["--cpu", "1 "], "--cpu '1 ' is not a Kubernetes quantity"),
    ],
)
def test_resources_a_cluster_refuses_are_refused_first(served, capsys, args, said):
    """What the API server refuses ("quantities must match the regular expression", "must be
    greater than or equal to 0", "must be less than or equal to cpu limit"; the grammar of
    k8s.io/apimachinery's resource.ParseQuantity) is exit 2 and one line, before any export."""
    code, out, err = _cli(capsys, "export", "k8s", served, *args)
    assert code == EXIT_USAGE and out == ""
    assert len(err.splitlines()) == 1 and said in err, err


def test_resources_the_api_server_accepts_are_exported(served, store):
    """Quantities in every form Kubernetes parses (decimal, exponent, binary and decimal SI
    suffixes, a request equal to its limit, no CPU limit) export and validate."""
    import kubernetes_validate

    for cpu, cpu_limit, memory, memory_limit in [
        ("0.5", "500m", "1e9", "1Gi"),
        ("100m", None, "1G", "1Gi"),
        ("+1", "2", "512Mi", "0.5Gi"),
    ]:
        opts = ExportOptions(cpu=cpu, cpu_limit=cpu_limit, memory=memory, memory_limit=memory_limit)
        for doc in export("k8s", served, options=opts, store=store).documents:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_commands_usage_errors_are_one_line_exit_2(capsys):
    """click's usage errors (a bad choice, a value out of range, an unknown option, a missing
    argument, an unknown command) are one line and exit 2 for every mlgate command, naming the
    command's help."""
    from mlgate.cli import cli

    cases = [
        ["export", "foo"],
        ["export", "k8s", "m", "--replicas", "0"],
        ["export", "k8s", "m", "--storage-map", "nonsense"],
        ["no-such-command"],
    ]
    for name, command in sorted(cli.commands.items()):
        cases.append([name, "--no-such-option-x"])
        required = [p for p in command.params if p.required and isinstance(p, click.Argument)]
        if required:
            cases.append([name])
    assert len(cases) > 2 * 10
    for args in cases:
        code, out, err = _cli(capsys, *args)
        lines = err.splitlines()
        assert code == EXIT_USAGE and out == "", args
        assert len(lines) == 1 and lines[0].startswith("mlgate: error: "), (args, err)
        helper = f"mlgate {args[0]} --help" if args[0] in cli.commands else "mlgate --help"
        assert f"(see '{helper}')" in lines[0], lines


# --------------------------------------------------------------------------- the README
README = Path(__file__).resolve().parent.parent / "README.md"
_MARKER = re.compile(
    r"<!-- mlgate export: (?P<name>[\w-]+)(?: (?P<kind>\w+))? -->\n```yaml\n(?P<yaml>.*?)```", re.S
)


def readme_exports() -> dict[str, Export]:
    """The registry states the README's Kubernetes walkthrough shows, rendered (pure)."""

    def served(role: str, version: str) -> Served:
        return Served(
            role=role,
            version=version,
            image=f"registry.example.com/ml/models:churn-v{version}@sha256:{version * 64}",
            artifacts=f"mlflow-artifacts:/1/models/m-{version}/artifacts",
        )

    opts = ExportOptions(namespace="ml", storage_map=(("mlflow-artifacts:/", "s3://mlflow/"),))
    native = replace(opts, mode="native")
    champion, challenger = served("champion", "7"), served("challenger", "8")
    canary = Snapshot("churn", champion, challenger, mode="split", weight=10)
    promoted = Snapshot("churn", replace(challenger, role="champion"), None, "split", 0)
    return {
        "kserve-champion": render("kserve", canary, replace(native, stage="champion")),
        "kserve-canary": render("kserve", canary, replace(native, stage="canary")),
        "kserve-promoted": render("kserve", promoted, native),
        "seldon-canary": render("seldon", canary, opts),
        "seldon-promoted": render("seldon", promoted, opts),
    }


def test_readme_manifests_are_what_export_writes():
    """Every manifest the README's Kubernetes section shows is what `mlgate export` renders for
    the registry state it describes (regenerate a block from readme_exports() when it drifts)."""
    exports = readme_exports()
    shown = list(_MARKER.finditer(README.read_text(encoding="utf-8")))
    assert sorted({m["name"] for m in shown}) == sorted(exports)
    for m in shown:
        docs = [d for d in exports[m["name"]].documents if m["kind"] in (None, d["kind"])]
        assert docs, m.group(0)[:80]
        expected = to_yaml(docs)
        assert m["yaml"] == expected, f"README block {m['name']} is stale; it is:\n{expected}"
