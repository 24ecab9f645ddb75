"""Kubeflow Pipelines components for mlgate: register, check, promote, rollback, export.

Needs the ``kfp`` SDK (v2): ``pip install 'mlgate[kfp]'``. Each component is a container
component that runs one mlgate command in an image that has mlgate (by default
``mlgate-tools:<mlgate version>``, made by ``mlgate build --tools-image``) through
:mod:`mlgate.kfp_step`, and gives back what the command decided::

    from kfp import dsl
    from mlgate.kfp import components, use_tracking_secret

    mg = components(image="registry.example.com/ml/mlgate-tools:0.1.0")

    @dsl.pipeline
    def gate(version: str):
        check = mg.check(model="churn", candidate=version, to="challenger", fail_on_reject=False)
        use_tracking_secret(check)
        with dsl.If(check.outputs["decision"] == "passed"):
            use_tracking_secret(mg.promote(model="churn", candidate=version, to="challenger"))

* Inputs are the command's options (``extra_args``: a list of any others); outputs are
  ``decision``, ``version``, ``outcome``, ``exit_code`` and ``report``, the Markdown report as a
  KFP Markdown artifact (``export`` gives ``manifests`` instead of a decision).
* The tracking URI and credentials are never parameters (KFP records those): they come from the
  container's environment, e.g. a Kubernetes secret (:func:`use_tracking_secret`).
* Steps called through :func:`components` (or this module's ``register``, ``check``, ...) have
  KFP's caching turned off: a gate must run every time. The YAML files under ``components/``
  are compiled with caching off too; a task made from one in your own pipeline needs
  ``task.set_caching_options(False)`` (or compile with ``--disable-execution-caching-by-default``).
* A rejected gate (exit 3) fails the task, unless ``fail_on_reject=False``: then the task
  succeeds with ``decision == "rejected"`` and the pipeline can branch on it (``dsl.If``).

This module imports ``kfp``; the image running the steps needs mlgate only. (It is
``mlgate.kfp``: ``import kfp`` here is the SDK, imports being absolute.)
"""

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlgate._version import __version__

#: What to install when the Kubeflow Pipelines SDK is missing.
INSTALL = "pip install 'mlgate[kfp]'"

try:
    from kfp import dsl
except ModuleNotFoundError as _missing:  # the kfp extra is not installed
    if _missing.name not in ("kfp", "kfp.dsl"):
        raise
    if __name__ == "__main__":  # python -m mlgate.kfp: one line, exit 2
        print(
            f"mlgate: error: mlgate.kfp needs the Kubeflow Pipelines SDK: {INSTALL}",
            file=sys.stderr,
        )
        sys.exit(2)
    raise ModuleNotFoundError(
        f"mlgate.kfp needs the Kubeflow Pipelines SDK (kfp): {INSTALL}", name="kfp"
    ) from None

DEFAULT_IMAGE = f"mlgate-tools:{__version__}"  # mlgate.deploy.tools.DEFAULT_IMAGE (tested equal)
#: The secret :func:`use_tracking_secret` reads by default (as ``mlgate export k8s`` does).
TRACKING_SECRET = "mlflow-tracking"  # noqa: S105 - the name of a secret, not one
#: Keys of that secret: the URI is required, credentials are optional.
TRACKING_URI_KEY = "MLFLOW_TRACKING_URI"
CREDENTIAL_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
COMMANDS = ("register", "check", "promote", "rollback", "export")

#: The container's command: an image without mlgate fails here, in one line, with exit 2.
LAUNCHER = """\
py=python3; command -v python >/dev/null 2>&1 && py=python
if ! "$py" -c 'import mlgate.kfp_step' >/dev/null 2>&1; then
  echo "mlgate: error: this image has no mlgate ('import mlgate.kfp_step' failed with $py):" \
"run the step in an image made by 'mlgate build --tools-image'" >&2
  exit 2
fi
exec "$py" -m mlgate.kfp_step "$@"
"""

Dataset = dsl.Input[dsl.Dataset]
Markdown = dsl.Output[dsl.Markdown]
Manifests = dsl.Output[dsl.Artifact]
Text = dsl.OutputPath(str)
Number = dsl.OutputPath(int)


