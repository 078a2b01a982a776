"""Near-duplicate families, so cross-validation never tests on a family it trained on.

The dev set's README describes how dev and the held-out audit set were split:
whole near-duplicate clusters go to one side. The same rules are applied here
to make the cross-validation groups, a little stricter where the README warns
of templated sources:

- same lower-cased, whitespace-collapsed text, or the same first 200 characters;
- word 5-gram containment >= 0.6 between two texts with >= 8 five-grams each,
  ignoring boilerplate 5-grams (in more than 2% of texts);
- cyberseceval-frr: the same first 8 words (the README uses 15; its ~36
  families differ mostly after the opening);
- cyberseceval-interpreter: one group for the whole source (its attack types
  are unknown here, and the audit set holds other attack types);
- any rows given the same ``family`` key (generated sources: one garak probe's
  documents, one request wrapper, one package's files).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


def near_duplicate_groups(
    texts: Sequence[str],
    sources: Sequence[str],
    *,
    containment: float = 0.6,
    boilerplate_fraction: float = 0.02,
    families: Sequence[str] | None = None,
) -> list[int]:
    """A group id per text; texts in one near-duplicate family share it."""
    n = len(texts)
    uf = _UnionFind(n)
    first: dict[str, int] = {}

    def link(key: str, i: int) -> None:
        if key in first:
            uf.union(first[key], i)
        else:
            first[key] = i

    normed = [_norm(t) for t in texts]
    for i, (text, source) in enumerate(zip(normed, sources, strict=True)):
        link("full:" + text, i)
        link("head:" + text[:200], i)
        if source == "cyberseceval-frr":
            link("frr:" + " ".join(_WORD.findall(text)[:8]), i)
        if source == "cyberseceval-interpreter":
            link("source:interpreter", i)
        if families is not None and families[i]:
            link("family:" + families[i], i)

    grams = []
    for text in normed:
        words = _WORD.findall(text)
        grams.append({tuple(words[k : k + 5]) for k in range(len(words) - 4)})
    df = Counter(g for gs in grams for g in gs)
    limit = max(2, int(boilerplate_fraction * n))
    kept = [{g for g in gs if df[g] <= limit} if len(gs) >= 8 else set() for gs in grams]
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, gs in enumerate(kept):
        for g in gs:
            index[g].append(i)
    for i, gs in enumerate(kept):
        if not gs:
            continue
        shared: Counter[int] = Counter()
        for g in gs:
            for j in index[g]:
                if j != i:
                    shared[j] += 1
        for j, count in shared.items():
            smaller = min(len(gs), len(kept[j]))
            if smaller and count / smaller >= containment:
                uf.union(i, j)
    roots: dict[int, int] = {}
    return [roots.setdefault(uf.find(i), len(roots)) for i in range(n)]
