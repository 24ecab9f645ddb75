"""`mlgate export`: Kubernetes, KServe and Seldon manifests from one read of a real registry."""

from __future__ import annotations

import json

import pytest
import yaml

import mlgate
from mlgate.cli import EXPORT_TARGETS, main
from mlgate.deploy.export import ALL_INTERFACES, TARGETS, ExportOptions, export
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
    assert dep["metadata"]["annotations"]["mlgate.io/traffic"] == (
        "champion v1, challenger v2 25% (split)"
    )
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    (c,) = pod["spec"]["containers"]
    assert c["image"] == f"registry.example.com/ml/models:{served}-v1@sha256:" + "a" * 64
    assert c["args"][:2] == ["serve", served] and ALL_INTERFACES in c["args"]
    assert c["envFrom"] == [{"secretRef": {"name": "mlflow-tracking"}}]
    assert not any("TRACKING" in e["name"] for e in c["env"])  # credentials never inline
    assert c["livenessProbe"]["httpGet"]["path"] == "/ping"
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
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
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert "previously rolled-out revision" in err

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
        {"name": f"{served}-v1", "weight": 75},
        {"name": f"{served}-v2", "weight": 25},
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
    assert exp["spec"]["mirror"] == {"name": f"{served}-v2", "percent": 100}  # as serve shadows
    assert exp["spec"]["candidates"] == [{"name": f"{served}-v1", "weight": 100}]
    out = tmp_path / "deploy"
    (out / "notes.yaml").parent.mkdir()
    (out / "notes.yaml").write_text("kind: ConfigMap\n")  # not an mlgate export: left alone
    export("seldon", served, options=opts, store=store).write(out)
    set_traffic(store, served, weight=0)
    result = export("seldon", served, options=opts, store=store)
    kinds = _check_seldon(list(result.documents))
    assert "Experiment" not in kinds and len(kinds["Model"]) == 2
    written, removed = result.write(out)
    assert [p.name for p in removed] == [f"experiment-{served}.yaml"]
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
    assert export(target, served, options=opts, store=store).yaml() != first.yaml()


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
    assert "challenger v2 20% (split)" in deployment["metadata"]["annotations"]["mlgate.io/traffic"]
    steps = run()  # the same registry state: nothing to commit
    assert any("manifests unchanged" in s.get("stdout", "") for s in steps.values())
    assert len(_git(origin, "log", "--oneline", "main").splitlines()) == 2
    set_traffic(store, served, weight=60)
    run()
    assert len(_git(origin, "log", "--oneline", "main").splitlines()) == 3


def test_an_image_without_a_registry_digest_is_flagged(served, store):
    """A recorded image that was never pushed (no digest) is named in the export's notes."""
    result = export("k8s", served, options=ExportOptions(pinned=True), store=store)
    unpushed = [n for n in result.notes if "no registry digest" in n]
    assert len(unpushed) == 1 and f"{served}-v2" in unpushed[0]  # v1 was pushed (has a digest)
