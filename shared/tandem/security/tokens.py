"""Bearer tokens: minted high-entropy, stored as SHA-256 hashes, checked in constant time.

A tokens file has one line per client::

    # name      hash                                                                     scopes
    agent-1     sha256:3b1f…                                                             gateway
    dashboard   sha256:9c2e…                                                             status
    gateway     sha256:77aa…                                                             worker

A token is 256 random bits, so a plain SHA-256 of it cannot be reversed or
guessed (a slow hash such as scrypt protects low-entropy passwords, which these
are not). ``tandem token NAME --scope SCOPE`` mints one and prints its line.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tandem.services import GATEWAY_SERVICE, REFLECTION_SERVICES, WORKER_SERVICE

TOKEN_PREFIX = "tdm_"
HASH_PREFIX = "sha256:"
AUTHORIZATION_KEY = "authorization"


# Named scopes; anything else must be a method ("/pkg.Service/Method") or a
# service wildcard ("pkg.Service/*").
SCOPES: dict[str, tuple[str, ...]] = {
    "*": ("*",),
    "gateway": (f"/{GATEWAY_SERVICE}/*",),
    "route": (f"/{GATEWAY_SERVICE}/Route",),
    "classify": (f"/{GATEWAY_SERVICE}/Classify",),
    "status": (
        f"/{GATEWAY_SERVICE}/GetClusterStatus",
        f"/{GATEWAY_SERVICE}/WatchClusterStatus",
        f"/{WORKER_SERVICE}/GetNodeStatus",
    ),
    "worker": (f"/{WORKER_SERVICE}/*",),
    "reflection": tuple(f"/{name}/*" for name in REFLECTION_SERVICES),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


class TokenFileError(ValueError):
    """A tokens file or line that cannot be used; the message says where and why."""


def mint_token() -> str:
    """A new token: 256 random bits, URL-safe, with a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_line(name: str, token: str, scopes: Sequence[str]) -> str:
    """The tokens-file line that accepts ``token`` as client ``name``."""
    line = f"{name} {hash_token(token)} {','.join(scopes)}"
    parse_token_line(line)  # the same checks the server makes
    return line


def _expand_scope(scope: str) -> tuple[str, ...]:
    if scope in SCOPES:
        return SCOPES[scope]
    pattern = scope if scope.startswith("/") else "/" + scope
    service, slash, method = pattern[1:].partition("/")
    if not service or not slash or not method:
        known = ", ".join(sorted(SCOPES))
        raise TokenFileError(
            f"unknown scope {scope!r}: use {known}, /pkg.Service/Method or pkg.Service/*"
        )
    return (pattern,)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated client: its name and the method patterns it may call."""

    name: str
    patterns: tuple[str, ...]

    def may_call(self, method: str) -> bool:
        for pattern in self.patterns:
            if pattern == "*" or pattern == method:
                return True
            if pattern.endswith("/*") and method.startswith(pattern[:-1]):
                return True
        return False


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: Principal


def parse_token_line(line: str) -> tuple[str, bytes, Principal] | None:
    """``name sha256:HEX scope[,scope…]`` → (name, digest, principal); None if blank."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    parts = text.split()
    if len(parts) != 3:
        raise TokenFileError("expected 'NAME sha256:HEX SCOPE[,SCOPE...]'")
    name, hashed, scope_text = parts
    if not _NAME.match(name):
        raise TokenFileError(f"bad client name {name!r} (letters, digits, . _ @ -; at most 64)")
    hex_digest = hashed.removeprefix(HASH_PREFIX)
    if not hashed.startswith(HASH_PREFIX) or not _HEX.match(hex_digest):
        raise TokenFileError("the hash must be sha256: followed by 64 lowercase hex digits")
    patterns: list[str] = []
    for scope in filter(None, scope_text.split(",")):
        patterns.extend(_expand_scope(scope))
    if not patterns:
        raise TokenFileError("at least one scope is needed")
    return name, bytes.fromhex(hex_digest), Principal(name, tuple(patterns))


class TokenTable:
    """The accepted tokens of one server."""

    def __init__(self, entries: Iterable[tuple[str, bytes, Principal]] = ()) -> None:
        self._entries: list[_Entry] = []
        names: set[str] = set()
        for name, digest, principal in entries:
            if name in names:
                raise TokenFileError(f"client {name!r} is listed twice")
            names.add(name)
            self._entries.append(_Entry(digest, principal))

    @classmethod
    def load(cls, path: Path | None, lines: Iterable[str] = ()) -> TokenTable:
        """The tokens of ``path`` (if any) and of ``lines`` (settings / environment)."""
        sources: list[tuple[str, str]] = []
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise TokenFileError(f"cannot read tokens file {path}: {exc.strerror}") from exc
            sources += [(f"{path}:{n}", line) for n, line in enumerate(text.splitlines(), 1)]
        sources += [(f"token setting #{n}", line) for n, line in enumerate(lines, 1)]
        entries = []
        for where, line in sources:
            try:
                parsed = parse_token_line(line)
            except TokenFileError as exc:
                raise TokenFileError(f"{where}: {exc}") from None
            if parsed is not None:
                entries.append(parsed)
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        return [entry.principal.name for entry in self._entries]

    def authenticate(self, token: str) -> Principal | None:
        """The principal whose hash matches, comparing against every entry in constant time."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        found: Principal | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry.principal
        return found


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, or None."""
    for key, value in metadata or ():
        if key != AUTHORIZATION_KEY or not isinstance(value, str):
            continue
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return None
