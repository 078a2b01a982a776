"""``tandem setup gateway|worker``: prepare a node's config folder, secure by default.

On the MacBook, ``tandem setup gateway`` writes into ``--home`` (default ``~/.tandem``)::

    gateway.env            every setting, with absolute paths (tandem --env-file ...)
    pki/                   the CA (ca.pem, ca-key.pem) and both nodes' certificates
    tokens/worker-link.token   the gateway's token for the worker
    tokens/client.token        the token of the clients on this Mac (tandem ask, SDK...)
    gateway-tokens         the gateway's accepted tokens (the client token's hash)
    worker-part/           what the Mac Mini needs: ca.pem, its certificate and key,
                           worker-tokens (the gateway token's hash)

and prints the one command that copies ``worker-part/`` to the Mac Mini, where
``tandem setup worker`` writes ``worker.env`` next to the copied files. The
worker link is mutual TLS plus a token. Re-running keeps every key and token
(the env file is rewritten from the options); ``--force`` makes new ones.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from tandem.security.certs import bundle_paths, generate_bundle, write_file
from tandem.security.tokens import mint_token, token_line
from tandem.settings import parse_host_port

DEFAULT_HOME = Path.home() / ".tandem"
DEFAULT_WORKER = "169.254.19.104:50052"
WORKER_PART = "worker-part"
GATEWAY_ENV = "gateway.env"
WORKER_ENV = "worker.env"
# The names the gateway and the clients authenticate as.
GATEWAY_CLIENT_NAME = "gateway"
LOCAL_CLIENT_NAME = "local-clients"


@dataclass(frozen=True)
class GatewayLayout:
    """Where ``tandem setup gateway`` puts each file under ``home``."""

    home: Path

    @property
    def pki(self) -> Path:
        return self.home / "pki"

    @property
    def env_file(self) -> Path:
        return self.home / GATEWAY_ENV

    @property
    def link_token(self) -> Path:
        return self.home / "tokens" / "worker-link.token"

    @property
    def client_token(self) -> Path:
        return self.home / "tokens" / "client.token"

    @property
    def accepted_tokens(self) -> Path:
        return self.home / "gateway-tokens"

    @property
    def worker_part(self) -> WorkerLayout:
        return WorkerLayout(self.home / WORKER_PART)


@dataclass(frozen=True)
class WorkerLayout:
    """The worker's files: in ``worker-part/`` on the MacBook, in ``--home`` on the Mac Mini."""

    home: Path

    @property
    def ca(self) -> Path:
        return self.home / "pki" / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.home / "pki" / "worker.pem"

    @property
    def key(self) -> Path:
        return self.home / "pki" / "worker-key.pem"

    @property
    def accepted_tokens(self) -> Path:
        return self.home / "worker-tokens"

    @property
    def env_file(self) -> Path:
        return self.home / WORKER_ENV

    @property
    def copied_files(self) -> tuple[Path, ...]:
        return (self.ca, self.cert, self.key, self.accepted_tokens)