#: What every component input and output means (shown in the Kubeflow UI), by name; a
#: component's own entries in :func:`_describe` take precedence.
DESCRIPTIONS = {
    "model": "Registered model name in MLflow.",
    "to": "The alias the version is gated for and moved to, e.g. challenger or champion.",
    "candidate": "The version to gate: a version number or an alias [default: the model's newest "
    "version].",
    "eval_data": "Evaluation data (a Dataset: CSV, Parquet, JSON lines or Feather) both "
    "versions are scored on [default: the policy's evaluation.data].",
    "target": "Target column of the evaluation data [default: the policy's evaluation.target].",
    "policy": "The policy as TOML text (mlgate.toml). Paths in it must be absolute (a step "
    "has no checkout); data comes in as eval_data. Empty: policy_path or none.",
    "policy_path": "Path of a policy file in the step's image; relative paths in it resolve "
    "beside it.",
    "fail_on_reject": "A rejected gate (exit 3) fails the task; false: the task succeeds with "
    "decision 'rejected', for dsl.If.",
    "extra_args": "Any other options of the mlgate command, as a list of strings "
    "(--tracking-uri is refused: the tracking server comes from the environment).",
    "reason": "Why, recorded in the ledger.",
    "dry_run": "Run the gates and report what would happen; change nothing.",
    "decision": "passed, rejected, or none when no gate ran (an error).",
    "version": "The version the command acted on (empty on an error before one was known).",
    "outcome": "What happened: e.g. moved, unchanged, dry_run, rejected, conflict, error.",
    "exit_code": "mlgate's exit code: 0 ok, 1 unexpected, 2 bad input, 3 rejected, "
    "4 conflict, 5 not permitted.",
    "report": "The Markdown report: the gate table, the move, or the error.",
}


def _describe(func: Callable[..., Any], summary: str, **own: str) -> Callable[..., Any]:
    """Give ``func`` a Google-style docstring describing every input (``Args``) and output
    (``Returns``): KFP reads the descriptions from it into the component spec."""
    import inspect

    inputs: list[str] = []
    outputs: list[str] = []
    for name, param in inspect.signature(func).parameters.items():
        text = own.get(name) or DESCRIPTIONS[name]
        is_output = "Output" in repr(param.annotation)
        (outputs if is_output else inputs).append(f"    {name}: {text}")
    func.__doc__ = f"{summary}\n\nArgs:\n" + "\n".join(inputs)
    func.__doc__ += "\n\nReturns:\n" + "\n".join(outputs) + "\n"
    return func


SECRET_HELP = "Secret whose keys (MLFLOW_TRACKING_URI, ...) become the k8s server's environment."  # noqa: S105 - help text


def _identity() -> list[Any]:
    return [
        "--executor-input",
        dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
        "--executor-output",
        dsl.PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER,
        "--kfp-job",
        dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        "--kfp-job-id",
        dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        "--kfp-task",
        dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
    ]


def _spec(image: str, own: list[Any], items: list[Any]) -> Any:
    """The container: the launcher, the step's own options, ``--``, then mlgate's arguments."""
    return dsl.ContainerSpec(
        image=image,
        command=["sh", "-c", LAUNCHER, "mlgate-kfp"],
        args=[*own, *_identity(), "--", *items],
    )


def _optional(name: str, option: str, artifact: Any) -> Any:
    return dsl.IfPresentPlaceholder(input_name=name, then=[option, artifact.path])


def _outputs(decision: Any, version: Any, outcome: Any, exit_code: Any, report: Any) -> list[Any]:
    own = ["--version", version, "--outcome", outcome, "--exit-code", exit_code]
    own += ["--report", report.path]
    return (["--decision", decision] if decision is not None else []) + own


def _register(image: str) -> Any:
    def mlgate_register(
        name: str,
        run_id: str,
        version: Text,
        outcome: Text,
        exit_code: Number,
        report: Markdown,
        artifact_path: str = "model",
        train_data: Dataset = None,
        eval_data: Dataset = None,
        metrics: dict = {},  # noqa: B006 - KFP reads the default from the signature
        params: dict = {},  # noqa: B006
        tags: dict = {},  # noqa: B006
        extra_args: list = [],  # noqa: B006
    ) -> dsl.ContainerSpec:
        own = [*_outputs(None, version, outcome, exit_code, report), "--extra-args", extra_args]
        items: list[Any] = [
            "register",
            "--name",
            name,
            "--run",
            run_id,
            "--artifact-path",
            artifact_path,
        ]
        items += ["--metric", metrics, "--param", params, "--tag", tags]
        items += [_optional("train_data", "--train", train_data)]
        items += [_optional("eval_data", "--eval", eval_data)]
        return _spec(image, own, items)

    return _describe(
        mlgate_register,
        "Register the model a run logged, with its lineage (``mlgate register --run``).",
        name="Registered model name to create the version under.",
        run_id="MLflow run ID whose logged model is registered.",
        artifact_path="Path of the model in the run's artifacts.",
        train_data="Training data (a Dataset), fingerprinted into the version's lineage.",
        eval_data="Evaluation data (a Dataset), fingerprinted into the version's lineage.",
        metrics="Metrics to record on the version, as {name: number}.",
        params="Parameters to record on the version, as {name: value}.",
        tags="Tags to set on the version, as {key: value}.",
        version="The version number registered.",
        outcome="registered, or error.",
        report="The Markdown report: model, run, artifact digest, data fingerprints, who.",
    )


