"""A bounded, expiring cache of verdicts, one per message.

The key is a SHA-256 over the pipeline's version, the message's role (what
kind of piece it is) and its normalised text (NFKC, invisible characters
removed, whitespace collapsed), so trivially re-spaced or look-alike variants
share an entry and nothing of the prompt itself is kept in memory. Turn N of a
conversation finds turns 1..N-1 here and only the new messages are screened.
Only model verdicts (classifier, judge) are cached: a policy fallback (the judge
failed) is never cached, so an outage does not outlive itself.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from tandem.backends.base import ChatTurn
from tandem_gateway.guard.decision import GuardDecision
from tandem_gateway.guard.normalize import normalize

_SPACE = re.compile(r"\s+")


def _update(digest: hashlib._Hash, role: str, text: str) -> None:
    folded = _SPACE.sub(" ", normalize(text).text).strip()
    digest.update(b"\x1e" + role.encode() + b"\x1f" + folded.encode("utf-8", "surrogatepass"))


def message_key(role: str, text: str, version: str) -> str:
    """One message's key: its role, its normalised text, the guard's version."""
    digest = hashlib.sha256(version.encode())
    _update(digest, role, text)
    return digest.hexdigest()


def conversation_key(turns: Sequence[ChatTurn], version: str) -> str:
    """A whole conversation's key (every turn's role and normalised text)."""
    digest = hashlib.sha256(version.encode())
    for turn in turns:
        _update(digest, turn.role, turn.content)
    return digest.hexdigest()


class VerdictCache:
    """LRU with a time-to-live; ``max_entries`` 0 disables it."""

    def __init__(
        self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, GuardDecision]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._max > 0 and self._ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> GuardDecision | None:
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: str, decision: GuardDecision) -> None:
        if not self.enabled:
            return
        self._entries[key] = (self._clock() + self._ttl, decision)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
