"""The example as a Kubeflow pipeline: train -> register -> check -> promote to challenger.

    python kfp_pipeline.py compile pipeline.yaml      # the pipeline spec, for a KFP cluster
    python kfp_pipeline.py run [--altered]            # run it here with kfp.local and Docker

Needs `pip install 'mlgate[kfp]'` where the pipeline is compiled or started, and an image with
mlgate for the steps: `mlgate build --tools-image` (default `mlgate-tools:<mlgate version>`;
`MLGATE_TOOLS_IMAGE` names another). The tracking server is never a pipeline parameter: on a
cluster every step reads it from the Kubernetes secret `mlflow-tracking`; `run` gives the local
containers this shell's `MLFLOW_TRACKING_URI` (and credentials) through the Docker runner.

The gate step runs with `fail_on_reject=False`, so the pipeline branches on its decision
(`dsl.If`): passed -> promote to challenger (gates again, then the guarded move, in the ledger
with this pipeline run as the actor); rejected -> a step that posts the gate report. `--altered`
trains on labels shuffled against their rows (a join gone wrong): the model scores about 0.5 on
the evaluation rows and the accuracy gate rejects it.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations at run time.

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

try:
    from kfp import compiler, dsl
except ModuleNotFoundError as missing:  # the kfp extra is not installed: say what to install
    if (missing.name or "").split(".")[0] != "kfp":
        raise
    print(
        "kfp_pipeline.py: error: needs the Kubeflow Pipelines SDK: pip install 'mlgate[kfp]'",
        file=sys.stderr,
    )
    sys.exit(2)

from mlgate.kfp import DEFAULT_IMAGE, components, use_tracking_secret

IMAGE = os.environ.get("MLGATE_TOOLS_IMAGE") or DEFAULT_IMAGE
MODEL_NAME = "example-classifier"
mg = components(IMAGE)

#: The gates for the challenger alias, given to the steps as the policy's text.
POLICY = """\
[[default.gates.challenger]]
type = "metric"
metric = "accuracy"
min = 0.75

[[default.gates.challenger]]
type = "data"
distinct_train_eval = true

[[default.gates.challenger]]
type = "lineage"
verify_artifacts = true
require_commit = false
require_clean = false
"""

#: The training step's program (run in the tools image: scikit-learn, pandas, mlflow-skinny).
TRAIN = """\
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlgate.kfp_step import write_executor_output

altered, run_id_path, train_path, eval_path, executor_input, executor_output = sys.argv[1:7]
features = [f"x{i}" for i in range(8)]
x, y = make_classification(n_samples=4000, n_features=8, n_informative=5, n_redundant=1,
                           class_sep=1.5, flip_y=0.03, random_state=7)
frame = pd.DataFrame(x.round(6), columns=features)
frame["label"] = y
train, test = frame.iloc[:3000].copy(), frame.iloc[3000:]
if altered.lower() == "true":  # the labels no longer belong to their rows
    train["label"] = np.random.default_rng(0).permutation(train["label"].to_numpy())
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
model.fit(train[features], train["label"])
accuracy = accuracy_score(test["label"], model.predict(test[features]))
mlflow.set_experiment("mlgate-kfp-example")
with mlflow.start_run() as run:
    mlflow.log_metric("accuracy", accuracy)
    mlflow.sklearn.log_model(model, name="model", input_example=test[features].head(3))
