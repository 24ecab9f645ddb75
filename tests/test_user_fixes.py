"""What a new user met after adoption (issue 24): PythonModel registration, errors that keep their
cause, check and promote agreeing, attach finishing what was interrupted, and quiet output."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import uuid
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import mlgate
from conftest import write_policy
from mlgate.cli import main
from mlgate.errors import (
    EXIT_USAGE,
    GateRejected,
    PolicyError,
    TrackingServerError,
    UsageError,
)
from mlgate.keys import Tags
from mlgate.promotion.policy import load_policy, parse_policy
from mlgate.serving.follower import Follower, ServeConfig
from mlgate.serving.handlers import Handlers

FEATURES = [f"f{i}" for i in range(6)]
PIP = {"pip_requirements": ["mlflow", "scikit-learn", "pandas"]}  # no inference: seconds saved


# MLflow's advice to add type hints, given at class definition under its own "once" filter:
# recorded (and dropped) rather than shown
with warnings.catch_warnings(record=True):

    class Echo(mlflow.pyfunc.PythonModel):
        """A PythonModel without artifacts: answers its input."""

        def predict(self, context, model_input, params=None):
            return model_input

    class Scaled(mlflow.pyfunc.PythonModel):
        """A PythonModel with an artifact: multiplies by the number in its file."""

        def load_context(self, context):
            self.k = float(Path(context.artifacts["k"]).read_text())

        def predict(self, context, model_input, params=None):
            return model_input * self.k


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- one registered version


@pytest.fixture(scope="module")
def registered(tracking_server, classifier, tmp_path_factory):
    """One sklearn version of a fresh model, its evaluation CSV and a policy directory."""
    model, train, test = classifier
    base = tmp_path_factory.mktemp("user-fixes")
    name = f"fixes-{uuid.uuid4().hex[:8]}"
    eval_csv = base / "eval.csv"
    test.to_csv(eval_csv, index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLGATE_CACHE_DIR", str(base / "cache"))
        store = mlgate.Store(tracking_server.uri)
        reg = mlgate.register(
            model,
            name=name,
            train_data=train,
            eval_data=test,
            input_example=train[FEATURES].head(3),
            code_path=base,
            log_model_kwargs=PIP,
            store=store,
        )
    return name, reg, eval_csv, base


# --------------------------------------------------------------------------- Major 1


def test_every_model_kind_the_readme_lists_registers(
    store, model_name, classifier, tmp_path, capsys, tracking_uri
):
    """A PythonModel (with and without artifacts), an estimator, a pipeline, a model URI and a
    run all register and load; none prints MLflow's chatter or leaves warning filters changed."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, train, test = classifier
    x, y = train[FEATURES], train["label"]
    (tmp_path / "k.txt").write_text("2")
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    filters = list(warnings.filters)
    handlers = list(logging.getLogger("mlflow").handlers)
    common = {"name": model_name, "code_path": tmp_path, "store": store}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        echo = mlgate.register(Echo(), log_model_kwargs=PIP, **common)
        scaled = mlgate.register(
            Scaled(),
            input_example=frame,
            log_model_kwargs={**PIP, "artifacts": {"k": str(tmp_path / "k.txt")}},
            **common,
        )
        pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
        piped = mlgate.register(pipeline, input_example=x.head(3), log_model_kwargs=PIP, **common)
        plain = mlgate.register(
            classifier[0], input_example=x.head(3), log_model_kwargs=PIP, **common
        )
        by_uri = mlgate.register(piped.model_uri, **common)
        code, out, err = _cli(
            capsys, "register", "--name", model_name, "--run", piped.run_id, "--json"
        )
    assert code == 0, err
    assert err == "", err  # no "Successfully registered model", no dataset-source warning
    assert "View run" not in out
    assert [w for w in seen if "mlflow" in w.filename] == []
    assert warnings.filters == filters and logging.getLogger("mlflow").handlers == handlers
    assert [r.number for r in (echo, scaled, piped, plain, by_uri)] == ["1", "2", "3", "4", "5"]
    assert store.latest_version(model_name).version == "6"

    def load(number):
        return store.load_pyfunc(f"models:/{model_name}/{number}")

    assert load(1).predict(frame).equals(frame)
    assert load(2).predict(frame)["a"].tolist() == [2.0, 4.0]
    assert load(2).metadata.get_input_schema().input_names() == ["a"]  # inferred by MLflow
    want = pipeline.predict(test[FEATURES])
    for number in (3, 5, 6):
        assert np.array_equal(load(number).predict(test[FEATURES]), want), number
    assert np.array_equal(load(4).predict(test[FEATURES]), classifier[0].predict(test[FEATURES]))


