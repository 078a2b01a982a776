"""``tandem certs`` (a local CA and node certificates) and ``tandem token`` (a bearer token)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tandem.security.certs import DEFAULT_DAYS, DEFAULT_SANS, generate_bundle, write_file
from tandem.security.tokens import SCOPES, TokenFileError, mint_token, token_line


def add_certs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="directory to write into"
    )
    parser.add_argument(
        "--san",
        action="append",
        default=None,
        metavar="NAME_OR_IP",
        help=f"host name or IP address the certificates are valid for; repeat "
        f"(default: {', '.join(DEFAULT_SANS)})",
    )
    parser.add_argument(
        "--worker-san",
        action="append",
        default=None,
        metavar="NAME_OR_IP",
        help="names for the worker certificate only (default: as --san)",
    )
    parser.add_argument(
        "--days", type=float, default=DEFAULT_DAYS, help=f"validity (default {DEFAULT_DAYS})"
    )
    parser.add_argument("--force", action="store_true", help="replace existing node certificates")


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the client's name (shows in logs and limits)")
    parser.add_argument(
        "--scope",
        action="append",
        default=None,
        help=f"what the token may call; repeat. One of {', '.join(sorted(SCOPES))}, "
        "/pkg.Service/Method or pkg.Service/* (default: gateway)",
    )
    parser.add_argument(
        "--token-out",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the token to this file (mode 0600) instead of printing it",
    )


def make_certs(args: argparse.Namespace) -> int:
    sans = args.san or list(DEFAULT_SANS)
    try:
        bundle = generate_bundle(
            args.out,
            gateway_sans=sans,
            worker_sans=args.worker_san or sans,
            days=args.days,
            overwrite=args.force,
        )
    except FileExistsError as exc:
        print(f"tandem: {exc}", file=sys.stderr)
        return 1
    print(f"CA certificate        {bundle.ca}   (copy to both Macs and to clients)")
    print(f"CA key                {bundle.ca_key}   (keep it safe; not needed by the services)")
    print(f"gateway cert / key    {bundle.gateway.cert} / {bundle.gateway.key}")
    print(f"worker cert / key     {bundle.worker.cert} / {bundle.worker.key}")
    print(f"valid for             {', '.join(sans)}")
    return 0


def make_token(args: argparse.Namespace) -> int:
    token = mint_token()
    try:
        line = token_line(args.name, token, args.scope or ["gateway"])
    except TokenFileError as exc:
        print(f"tandem: {exc}", file=sys.stderr)
        return 2
    if args.token_out is not None:
        write_file(args.token_out, (token + "\n").encode(), private=True)
        print(f"# token written to {args.token_out} (mode 0600)", file=sys.stderr)
    else:
        print(f"# the token, shown once: give it to {args.name}", file=sys.stderr)
        print(token, file=sys.stderr)
    print("# add this line to the server's --auth-tokens-file:", file=sys.stderr)
    print(line)
    return 0