for path, data in ((train_path, train), (eval_path, test)):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(path, index=False)
Path(run_id_path).parent.mkdir(parents=True, exist_ok=True)
Path(run_id_path).write_text(run.info.run_id)
write_executor_output(executor_input, executor_output)  # names the datasets for kfp.local
print(f"trained run {run.info.run_id}: accuracy {accuracy:.4f} on {len(test)} rows")
"""


#: A container component's output artifacts exist for kfp.local only once the executor output
#: file names them (the KFP backend finds them by itself): mlgate.kfp_step writes it.
EXECUTOR = [
    dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
    dsl.PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER,
]
WRITE = "import sys; from mlgate.kfp_step import write_executor_output as w; w(*sys.argv[1:3])"


@dsl.container_component
def train(
    run_id: dsl.OutputPath(str),
    train_data: dsl.Output[dsl.Dataset],
    eval_data: dsl.Output[dsl.Dataset],
    altered: bool = False,
):
    """Train a classifier and log it to MLflow; the data go on as artifacts."""
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["python", "-c", TRAIN],
        args=[altered, run_id, train_data.path, eval_data.path, *EXECUTOR],
    )


@dsl.container_component
def post_rejection(report: dsl.Input[dsl.Markdown], notice: dsl.Output[dsl.Markdown]):
    """The rejected branch: the gate report, headed for whoever reads the run."""
    return dsl.ContainerSpec(
        image=IMAGE,
        command=[
            "sh",
            "-c",
            'mkdir -p "$(dirname "$1")" && { echo "## Not promoted: the gate rejected it"; '
            f'echo; cat "$0"; }} > "$1" && cat "$1" && python -c {shlex.quote(WRITE)} "$2" "$3"',
        ],
        args=[report.path, notice.path, *EXECUTOR],
    )


@dsl.pipeline(name="mlgate-example", description="train, register, check, promote to challenger")
def example_pipeline(model_name: str = MODEL_NAME, altered: bool = False):
    # The policy is part of the pipeline's code, not a parameter: a run cannot loosen the gates.
    # (kfp 2.17 also writes a multi-line parameter default into the YAML header unescaped,
    # which makes the compiled file unreadable.)
    policy = POLICY
    trained = train(altered=altered).set_caching_options(False)
    registered = mg.register(
        name=model_name,
        run_id=trained.outputs["run_id"],
        train_data=trained.outputs["train_data"],
        eval_data=trained.outputs["eval_data"],
    )
    version = registered.outputs["version"]
    gate = mg.check(
        model=model_name,
        candidate=version,
        to="challenger",
        eval_data=trained.outputs["eval_data"],
        target="label",
        policy=policy,
        fail_on_reject=False,
    )
    steps = [trained, registered, gate]
    with dsl.If(gate.outputs["decision"] == "passed", name="gate-passed"):
        steps.append(
            mg.promote(
                model=model_name,
                candidate=version,
                to="challenger",
                reason="passed the gates in the example pipeline",
                eval_data=trained.outputs["eval_data"],
                target="label",
                policy=policy,
            )
        )
    with dsl.Else(name="gate-rejected"):
        post_rejection(report=gate.outputs["report"]).set_caching_options(False)
    for step in steps:  # on a cluster: the tracking server from the secret, never a parameter
        use_tracking_secret(step)


def run_locally(args: argparse.Namespace) -> dict[str, object]:
    """Run the pipeline with kfp.local's Docker runner; what it did, for people and tests."""
    import docker.client
    from kfp import local

    # kfp.local's Docker client keeps docker-py's 60 s timeout; creating a container of the
    # 800 MB tools image on a copying storage driver (vfs) can take longer on a busy machine.
    docker.client.DEFAULT_TIMEOUT_SECONDS = max(docker.client.DEFAULT_TIMEOUT_SECONDS, 900)
    passed = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_TRACKING_") and v}
    if "MLFLOW_TRACKING_URI" not in passed:
        sys.exit("kfp_pipeline.py run: set MLFLOW_TRACKING_URI (a server the containers reach)")
    runner = local.DockerRunner(
        environment=passed,
        # Steps run as this user: kfp.local writes outputs into host directories it made.
        user=f"{os.getuid()}:{os.getgid()}",
        **({"network_mode": args.network} if args.network else {}),
    )
    root = Path(args.pipeline_root).resolve()
    local.init(runner=runner, pipeline_root=str(root), raise_on_error=not args.no_raise)
    before = set(root.iterdir()) if root.exists() else set()
    started = time.monotonic()
    error = None
    try:
        example_pipeline(model_name=args.model_name, altered=args.altered)
    except RuntimeError as exc:
        error = str(exc)
    runs = sorted(set(root.iterdir()) - before)
    run_dir = runs[-1] if runs else None
    tasks = sorted(p.name for p in run_dir.iterdir()) if run_dir else []
    return {
        "run_dir": str(run_dir) if run_dir else None,
        "tasks": tasks,
        "seconds": round(time.monotonic() - started, 1),
        "error": error,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    comp = sub.add_parser("compile", help="write the pipeline spec (YAML)")
    comp.add_argument("output", nargs="?", default="pipeline.yaml")
    run = sub.add_parser("run", help="run here with kfp.local and Docker")
    run.add_argument("--altered", action="store_true", help="train on shuffled labels")
    run.add_argument("--model-name", default=MODEL_NAME)
    run.add_argument("--pipeline-root", default="kfp-local")
    run.add_argument(
        "--network",
        default=os.environ.get("MLGATE_DOCKER_NETWORK"),
        help="the containers' network, e.g. host [env: MLGATE_DOCKER_NETWORK]",
    )
    run.add_argument("--no-raise", action="store_true", help="report a failed task, do not raise")
    args = ap.parse_args(argv)
    if args.command == "compile":
        compiler.Compiler().compile(example_pipeline, args.output)
        print(args.output)
        return 0
    result = run_locally(args)
    print(json.dumps(result))  # one line, last: what ran (kfp.local's logs come before it)
    return 1 if result["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