def add_setup_arguments(parser: argparse.ArgumentParser) -> None:
    roles = parser.add_subparsers(dest="role", required=True, metavar="ROLE")
    gateway = roles.add_parser(
        "gateway",
        help="the MacBook: CA, certificates, tokens, gateway.env, and the worker's part",
        description="Prepare the gateway's config folder; prints the command that copies "
        "the worker's part to the Mac Mini.",
    )
    _common(
        gateway,
        listen="127.0.0.1:50051",
        model="llama3.1:8b",
        num_ctx=8192,
        metrics="127.0.0.1:9461",
        node="macbook",
    )
    gateway.add_argument(
        "--worker",
        default=DEFAULT_WORKER,
        metavar="HOST:PORT",
        help=f"the worker's address (default {DEFAULT_WORKER}, the Mac Mini over Thunderbolt)",
    )
    gateway.add_argument(
        "--openai-listen",
        default="127.0.0.1:8000",
        metavar="HOST:PORT",
        help="serve the OpenAI-compatible endpoint from the gateway process here; '' for none "
        "(default 127.0.0.1:8000)",
    )
    gateway.add_argument(
        "--no-client-token",
        dest="client_token",
        action="store_false",
        help="let local clients call the gateway without a token (it listens on loopback)",
    )
    gateway.add_argument(
        "--san",
        action="append",
        default=None,
        metavar="NAME_OR_IP",
        help="extra names for the gateway's certificate (default: localhost, 127.0.0.1)",
    )
    gateway.add_argument(
        "--worker-ssh",
        default=None,
        metavar="[USER@]HOST",
        help="how to reach the Mac Mini over SSH in the printed copy command "
        "(default: the worker's host)",
    )
    gateway.add_argument(
        "--worker-home",
        default=".tandem",
        metavar="PATH",
        help="the worker's --home on the Mac Mini, relative to its home folder (default .tandem)",
    )
    worker = roles.add_parser(
        "worker",
        help="the Mac Mini: worker.env next to the files copied from the gateway",
        description="Write worker.env for the certificate, key and tokens copied from "
        "`tandem setup gateway`'s worker-part/.",
    )
    _common(
        worker,
        listen=DEFAULT_WORKER,
        model="qwen3-coder-next",
        num_ctx=32768,
        metrics="127.0.0.1:9462",
        node="macmini",
    )
    worker.add_argument(
        "--max-concurrent-generations",
        type=int,
        default=1,
        metavar="N",
        help="generations at once; match OLLAMA_NUM_PARALLEL (default 1)",
    )


def _common(
    parser: argparse.ArgumentParser,
    *,
    listen: str,
    model: str,
    num_ctx: int,
    metrics: str,
    node: str,
) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        default=DEFAULT_HOME,
        metavar="DIR",
        help=f"the config folder (default {DEFAULT_HOME})",
    )
    parser.add_argument(
        "--listen",
        default=listen,
        metavar="HOST:PORT",
        help=f"address to serve gRPC on (default {listen})",
    )
    parser.add_argument(
        "--ollama-url",
        default="http://localhost:11434",
        metavar="URL",
        help="this Mac's Ollama (default http://localhost:11434)",
    )
    parser.add_argument("--model", default=model, help=f"the Ollama model (default {model})")
    parser.add_argument(
        "--num-ctx",
        type=int,
        default=num_ctx,
        metavar="N",
        help=f"context window; match OLLAMA_CONTEXT_LENGTH (default {num_ctx})",
    )
    parser.add_argument(
        "--metrics-listen",
        default=metrics,
        metavar="HOST:PORT",
        help=f"Prometheus /metrics address; '' for none (default {metrics})",
    )
    parser.add_argument("--node-name", default=node, help=f"name in status reports ({node})")
    parser.add_argument(
        "--force", action="store_true", help="make new certificates and tokens even if they exist"
    )


def run_setup(args: argparse.Namespace) -> int:
    try:
        for address in (args.listen, *([args.worker] if args.role == "gateway" else [])):
            parse_host_port(address)
        home = args.home.expanduser().resolve()
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        if args.role == "gateway":
            return setup_gateway(GatewayLayout(home), args)
        return setup_worker(WorkerLayout(home), args)
    except (ValueError, OSError) as exc:
        print(f"tandem setup: {exc}", file=sys.stderr)
        return 1


def _say(done: str, path: Path) -> None:
    print(f"  {done:<8} {path}")


def _token(path: Path, force: bool) -> str:
    """The token in ``path``, minted (mode 0600) when missing or on --force."""
    if path.exists() and not force:
        _say("kept", path)
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = mint_token()
    write_file(path, (token + "\n").encode(), private=True)
    _say("made", path)
    return token


def _write_text(path: Path, text: str, *, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, text.encode(), private=private)
    _say("wrote", path)


def _env_text(title: str, settings: Sequence[tuple[str, str]]) -> str:
    lines = [
        f"# {title}",
        (
            "# Written by `tandem setup`; re-running it rewrites this file "
            "(keys and tokens are kept)."
        ),
        "",
    ]
    lines += [f"{key}={value}" if key else value for key, value in settings]
    return "\n".join(lines) + "\n"


