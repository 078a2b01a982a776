"""`tandem setup`: idempotent, never replaces keys without --force, keys private, and
the worker set-up says what is missing when the worker's part was not copied."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from tandem.cli.main import build_parser
from tandem.cli.setup import (
    GatewayLayout,
    WorkerLayout,
    certificate_names,
    copy_command,
    run_setup,
)
from tandem.security.tokens import TokenTable
from tandem.settings import GatewaySettings, WorkerSettings


def _setup(*argv: str) -> int:
    args = build_parser().parse_args(["setup", *argv])
    assert isinstance(args, argparse.Namespace)
    return run_setup(args)


def _contents(home: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_setup_gateway_is_idempotent_and_force_makes_new_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / ".tandem"
    assert _setup("gateway", "--home", str(home)) == 0
    first = _contents(home)
    assert _setup("gateway", "--home", str(home)) == 0
    assert _contents(home) == first
    assert "kept" in capsys.readouterr().out
    assert _setup("gateway", "--home", str(home), "--force") == 0
    layout = GatewayLayout(home)
    keys = (layout.pki / "gateway-key.pem", layout.link_token, layout.client_token)
    for key in keys:
        assert _contents(home)[key] != first[key], key


def test_keys_and_tokens_are_private_and_the_env_files_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, mini = tmp_path / "book", tmp_path / "mini"
    assert _setup("gateway", "--home", str(home)) == 0
    layout = GatewayLayout(home)
    assert _mode(home) == 0o700
    private = [
        layout.pki / "ca-key.pem",
        layout.pki / "gateway-key.pem",
        layout.link_token,
        layout.client_token,
        layout.worker_part.key,
        layout.worker_part.accepted_tokens,
    ]
    for path in private:
        assert _mode(path) == 0o600, path
    # The worker's part holds no gateway key and no CA key.
    copied = {p.name for p in layout.worker_part.home.rglob("*") if p.is_file()}
    assert copied == {"ca.pem", "worker.pem", "worker-key.pem", "worker-tokens"}

    for source in WorkerLayout(layout.worker_part.home).copied_files:
        target = mini / source.relative_to(layout.worker_part.home)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    assert _setup("worker", "--home", str(mini)) == 0

    for variable in [v for v in __import__("os").environ if v.startswith("TANDEM_")]:
        monkeypatch.delenv(variable)
    gateway = GatewaySettings(_env_file=layout.env_file)  # type: ignore[call-arg]
    worker = WorkerSettings(_env_file=WorkerLayout(mini).env_file)  # type: ignore[call-arg]
    assert gateway.worker_tls_ca and gateway.worker_tls_cert and gateway.worker_token_file
    assert gateway.auth_tokens_file and gateway.openai_listen == "127.0.0.1:8000"
    assert worker.tls_client_ca and worker.tls_cert and worker.auth_tokens_file
    assert worker.listen == "169.254.19.104:50052" and worker.num_ctx == 32768
    # The worker accepts exactly the gateway's link token, for the worker service only.
    table = TokenTable.load(worker.auth_tokens_file)
    principal = table.authenticate(layout.link_token.read_text().strip())
    assert principal is not None and principal.name == "gateway"
    assert principal.may_call("/tandem.v1.WorkerService/Generate")
    assert not principal.may_call("/tandem.v1.GatewayService/Route")


def test_setup_worker_without_the_copied_files_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _setup("worker", "--home", str(tmp_path / "empty")) == 1
    error = capsys.readouterr().err
    assert "worker-key.pem" in error and "tandem setup gateway" in error
    assert not (tmp_path / "empty" / "worker.env").exists()


def test_no_client_token_leaves_the_loopback_gateway_open(tmp_path: Path) -> None:
    assert _setup("gateway", "--home", str(tmp_path), "--no-client-token") == 0
    text = GatewayLayout(tmp_path).env_file.read_text()
    assert "TANDEM_GATEWAY_AUTH_TOKENS_FILE" not in text
    assert "TANDEM_GATEWAY_WORKER_TOKEN_FILE" in text  # the worker link stays secured


def test_the_copy_command_quotes_paths() -> None:
    command = copy_command(Path("/Users/me/my tandem/worker-part"), "me@169.254.19.104", ".tandem")
    assert command == "rsync -a '/Users/me/my tandem/worker-part'/ me@169.254.19.104:.tandem/"


def test_a_worker_address_the_certificate_does_not_name_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / ".tandem"
    assert _setup("gateway", "--home", str(home), "--worker", "169.254.19.104:50052") == 0
    worker_cert = GatewayLayout(home).pki / "worker.pem"
    assert {"169.254.19.104", "127.0.0.1", "localhost"} <= certificate_names(worker_cert)
    capsys.readouterr()
    assert _setup("gateway", "--home", str(home), "--worker", "169.254.19.7:50052") == 0
    assert "not valid for 169.254.19.7" in capsys.readouterr().err
    assert _setup("gateway", "--home", str(home), "--worker", "169.254.19.7:50052", "--force") == 0
    assert "169.254.19.7" in certificate_names(worker_cert)
    assert "not valid" not in capsys.readouterr().err
