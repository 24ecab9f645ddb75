"""Authenticated tracking servers: permissions are respected and credentials never leak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlgate
from mlgate.errors import EXIT_NOT_PERMITTED
from mlgate.keys import Tags
from mlgate.registry.lease import lease_name
from mlgate.testing import TrackingServer

ADMIN_PASSWORD = "Canary-Adm1n-7f3a9c"
READER_PASSWORD = "Canary-Re4der-b81e2d"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """`mlflow server --app-name basic-auth` with an admin and a READ-only user."""
    root = tmp_path_factory.mktemp("auth-server")
    ini = root / "auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    with TrackingServer(root, extra_args=["--app-name", "basic-auth"], env=env) as server:
        yield server


def as_user(monkeypatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


@pytest.fixture
def secured_model(auth_server, monkeypatch, classifier, tmp_path, inferred_requirements):
    """As admin: a model with a champion (v1) and a candidate (v2); a READ-only user 'reader'."""
    from mlflow.server import get_app_client

    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server.uri)
    as_user(monkeypatch, "admin", ADMIN_PASSWORD)
    auth = get_app_client("basic-auth", tracking_uri=auth_server.uri)
    try:
        auth.create_user("reader", READER_PASSWORD)
    except Exception as exc:  # noqa: BLE001 - the user exists from an earlier test of this module
        assert "RESOURCE_ALREADY_EXISTS" in str(exc) or "already exists" in str(exc)
    model, train, test = classifier
    store = mlgate.Store(auth_server.uri)
    name = f"secure-{os.urandom(4).hex()}"
    policy = tmp_path / "mlgate.toml"
    policy.write_text(
        "[[default.gates.champion]]\ntype = 'metric'\nmetric = 'accuracy'\nmin = 0.5\n"
    )
    v1 = mlgate.register(
        model,
        name=name,
        train_data=train,
        eval_data=test,
        metrics={"accuracy": 0.9},
        input_example=test.drop(columns="label").head(2),
        log_model_kwargs={"pip_requirements": inferred_requirements},
        store=store,
    ).number
    mlgate.promote(name, v1, to="champion", policy=policy, store=store)
    v2 = mlgate.register(
        model,
        name=name,
        train_data=train,
        eval_data=test,
        metrics={"accuracy": 0.9},
        log_model_kwargs={"pip_requirements": inferred_requirements},
        store=store,
    ).number
    return name, v1, v2, policy, store


def test_read_only_user_gets_exit_5_and_nothing_changes(
    secured_model, auth_server, monkeypatch, capsys
):
    """A READ-only user's promotion: exit 5, one line, no alias move, no evidence, no lease left."""
    from mlgate.cli import main

    name, v1, v2, policy, admin_store = secured_model
    as_user(monkeypatch, "reader", READER_PASSWORD)
    capsys.readouterr()
    rc = main(["promote", name, "--version", v2, "--to", "champion", "--policy", str(policy)])
    err = capsys.readouterr().err
    assert rc == EXIT_NOT_PERMITTED, err
    assert [line for line in err.splitlines() if line.startswith("mlgate:")] == [
        err.strip().splitlines()[-1]
    ]
    assert "not permitted" in err and "Traceback" not in err
    as_user(monkeypatch, "admin", ADMIN_PASSWORD)
    assert admin_store.version_by_alias(name, "champion").version == v1
    assert Tags.gates("champion") not in admin_store.get_version(name, v2).tags
    assert not admin_store.model_exists(lease_name(name))
    events = mlgate.history(name, policy=policy, store=admin_store)
    # Newest first: v2 registered after v1's promotion; the refusal could not be written.
    assert [(e.kind, e.outcome, e.after) for e in events] == [
        ("register", "registered", v2),
        ("promote", "moved", v1),
        ("register", "registered", v1),
    ]
    # Reading is allowed: check and history work for the reader.
    as_user(monkeypatch, "reader", READER_PASSWORD)
    assert main(["check", name, "--version", v2, "--to", "champion", "--policy", str(policy)]) == 0
    assert main(["history", name, "--policy", str(policy)]) == 0


def test_wrong_password_is_exit_5(secured_model, monkeypatch, capsys):
    """Bad credentials are 'not permitted' (exit 5), not a crash."""
    from mlgate.cli import main

    name, *_ = secured_model
    as_user(monkeypatch, "admin", "wrong-password")
    assert main(["status", name]) == EXIT_NOT_PERMITTED
    assert ADMIN_PASSWORD not in capsys.readouterr().err


def test_credentials_never_appear_anywhere(secured_model, auth_server, monkeypatch, tmp_path):
    """Every command run with a recognisable password: it is in no output, report, event or tag."""
    name, _v1, v2, policy, store = secured_model
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": auth_server.uri,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "out.txt"),
    }
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    commands = [
        ["fingerprint", str(data)],
        ["show", f"{name}/{v2}", "--json"],
        ["check", name, "--version", v2, "--to", "champion", "--policy", str(policy), "--json"],
        [
            "promote",
            name,
            "--version",
            v2,
            "--to",
            "champion",
            "--policy",
            str(policy),
            "--markdown",
        ],
        ["rollback", name, "--policy", str(policy)],
        ["history", name, "--json"],
        ["status", name, "--json"],
        ["traffic", name, "--weight", "5"],
        ["show", "no-such-model"],
        ["--tracking-uri", f"http://admin:{ADMIN_PASSWORD}@127.0.0.1:9", "status", name],
    ]
    seen = []
    for cmd in commands:
        out = subprocess.run(
            [sys.executable, "-m", "mlgate", *cmd],
            env={**env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        seen += [out.stdout, out.stderr]
    assert any("***@127.0.0.1:9" in s for s in seen), (
        "the URI with credentials was not shown redacted"
    )
    as_user(monkeypatch, "admin", ADMIN_PASSWORD)
    seen += [json.dumps(e.to_dict()) for e in mlgate.history(name, store=store)]
    seen += [json.dumps(v.tags) for v in store.search_versions(name)]
    seen += [json.dumps(store.get_model(name).tags)]
    seen += [p.read_text() for p in tmp_path.glob("*") if p.is_file()]
    for text in seen:
        assert ADMIN_PASSWORD not in text


def test_redact_helper():
    """URIs with user:password@ and the configured password are masked."""
    from mlgate.config import redact

    os.environ["MLFLOW_TRACKING_PASSWORD"] = "p4ssw0rd-xyz"
    try:
        assert (
            redact("http://u:p4ssw0rd-xyz@host/x failed with p4ssw0rd-xyz")
            == "http://***@host/x failed with ***"
        )
    finally:
        del os.environ["MLFLOW_TRACKING_PASSWORD"]
    assert Path(__file__).name  # redact needs no server