def certificate_names(cert: Path) -> set[str]:
    """The host names and IP addresses a certificate is valid for."""
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    try:
        names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in names.get_values_for_type(x509.IPAddress)} | set(
        names.get_values_for_type(x509.DNSName)
    )


def _warn_unless_named(cert: Path, host: str) -> None:
    if host not in certificate_names(cert):
        print(
            f"tandem setup: warning: {cert} is not valid for {host}; the other node will "
            "refuse it. Re-run `tandem setup gateway` with --force (and copy the worker's "
            "part again)",
            file=sys.stderr,
        )


def _certificates(layout: GatewayLayout, worker_host: str, sans: list[str], force: bool) -> None:
    paths = bundle_paths(layout.pki)
    nodes = (paths.gateway.cert, paths.gateway.key, paths.worker.cert, paths.worker.key)
    if all(p.exists() for p in (paths.ca, paths.ca_key, *nodes)) and not force:
        for path in (paths.ca, *nodes):
            _say("kept", path)
        _warn_unless_named(paths.worker.cert, worker_host)
        return
    base = ["localhost", "127.0.0.1"]
    generate_bundle(
        layout.pki,
        gateway_sans=list(dict.fromkeys(base + sans)),
        worker_sans=list(dict.fromkeys([worker_host, *base])),
        overwrite=force,
    )
    for path in (paths.ca, paths.ca_key, *nodes):
        _say("made", path)


def setup_gateway(layout: GatewayLayout, args: argparse.Namespace) -> int:
    worker_host, _ = parse_host_port(args.worker)
    print(f"Tandem gateway set-up in {layout.home}")
    _certificates(layout, worker_host, args.san or [], args.force)
    link_token = _token(layout.link_token, args.force)
    part = layout.worker_part
    pki = bundle_paths(layout.pki)
    for source, target in (
        (pki.ca, part.ca),
        (pki.worker.cert, part.cert),
        (pki.worker.key, part.key),
    ):
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file(target, source.read_bytes(), private=target == part.key)
        _say("copied", target)
    _write_text(
        part.accepted_tokens,
        token_line(GATEWAY_CLIENT_NAME, link_token, ["worker"]) + "\n",
        private=True,
    )
    settings: list[tuple[str, str]] = [
        ("TANDEM_GATEWAY_LISTEN", args.listen),
        ("TANDEM_GATEWAY_WORKERS", args.worker),
        ("TANDEM_GATEWAY_OLLAMA_URL", args.ollama_url),
        ("TANDEM_GATEWAY_MODEL", args.model),
        ("TANDEM_GATEWAY_KEEP_ALIVE", "-1"),
        ("TANDEM_GATEWAY_NUM_CTX", str(args.num_ctx)),
        ("TANDEM_GATEWAY_NODE_NAME", args.node_name),
        ("TANDEM_GATEWAY_METRICS_LISTEN", args.metrics_listen),
        ("TANDEM_GATEWAY_OPENAI_LISTEN", args.openai_listen),
        ("", "\n# The worker link: mutual TLS and the gateway's token."),
        ("TANDEM_GATEWAY_WORKER_TLS_CA", str(pki.ca)),
        ("TANDEM_GATEWAY_WORKER_TLS_CERT", str(pki.gateway.cert)),
        ("TANDEM_GATEWAY_WORKER_TLS_KEY", str(pki.gateway.key)),
        ("TANDEM_GATEWAY_WORKER_TOKEN_FILE", str(layout.link_token)),
    ]
    clients: list[tuple[str, str]] = [
        (
            "",
            (
                "\n# Clients on this Mac: tandem ask/status/health, the OpenAI endpoint above,\n"
                f"# the SDK and AutoGen (export TANDEM_ENV_FILE={layout.env_file})."
            ),
        ),
        ("TANDEM_CLIENT_GATEWAY", _client_address(args.listen)),
    ]
    if args.client_token:
        client_token = _token(layout.client_token, args.force)
        _write_text(
            layout.accepted_tokens,
            token_line(LOCAL_CLIENT_NAME, client_token, ["gateway"]) + "\n",
            private=True,
        )
        settings += [
            ("", "\n# Who may call the gateway: the local clients' token."),
            ("TANDEM_GATEWAY_AUTH_TOKENS_FILE", str(layout.accepted_tokens)),
        ]
        clients.append(("TANDEM_CLIENT_TOKEN_FILE", str(layout.client_token)))
    settings += clients
    _write_text(layout.env_file, _env_text("Tandem gateway (the MacBook)", settings))
    ssh = args.worker_ssh or worker_host
    print("\nNext:")
    print("  1. Copy the worker's part to the Mac Mini (Remote Login on):")
    print(f"       {copy_command(part.home, ssh, args.worker_home)}")
    print("  2. On the Mac Mini, in the Tandem folder:")
    remote_home = (
        args.worker_home if args.worker_home.startswith(("/", "~")) else (f"~/{args.worker_home}")
    )
    print(f"       .venv/bin/tandem setup worker --home {remote_home} --listen {args.worker}")
    print("  3. Here: start the gateway (and the OpenAI endpoint) as a service, or by hand:")
    print(f"       .venv/bin/tandem service install --role gateway --env-file {layout.env_file}")
    print(f"       .venv/bin/tandem --env-file {layout.env_file} gateway")
    print(f"  Clients: export TANDEM_ENV_FILE={layout.env_file}")
    return 0


