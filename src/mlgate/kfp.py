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
        check = mg.check(model="churn", version=version, to="challenger", fail_on_reject=False)
        use_tracking_secret(check)
        with dsl.If(check.outputs["decision"] == "passed"):
            use_tracking_secret(mg.promote(model="churn", version=version, to="challenger"))

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
from pathlib import Path
from typing import Any

from kfp import dsl

from mlgate._version import __version__

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
        """Register the model a run logged, with its lineage (``mlgate register --run``)."""
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

    return mlgate_register


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
        """Run the promotion gates for a version (``mlgate check``); never changes anything."""
        own = _outputs(decision, version, outcome, exit_code, report)
        own += ["--fail-on-reject", fail_on_reject, "--policy-text", policy]
        own += ["--extra-args", extra_args]
        items: list[Any] = ["check", model, "--version", candidate, "--to", to, "--target", target]
        items += ["--policy", policy_path, _optional("eval_data", "--eval-data", eval_data)]
        return _spec(image, own, items)

    return mlgate_check


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
        """Gates, then a guarded, recorded alias move (``mlgate promote``)."""
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

    return mlgate_promote


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
        """Move the champion (or ``alias``) back to the version before (``mlgate rollback``)."""
        own = _outputs(decision, version, outcome, exit_code, report)
        own += ["--policy-text", policy, "--extra-args", extra_args]
        items: list[Any] = ["rollback", model, "--alias", alias, "--version", to_version]
        items += ["--reason", reason, "--force", force, "--dry-run", dry_run]
        items += ["--policy", policy_path]
        return _spec(image, own, items)

    return mlgate_rollback


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
        """Kubernetes, KServe or Seldon manifests from the registry (``mlgate export``)."""
        own = ["--manifests", manifests.path, "--outcome", outcome, "--exit-code", exit_code]
        own += ["--report", report.path, "--policy-text", policy, "--extra-args", extra_args]
        items: list[Any] = ["export", target, model, "--namespace", namespace, "--name", name]
        items += ["--image", serving_image, "--tracking-secret", tracking_secret]
        items += ["--policy", policy_path]
        return _spec(image, own, items)

    return mlgate_export


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


if __name__ == "__main__":  # python -m mlgate.kfp DIRECTORY [IMAGE]
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m mlgate.kfp DIRECTORY [IMAGE]")
    for written_path in write_components(*sys.argv[1:]):
        print(written_path)