def test_model_names_with_surrounding_whitespace_are_refused(store, classifier):
    """' diab' is refused like 'a/b' (every reference is read stripped), before any I/O."""
    for name in (" diab", "diab ", "\tdiab"):
        with pytest.raises(UsageError, match="cannot start or end with whitespace"):
            mlgate.register(classifier[0], name=name, store=store)
        assert not store.model_exists(name)


# --------------------------------------------------------------------------- Major 2: serving


@pytest.fixture(scope="module")
def typed_model(tmp_path_factory):
    """A saved regressor over two double columns and one long column (y = 2*x0 + n)."""
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame(
        {
            "x0": np.arange(20, dtype=float),
            "x1": np.arange(20, dtype=float) % 3,
            "n": np.arange(20, dtype="int64") % 5,
        }
    )
    model = LinearRegression().fit(x, 2 * x["x0"] + x["n"])
    path = tmp_path_factory.mktemp("typed") / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hint about integer columns
        mlflow.sklearn.save_model(model, str(path), signature=infer_signature(x, model.predict(x)))
    return str(path)


def _handlers(path: str) -> Handlers:
    cfg = ServeConfig(model="typed", model_dir=path, verify_digest=False)
    follower = Follower(cfg)
    assert follower.refresh()
    return Handlers(cfg, follower, rng=random.Random(0))


def _v2(*inputs: tuple[str, str, list]) -> bytes:
    return json.dumps(
        {"inputs": [{"name": n, "datatype": t, "shape": [len(d)], "data": d} for n, t, d in inputs]}
    ).encode()


def _score(path: str, calls):
    h = _handlers(path)

    async def run():
        return [await call(h) for call in calls]

    try:
        return asyncio.run(run())
    finally:
        h.follower.stop()


X0, X1, N = ("x0", "FP64", [1.0]), ("x1", "FP64", [2.0]), ("n", "INT64", [3])


def test_scoring_errors_say_what_was_wrong_in_one_line(typed_model):
    """Every 4xx names the column and the types (expected, received) in one line, never a
    printout of the frame, on /invocations and V2 alike."""
    invocations = {
        b'{"dataframe_split": {"columns": ["x0", "n"], "data": [[1.0, 2]]}}': (
            "the model rejected the input: Model is missing inputs ['x1']."
        ),
        b'{"dataframe_records": []}': "the model rejected the input: the request has no rows",
        b'{"foo": 1}': "it has input fields: ['foo']",
    }
    v2 = {
        _v2(X0, X1): "the request lacks model inputs ['n'] (the model takes ['x0', 'x1', 'n'])",
        _v2(("x0", "BYTES", ["a"]), X1, N): "input 'x0' is BYTES; the model's signature wants FP64",
        _v2(("x0", "BOOL", [True]), X1, N): "input 'x0' is BOOL; the model's signature wants FP64",
        _v2(X0, X1, ("n", "FP64", [1.5])): "input 'n' is FP64; the model's signature wants INT64",
        _v2(X0, X1, ("n", "FP64", [1.0])): "input 'n' is FP64; the model's signature wants INT64",
    }
    calls = [lambda h, b=b: h.invocations(b) for b in invocations]
    calls += [lambda h, b=b: h.v2_infer("typed", b) for b in v2]
    replies = _score(typed_model, calls)
    messages = [r.json()["message"] for r in replies[: len(invocations)]]
    messages += [r.json()["error"] for r in replies[len(invocations) :]]
    wanted = [*invocations.values(), *v2.values()]
    for reply, message, want in zip(replies, messages, wanted, strict=True):
        assert reply.status == 400, message
        assert want in message
        assert "\n" not in message and "Failed to enforce" not in message
        assert len(message) < 200, message


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_non_finite_answers_keep_mlflows_tokens_on_invocations_and_are_null_on_v2(typed_model):
    """An overflowing prediction is MLflow's ``Infinity`` on /invocations (as `mlflow models
    serve` writes it) and null in a V2 answer, which a strict JSON parser reads."""

    def strict(text: bytes):
        def refuse(token):
            raise ValueError(token)

        return json.loads(text, parse_constant=refuse)

    rows = b'{"dataframe_split": {"columns": ["x0", "x1", "n"], "data": [[1e308, 0.0, 1]]}}'
    mlflow_reply, v2_reply = _score(
        typed_model,
        [
            lambda h: h.invocations(rows),
            lambda h: h.v2_infer(
                "typed",
                _v2(
                    ("x0", "FP64", [1e308, 1.0]), ("x1", "FP64", [0.0, 0.0]), ("n", "INT64", [1, 1])
                ),
            ),
        ],
    )
    assert mlflow_reply.status == 200 and b"Infinity" in mlflow_reply.body
    assert v2_reply.status == 200, v2_reply.body
    assert strict(v2_reply.body)["outputs"][0]["data"][0] is None