def copy_command(worker_part: Path, ssh: str, worker_home: str) -> str:
    """The one command that copies the worker's part (keys stay mode 0600)."""
    return f"rsync -a {shlex.quote(str(worker_part))}/ {shlex.quote(f'{ssh}:{worker_home}/')}"


def _client_address(listen: str) -> str:
    host, port = parse_host_port(listen)
    if host in ("0.0.0.0", "::", ""):
        return f"127.0.0.1:{port}"
    return f"[{host}]:{port}" if ":" in host else listen


def setup_worker(layout: WorkerLayout, args: argparse.Namespace) -> int:
    print(f"Tandem worker set-up in {layout.home}")
    missing = [p for p in layout.copied_files if not p.exists()]
    if missing:
        print(
            "tandem setup worker: missing " + ", ".join(str(p) for p in missing) + ".\n"
            "Run `tandem setup gateway` on the MacBook first and copy its worker-part/ here "
            "with the command it prints.",
            file=sys.stderr,
        )
        return 1
    for path in layout.copied_files:
        _say("found", path)
    os.chmod(layout.key, 0o600)
    _warn_unless_named(layout.cert, parse_host_port(args.listen)[0])
    settings = [
        ("TANDEM_WORKER_LISTEN", args.listen),
        ("TANDEM_WORKER_OLLAMA_URL", args.ollama_url),
        ("TANDEM_WORKER_MODEL", args.model),
        ("TANDEM_WORKER_KEEP_ALIVE", "2h"),
        ("TANDEM_WORKER_NUM_CTX", str(args.num_ctx)),
        ("TANDEM_WORKER_MAX_CONCURRENT_GENERATIONS", str(args.max_concurrent_generations)),
        ("TANDEM_WORKER_NODE_NAME", args.node_name),
        ("TANDEM_WORKER_METRICS_LISTEN", args.metrics_listen),
        ("", "\n# Only the gateway may call: mutual TLS and its token."),
        ("TANDEM_WORKER_TLS_CERT", str(layout.cert)),
        ("TANDEM_WORKER_TLS_KEY", str(layout.key)),
        ("TANDEM_WORKER_TLS_CLIENT_CA", str(layout.ca)),
        ("TANDEM_WORKER_AUTH_TOKENS_FILE", str(layout.accepted_tokens)),
    ]
    _write_text(layout.env_file, _env_text("Tandem worker (the Mac Mini)", settings))
    print("\nNext: start the worker as a service, or by hand:")
    print(f"       .venv/bin/tandem service install --role worker --env-file {layout.env_file}")
    print(f"       .venv/bin/tandem --env-file {layout.env_file} worker")
    return 0