def _check(image: str) -> Any:
    def mlgate_check(
        model: str,
        to: str,
        decision: Text,
        version: Text,
        outcome: Text,
        exit_code: Number,
        report: Markdown,
        candidate: str = "",
        eval_data: Dataset = None,
        target: str = "",
        policy: str = "",
        policy_path: str = "",
        fail_on_reject: bool = True,
        extra_args: list = [],  # noqa: B006
    ) -> dsl.ContainerSpec:
        own = _outputs(decision, version, outcome, exit_code, report)
        own += ["--fail-on-reject", fail_on_reject, "--policy-text", policy]
        own += ["--extra-args", extra_args]
        items: list[Any] = ["check", model, "--version", candidate, "--to", to, "--target", target]
        items += ["--policy", policy_path, _optional("eval_data", "--eval-data", eval_data)]
        return _spec(image, own, items)

    return _describe(
        mlgate_check,
        "Run the promotion gates for a version (``mlgate check``); never changes anything.",
        outcome="none (check moves nothing), or error.",
    )


def _promote(image: str) -> Any:
    def mlgate_promote(
        model: str,
        to: str,
        decision: Text,
        version: Text,
        outcome: Text,
        exit_code: Number,
        report: Markdown,
        candidate: str = "",
        reason: str = "",
        expected: str = "",
        eval_data: Dataset = None,
        target: str = "",
        policy: str = "",
        policy_path: str = "",
        dry_run: bool = False,
        fail_on_reject: bool = True,
        extra_args: list = [],  # noqa: B006
    ) -> dsl.ContainerSpec:
        own = _outputs(decision, version, outcome, exit_code, report)
        own += ["--fail-on-reject", fail_on_reject, "--policy-text", policy]
        own += ["--extra-args", extra_args]
        items: list[Any] = [
            "promote",
            model,
            "--version",
            candidate,
            "--to",
            to,
            "--reason",
            reason,
        ]
        items += ["--expected", expected, "--target", target, "--policy", policy_path]
        items += ["--dry-run", dry_run, _optional("eval_data", "--eval-data", eval_data)]
        return _spec(image, own, items)

    return _describe(
        mlgate_promote,
        "Gates, then a guarded, recorded alias move (``mlgate promote``).",
        expected="Move only if the alias points at this version now ('none': unset) [default: "
        "where it pointed when the gates started].",
        dry_run="Run the gates and report what would happen; move nothing.",
    )


def _rollback(image: str) -> Any:
    def mlgate_rollback(
        model: str,
        decision: Text,
        version: Text,
        outcome: Text,
        exit_code: Number,
        report: Markdown,
        alias: str = "",
        to_version: str = "",
        reason: str = "",
        force: bool = False,
        dry_run: bool = False,
        policy: str = "",
        policy_path: str = "",
        extra_args: list = [],  # noqa: B006
    ) -> dsl.ContainerSpec:
        own = _outputs(decision, version, outcome, exit_code, report)
        own += ["--policy-text", policy, "--extra-args", extra_args]
        items: list[Any] = ["rollback", model, "--alias", alias, "--version", to_version]
        items += ["--reason", reason, "--force", force, "--dry-run", dry_run]
        items += ["--policy", policy_path]
        return _spec(image, own, items)

    return _describe(
        mlgate_rollback,
        "Move the champion (or ``alias``) back to the version before (``mlgate rollback``).",
        alias="The alias to roll back [default: the policy's champion alias].",
        to_version="The version to return to [default: the one before, per the ledger].",
        force="Allow to_version to name a version that never held the alias (no gates run).",
    )


def _export(image: str) -> Any:
    def mlgate_export(
        target: str,
        model: str,
        manifests: Manifests,
        outcome: Text,
        exit_code: Number,
        report: Markdown,
        namespace: str = "default",
        name: str = "",
        serving_image: str = "",
        tracking_secret: str = TRACKING_SECRET,
        policy: str = "",
        policy_path: str = "",
        extra_args: list = [],  # noqa: B006
    ) -> dsl.ContainerSpec:
        own = ["--manifests", manifests.path, "--outcome", outcome, "--exit-code", exit_code]
        own += ["--report", report.path, "--policy-text", policy, "--extra-args", extra_args]
        items: list[Any] = ["export", target, model, "--namespace", namespace, "--name", name]
        items += ["--image", serving_image, "--tracking-secret", tracking_secret]
        items += ["--policy", policy_path]
        return _spec(image, own, items)

    return _describe(
        mlgate_export,
        "Kubernetes, KServe or Seldon manifests from the registry (``mlgate export``).",
        target="k8s, kserve or seldon.",
        namespace="Namespace of the resources.",
        name="Resource name [default: the model name, made DNS-safe].",
        serving_image="k8s: the image that runs mlgate serve [default: the champion's image "
        "recorded by mlgate build].",
        tracking_secret=SECRET_HELP,
        manifests="The manifests, as multi-document YAML.",
        outcome="exported, or error.",
        report="The Markdown report: the manifests.",
    )