# --------------------------------------------------------------------------- Major 3 and policies


def test_evaluation_data_missing_a_model_input_is_said_once(registered, tmp_path, tracking_uri):
    """check with evaluation data that lacks an input column fails in one line naming it."""
    name, reg, eval_csv, _ = registered
    frame = pd.read_csv(eval_csv).drop(columns="f3")
    policy = write_policy(
        tmp_path,
        '[default.gates]\nchampion = [{type = "metric", metric = "accuracy", min = 0.1}]\n',
    )
    with pytest.raises(UsageError) as err:
        mlgate.check(
            name, reg.number, to="champion", policy=policy, eval_data=frame, target="label"
        )
    assert str(err.value).startswith("evaluation data is missing model inputs ['f3']")
    assert "\n" not in err.value.message and "Failed to enforce" not in str(err.value)


def test_malformed_evaluation_settings_name_the_policy_file_and_key(
    registered, tmp_path, tracking_uri
):
    """A missing evaluation file and a target that is not a column name the file and the key."""
    name, reg, eval_csv, _ = registered
    gate = '[{type = "metric", metric = "accuracy", min = 0.1}]'
    for evaluation, key, words in (
        (f'data = "{tmp_path / "nope.csv"}"\ntarget = "label"', "evaluation.data", "no such file"),
        (f'data = "{eval_csv}"\ntarget = "lable"', "evaluation.target", "'lable' is not a column"),
    ):
        policy = write_policy(
            tmp_path, f"[default.gates]\nchampion = {gate}\n[default.evaluation]\n{evaluation}\n"
        )
        with pytest.raises(PolicyError) as err:
            mlgate.check(name, reg.number, to="champion", policy=policy)
        assert err.value.path == str(policy) and err.value.key == f"default.{key}"
        assert words in err.value.problem


def test_check_agrees_with_promote_when_the_version_already_holds_the_alias(
    registered, tmp_path, capsys, tracking_uri
):
    """check of the champion to champion says unchanged (exit 0), as promote does; never -0."""
    name, reg, eval_csv, _ = registered
    policy = write_policy(
        tmp_path,
        "[default.gates]\n"
        'champion = [{type = "improvement", metric = "accuracy"}]\n'
        f'[default.evaluation]\ndata = "{eval_csv}"\ntarget = "label"\n',
    )
    store = mlgate.Store(tracking_uri)
    store.set_alias(name, "champion", reg.number)
    decision = mlgate.check(name, reg.number, to="champion", policy=policy)
    assert decision.passed and decision.already_there and decision.results == ()
    code, out, err = _cli(
        capsys, "check", f"{name}/{reg.number}", "--to", "champion", "--policy", str(policy)
    )
    assert code == 0, err
    # a printed number "-0" (as in "improvement -0 ... interval [-0, 0]"), not the "-0" that a
    # random model name ("fixes-05f3...") or a temporary path ("pytest-0/") may hold
    assert out.startswith("UNCHANGED") and not re.search(r"(?<![\w/.-])-0(?![\w.])", out)
    event = mlgate.promote(name, reg.number, to="champion", policy=policy, dry_run=True)
    assert event.outcome == "unchanged"
    from mlgate.promotion.gates.base import fmt
    from mlgate.report import _num

    assert fmt(-0.0) == "0" == _num(-0.0)


def test_case_variant_aliases_are_refused_and_unknown_ones_name_a_near_miss(
    registered, tmp_path, tracking_uri
):
    """`Champion = []` beside the champion alias is a policy error; `--to champoin` suggests
    champion; a pyproject policy's keys start with tool.mlgate."""
    with pytest.raises(PolicyError) as err:
        parse_policy({"default": {"gates": {"Champion": []}}}, "p.toml")
    assert err.value.key == "default.gates.Champion" and "'champion'" in err.value.problem
    (tmp_path / "pyproject.toml").write_text(
        '[tool.mlgate.models."x y".gates]\nchampion = []\nChallenger = []\n'
    )
    with pytest.raises(PolicyError) as err:
        load_policy(tmp_path / "pyproject.toml")
    assert err.value.key == 'tool.mlgate.models."x y".gates.Challenger'
    name, reg, _, _ = registered
    policy = write_policy(tmp_path, "[default.gates]\nchampion = []\n")
    with pytest.raises(PolicyError, match=r"did you mean 'champion'\?"):
        mlgate.check(name, reg.number, to="champoin", policy=policy)


