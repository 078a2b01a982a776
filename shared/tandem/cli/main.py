"""``tandem``: run the services, ask a question, show the cluster."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from tandem import __version__
from tandem.cli.options import add_settings_arguments, settings_from_args
from tandem.cli.roles import add_role_commands
from tandem.logs import configure_logging
from tandem.security.client import ClientSecurity
from tandem.settings import ClientSettings, OpenAISettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem",
        description="Tandem: a guarded, distributed LLM router (gateway + worker over gRPC).",
    )
    parser.add_argument("--version", action="version", version=f"tandem {__version__}")
    parser.add_argument(
        "--env-file",
        default=os.environ.get("TANDEM_ENV_FILE"),
        metavar="PATH",
        help="Read TANDEM_* settings from this file (see deploy/*.env) [env TANDEM_ENV_FILE]",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("TANDEM_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Log verbosity [env TANDEM_LOG_LEVEL; default: INFO]",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("TANDEM_LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="Log lines as text, or as one JSON object per line "
        "[env TANDEM_LOG_FORMAT; default: text]",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_role_commands(commands)

    up = commands.add_parser(
        "up",
        help="run a worker and a gateway on this machine (what `make run` does)",
        description="Start `tandem worker` and `tandem gateway` as two processes on this "
        "machine; Ctrl-C stops both.",
    )
    up.add_argument("--gateway-listen", default="127.0.0.1:50051", help="gateway address")
    up.add_argument("--worker-listen", default="127.0.0.1:50052", help="worker address")

    ask = commands.add_parser(
        "ask",
        help="ask the gateway; the answer streams to stdout",
        description="Stream an answer through the gateway. The answer goes to stdout, the "
        "decision and summary to stderr. Exit status: 0 answered, 3 refused, 1 error.",
    )
    add_settings_arguments(ask, ClientSettings)
    ask.add_argument("--json", action="store_true", help="print every event as a JSON line")
    ask.add_argument("--system", default=None, help="a system message to send first")
    ask.add_argument("--max-tokens", type=int, default=None, help="cap on generated tokens")
    ask.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    ask.add_argument("--seed", type=int, default=None, help="sampling seed")
    ask.add_argument("prompt", metavar="PROMPT", help="the question; '-' reads it from stdin")

    status = commands.add_parser(
        "status",
        help="show the gateway and its workers",
        description="Print the cluster status. Exit status: 0 ready, 2 not ready, 1 unreachable.",
    )
    add_settings_arguments(status, ClientSettings, skip=("timeout_s",))
    status.add_argument(
        "--watch", action="store_true", help="follow the live status stream until Ctrl-C"
    )

    health = commands.add_parser(
        "health",
        help="check a service's gRPC health; exit 0 when SERVING (for healthchecks)",
        description="Ask grpc.health.v1.Health/Check. Exit status 0 SERVING, 1 otherwise.",
    )
    health.add_argument(
        "--address",
        default=None,
        help="host:port of the gateway or worker [default: TANDEM_CLIENT_GATEWAY, else "
        "127.0.0.1:50051]; TLS from TANDEM_CLIENT_TLS_* (health needs no token)",
    )
    health.add_argument(
        "--service",
        default="",
        help="'' for liveness (default), tandem.v1.GatewayService or tandem.v1.WorkerService "
        "for readiness",
    )
    health.add_argument("--timeout-s", type=float, default=3.0, help="deadline in seconds")

    openai = commands.add_parser(
        "openai",
        help="serve an OpenAI-compatible HTTP endpoint in front of the gateway",
        description="Serve /v1/chat/completions (whole or streamed) and /v1/models; each "
        "completion is one gateway Route. A refusal is an assistant message with "
        "finish_reason content_filter; the decision is in x-tandem-* response headers.",
    )
    add_settings_arguments(openai, OpenAISettings)
    add_settings_arguments(openai, ClientSettings, skip=("gateway", "timeout_s"))

    from tandem.cli.certs import add_certs_arguments, add_token_arguments  # noqa: PLC0415

    certs = commands.add_parser(
        "certs",
        help="make a local CA and gateway/worker certificates (TLS, mutual TLS)",
        description="Write ca.pem, gateway.pem and worker.pem (with their keys) into --out; "
        "see docs/security.md for where each goes.",
    )
    add_certs_arguments(certs)
    token = commands.add_parser(
        "token",
        help="mint a bearer token and print its tokens-file line",
        description="Print a new token (stderr, or --token-out) and the 'NAME sha256:HASH "
        "SCOPES' line (stdout) for the server's --auth-tokens-file. Only the hash is stored.",
    )
    add_token_arguments(token)

    from tandem.cli.setup import add_setup_arguments  # noqa: PLC0415

    setup = commands.add_parser(
        "setup",
        help="prepare this Mac's config folder: certificates, tokens, env file (secure link)",
        description="`tandem setup gateway` on the MacBook, then `tandem setup worker` on the "
        "Mac Mini after copying the worker's part (the gateway set-up prints the command).",
    )
    add_setup_arguments(setup)

    from tandem.cli.service import add_service_arguments  # noqa: PLC0415

    service = commands.add_parser(
        "service",
        help="run a node at boot and keep it running (launchd on macOS, systemd on Linux)",
        description="install, uninstall, status or logs of the gateway or worker service. "
        "macOS: a launchd daemon running as you (local network access to the Thunderbolt "
        "peer), logs in ~/Library/Logs/Tandem. Linux: a systemd unit.",
    )
    add_service_arguments(service)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        return asyncio.run(_dispatch(args))
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace) -> int:
    run = getattr(args, "run", None)
    if run is not None:  # a role's command (tandem.cli.roles)
        return int(await run(args))
    if args.command == "health":
        from tandem.cli.health import check_health  # noqa: PLC0415

        tls = settings_from_args(ClientSettings, args, args.env_file)
        return await check_health(
            args.address or tls.gateway,
            args.service,
            args.timeout_s,
            ClientSecurity.from_settings(tls).credentials,
        )
    if args.command == "up":
        from tandem.cli.up import run_local_pair  # noqa: PLC0415

        return await run_local_pair(args.gateway_listen, args.worker_listen, args.env_file)
    if args.command == "service":
        from tandem.cli.service import run_service  # noqa: PLC0415

        return run_service(args)
    if args.command == "setup":
        from tandem.cli.setup import run_setup  # noqa: PLC0415

        return run_setup(args)
    if args.command in ("certs", "token"):
        from tandem.cli.certs import make_certs, make_token  # noqa: PLC0415

        return make_certs(args) if args.command == "certs" else make_token(args)
    if args.command == "openai":
        from tandem.cli.openai_cmd import serve_openai  # noqa: PLC0415

        return await serve_openai(
            settings_from_args(OpenAISettings, args, args.env_file),
            settings_from_args(ClientSettings, args, args.env_file),
        )
    client = settings_from_args(ClientSettings, args, args.env_file)
    security = ClientSecurity.from_settings(client)
    if args.command == "ask":
        from tandem.cli.ask import AskRequest, ask, read_prompt  # noqa: PLC0415

        prompt = read_prompt(args.prompt)
        if not prompt.strip():
            print("tandem: error: the prompt is empty", file=sys.stderr)
            return 2
        request = AskRequest(
            prompt=prompt,
            system=args.system,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seed=args.seed,
            as_json=args.json,
        )
        return await ask(client.gateway, client.timeout_s, request, security)
    from tandem.cli.status import show_status, watch_status  # noqa: PLC0415

    if args.watch:
        return await watch_status(client.gateway, security)
    return await show_status(client.gateway, security)


if __name__ == "__main__":
    sys.exit(main())