class Step:
    """A component whose tasks never use KFP's cache (a gate must run every time).

    Call it like the component; ``.component`` is the KFP component itself (for
    ``kfp.compiler.Compiler().compile`` or ``.component_spec``).
    """

    def __init__(self, component: Any) -> None:
        self.component = component
        self.name: str = component.name
        self.__doc__ = component.description

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from kfp.dsl import pipeline_context

        task = self.component(*args, **kwargs)
        if pipeline_context.Pipeline.get_default_pipeline() is not None:  # not local execution
            task.set_caching_options(enable_caching=False)
        return task

    def __repr__(self) -> str:
        return f"Step({self.name})"


@dataclasses.dataclass(frozen=True)
class Components:
    """mlgate's five components, all running in ``image``."""

    image: str
    register: Step
    check: Step
    promote: Step
    rollback: Step
    export: Step

    def steps(self) -> dict[str, Step]:
        return {name: getattr(self, name) for name in COMMANDS}


def components(image: str = DEFAULT_IMAGE) -> Components:
    """The components running in ``image`` (an image with mlgate: ``mlgate build --tools-image``).

    For an image chosen when the pipeline runs, call ``task.set_container_image(parameter)``.
    """
    made = {
        name: Step(dsl.container_component(factory(image)))
        for name, factory in zip(
            COMMANDS, (_register, _check, _promote, _rollback, _export), strict=True
        )
    }
    return Components(image=image, **made)


def use_tracking_secret(task: Any, secret_name: str = TRACKING_SECRET) -> Any:
    """Give ``task`` the tracking server from a Kubernetes secret (needs ``kfp-kubernetes``).

    ``MLFLOW_TRACKING_URI`` must be in the secret; ``MLFLOW_TRACKING_USERNAME``,
    ``..._PASSWORD`` and ``..._TOKEN`` are used when there. Nothing secret enters the pipeline's
    parameters or spec: only the secret's name.
    """
    try:
        from kfp import kubernetes
    except ImportError:  # pragma: no cover - kfp-kubernetes is in mlgate[kfp]
        raise ImportError(
            "use_tracking_secret needs kfp-kubernetes: pip install 'mlgate[kfp]'"
        ) from None
    kubernetes.use_secret_as_env(task, secret_name, {TRACKING_URI_KEY: TRACKING_URI_KEY})
    kubernetes.use_secret_as_env(
        task, secret_name, {key: key for key in CREDENTIAL_KEYS}, optional=True
    )
    return task


def write_components(directory: str | Path, image: str = DEFAULT_IMAGE) -> list[Path]:
    """Compile the five components to ``DIRECTORY/mlgate-<command>.yaml``, caching off.

    As ``kfp.compiler.Compiler().compile`` writes a component, except that its task has
    ``cachingOptions: {}`` (the compiler would enable KFP's cache).
    """
    from kfp.compiler import pipeline_spec_builder

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, step in components(image).steps().items():
        path = out / f"mlgate-{name}.yaml"
        spec = step.component.pipeline_spec
        for task in spec.root.dag.tasks.values():
            task.caching_options.enable_cache = False
        pipeline_spec_builder.write_pipeline_spec_to_file(
            pipeline_spec=spec,
            pipeline_description=step.component.description,
            platform_spec=step.component.platform_spec,
            package_path=str(path),
        )
        written.append(path)
    return written


_DEFAULT = components()
register, check, promote, rollback, export = (_DEFAULT.steps()[name] for name in COMMANDS)


def _main(argv: list[str] | None = None) -> int:
    """``python -m mlgate.kfp DIRECTORY [IMAGE]``: write the compiled components."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mlgate.kfp",
        description="Compile mlgate's Kubeflow Pipelines components (register, check, promote, "
        "rollback, export) to DIRECTORY/mlgate-<command>.yaml, with KFP's caching off.",
    )
    parser.add_argument("directory", metavar="DIRECTORY", help="where to write the YAML files")
    parser.add_argument(
        "image",
        metavar="IMAGE",
        nargs="?",
        default=DEFAULT_IMAGE,
        help="the steps' image "
        f"(an image with mlgate: mlgate build --tools-image) [default: {DEFAULT_IMAGE}]",
    )
    args = parser.parse_args(argv)
    for written_path in write_components(args.directory, args.image):
        print(written_path)
    return 0


if __name__ == "__main__":  # python -m mlgate.kfp DIRECTORY [IMAGE]
    sys.exit(_main())