def test_policy_hints_are_valid_toml_with_the_pyproject_prefix(tmp_path):
    """The "no gates" hint quotes a model name TOML must quote, and names tool.mlgate keys."""
    from mlgate.promotion.workflow import _specs

    (tmp_path / "pyproject.toml").write_text('[tool.mlgate.models."x y".gates]\nchampion = []\n')
    pol = load_policy(tmp_path / "pyproject.toml")
    with pytest.raises(PolicyError) as err:
        _specs(pol, pol.for_model("x y"), "challenger")
    assert err.value.key == 'tool.mlgate.models."x y".gates.challenger'
    assert '[tool.mlgate.models."x y".gates]' in str(err.value)


# --------------------------------------------------------------------------- trust


def test_an_interrupted_attach_is_finished_by_running_attach_again(registered, tracking_uri):
    """A pending attach whose tags are on the version is settled by the rerun status advises."""
    from mlgate.promotion.ledger import Ledger, attach_event

    name, reg, _, _ = registered
    store = mlgate.Store(tracking_uri)
    ledger = Ledger(store, "mlgate-ledger")
    pending = ledger.append(
        attach_event(name, reg.number, written=(Tags.ARTIFACT_DIGEST,), forced={})
    )
    assert any("interrupted" in n for n in mlgate.status(name, store=store).notes)
    done = mlgate.attach(f"{name}/{reg.number}", store=store)
    assert not done.changed
    assert not any("interrupted" in n for n in mlgate.status(name, store=store).notes)
    settled = next(e for e in mlgate.history(name, store=store) if e.event_id == pending.event_id)
    assert settled.outcome == "attached" and "finished by a later attach" in settled.message


def test_a_server_that_never_answers_is_reported_as_such_and_quickly(monkeypatch):
    """A server that accepts connections and stays silent is "no answer in N s", after N s
    rather than MLflow's four timed-out tries; the same words when MLflow's retries time out."""
    import requests
    import urllib3

    from mlgate.registry._translate import translate

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody ever reads or answers
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(TrackingServerError) as err:
            mlgate.Store(uri).get_model("anything")
    assert str(err.value) == f"cannot reach the tracking server at {uri}: no answer in 1 s"
    timed_out = urllib3.exceptions.ReadTimeoutError(None, "/api", "read timed out")
    wrapped = requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, "/api", reason=timed_out)
    )
    assert "no answer in 1 s (each try)" in str(translate(wrapped, "reading"))


# --------------------------------------------------------------------------- smaller wording


def test_smaller_wording(registered, tmp_path, capsys, tracking_uri):
    """rollback --version abc, show m/2/3, a dry-run rejection, attach's output, the lineage
    gate on a plain-MLflow version and a long column list each say the right thing."""
    from mlgate.promotion.evaluation import evaluate
    from mlgate.promotion.gates import Evidence, VersionEvidence, run_gates
    from mlgate.promotion.policy import GateSpec
    from mlgate.registry.refs import parse_ref

    name, reg, eval_csv, _ = registered
    with pytest.raises(UsageError, match="bad model reference 'm/2/3'"):
        parse_ref("m/2/3")
    code, _, err = _cli(capsys, "show", f"{name}/2/3")
    assert code == EXIT_USAGE and "bad model reference" in err and "MLflow" not in err

    policy = write_policy(
        tmp_path,
        "[default.gates]\n"
        'challenger = [{type = "metric", metric = "accuracy", min = 2.0}]\n'
        f'[default.evaluation]\ndata = "{eval_csv}"\ntarget = "label"\n',
    )
    with pytest.raises(GateRejected, match=r"\(dry run: nothing recorded\)"):
        mlgate.promote(name, reg.number, to="challenger", policy=policy, dry_run=True)
    code, _, err = _cli(capsys, "rollback", name, "--version", "abc", "--policy", str(policy))
    assert code == EXIT_USAGE and "a rollback goes to a version number, got 'abc'" in err
    assert "mlgate promote" not in err

    code, out, err = _cli(capsys, "attach", f"{name}/{reg.number}", "--policy", str(policy))
    assert code == 0, err
    assert out.splitlines() == [
        f"{name} version {reg.number} already has this lineage: nothing changed",
        f"(mlgate show {name}/{reg.number} prints it)",
    ]

    gate = GateSpec(type="lineage", options={"type": "lineage"}, where="test", name="lineage")
    plain = VersionEvidence(version="2", tags={Tags.GIT_COMMIT: "a" * 40})
    (result,) = run_gates(
        [gate], Evidence(model="m", alias="champion", candidate=plain, champion=None)
    )
    assert "require_clean = false" in result.reason

    wide = pd.DataFrame({f"c{i}": [1] for i in range(25)})
    with pytest.raises(UsageError) as err:
        evaluate(None, [], wide, target="label")  # type: ignore[arg-type]
    assert err.value.hint.endswith("c19, … (25 columns)")
