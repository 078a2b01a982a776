"""Hashed word and character n-gram features, shared by training and serving.

One featuriser for both sides, so what the classifier was trained on is
exactly what it sees at run time. Features are hashed (no vocabulary strings,
so the shipped artifact carries weights, not training texts):

- words (``\\w+``, lower-cased) and word bigrams, into block 0;
- character 3-, 4- and 5-grams of the lower-cased, whitespace-collapsed text,
  into block 1.

A message of any length is read whole, in bounded windows (``windows``): each
window is ``WINDOW_CHARS`` long and overlaps the next by ``WINDOW_OVERLAP``
characters, so a sentence cut at one boundary is whole in the next window. The
classifier scores every window and keeps the highest: cost is linear in the
length, and a long benign text is not one big document whose length alone
shifts the score. Training featurises its rows the same way.

Hashing is a vectorised polynomial hash over code points (numpy, no Python
loop per n-gram), so a prompt of a few thousand characters costs well under a
millisecond. Each block is TF-IDF weighted (sublinear tf) and L2-normalised
on its own, over the buckets the model knows.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tandem_gateway.guard.normalize import normalize

BUCKET_BITS = 20
BLOCK_SIZE = 1 << BUCKET_BITS
CHAR_NGRAMS = (3, 4, 5)
# Windows over a prepared message: length and overlap (characters). The overlap
# is longer than the sentences an instruction is written in, so none is only
# ever seen in two halves.
WINDOW_CHARS = 500
WINDOW_OVERLAP = 150

_WORD = re.compile(r"\w+")
_PHRASE_END = re.compile(r"\n+|(?<=[.!?])\s+")
_SPACE = re.compile(r"\s+")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing
_BASE = np.uint64(1_000_003)
_SHIFT = np.uint64(64 - BUCKET_BITS)

U64Array = npt.NDArray[np.uint64]
F32Array = npt.NDArray[np.float32]


def prepare(text: str) -> str:
    """Normalise (NFKC, invisible characters out), lower-case, collapse spaces."""
    return _SPACE.sub(" ", normalize(text).text.lower()).strip()


def windows(prepared: str, *, size: int = WINDOW_CHARS, overlap: int = WINDOW_OVERLAP) -> list[str]:
    """Overlapping windows that together cover all of ``prepared`` (one if it is short).

    Each window after the first starts ``size - overlap`` characters after the
    previous one, moved back to a space if one is near, so words are not cut.
    """
    if len(prepared) <= size:
        return [prepared]
    step = size - overlap
    out: list[str] = []
    start = 0
    while True:
        out.append(prepared[start : start + size])
        if start + size >= len(prepared):
            return out
        nominal = start + step
        space = prepared.rfind(" ", nominal - overlap // 2, nominal)
        start = space + 1 if space > start else nominal


@dataclass(frozen=True, slots=True)
class PhraseRule:
    """Which lines and sentences of a message are scored beside its windows.

    A request of a few windows can bury one harmful sentence in 500 characters of
    set-up; scored alone, the sentence is not diluted. A document (more windows) is
    read in windows only: its many short lines would each be one more chance of a
    false refusal (docs/guard-model.md, attempts 10 to 11c; off in the shipped model).
    """

    shortest: int = 40  # prepared characters
    longest: int = 300
    max_windows: int = 4  # more windows than this: a document, windows only

    def as_meta(self) -> dict[str, int]:
        return {"shortest": self.shortest, "longest": self.longest, "max_windows": self.max_windows}

    @classmethod
    def from_meta(cls, meta: dict[str, int]) -> PhraseRule:
        return cls(int(meta["shortest"]), int(meta["longest"]), int(meta["max_windows"]))


def phrases(text: str, rule: PhraseRule) -> list[str]:
    """The lines and sentences of the raw ``text``, each ``prepare``d, whose length is
    within the rule's (split before preparing: ``prepare`` folds the line breaks)."""
    out = []
    for piece in _PHRASE_END.split(text):
        prepared = prepare(piece)
        if rule.shortest <= len(prepared) <= rule.longest:
            out.append(prepared)
    return out


def message_windows(text: str, phrase_rule: PhraseRule | None) -> list[str]:
    """What the classifier scores of one message: the windows over the prepared text,
    then, under ``phrase_rule`` (more than one window, at most its ``max_windows``),
    each phrase that is not already one of them."""
    return with_phrases(text, windows(prepare(text)), phrase_rule)


def with_phrases(text: str, spans: Sequence[str], phrase_rule: PhraseRule | None) -> list[str]:
    """``spans`` (the windows of ``text``), then the phrases ``message_windows`` adds."""
    out = list(spans)
    if phrase_rule is None or not 1 < len(out) <= phrase_rule.max_windows:
        return out
    seen = set(out)
    for phrase in phrases(text, phrase_rule):
        if phrase not in seen:
            seen.add(phrase)
            out.append(phrase)
    return out


def _bucket(hashes: U64Array, salt: int) -> U64Array:
    with np.errstate(over="ignore"):
        mixed = (hashes ^ np.uint64(salt)) * _MULT
    return mixed >> _SHIFT


def _codes(text: str) -> U64Array:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _char_hashes(codes: U64Array, n: int) -> U64Array:
    count = len(codes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            hashes = hashes * _BASE + codes[k : k + count]
    return hashes


def _word_hash(word: str) -> int:
    data = word.encode("utf-8")
    return (zlib.crc32(data) << 32) | zlib.adler32(data)


def _word_hashes(text: str) -> U64Array:
    words = _WORD.findall(text)
    if not words:
        return np.empty(0, dtype=np.uint64)
    # crc32 and adler32 are stable across processes (unlike hash()).
    single = np.fromiter((_word_hash(w) for w in words), dtype=np.uint64, count=len(words))
    if len(single) < 2:
        return single
    with np.errstate(over="ignore"):
        pairs = single[:-1] * _BASE + single[1:] + np.uint64(0xB16)
    return np.concatenate([single, pairs])


@dataclass(frozen=True, slots=True)
class RawFeatures:
    """Bucket ids (block 1 offset by BLOCK_SIZE) and their counts in one text."""

    buckets: U64Array
    counts: F32Array


def raw_features(text: str) -> RawFeatures:
    """Features of the whole text as one document (difficulty reads a task whole)."""
    return features_of(prepare(text))


def features_of(prepared: str) -> RawFeatures:
    """Features of an already ``prepare``d text (one window, or a whole text)."""
    codes = _codes(prepared)
    parts = [_bucket(_word_hashes(prepared), 0x57)]
    for n in CHAR_NGRAMS:
        parts.append(_bucket(_char_hashes(codes, n), 0xC0 + n) + np.uint64(BLOCK_SIZE))
    every = np.concatenate(parts)
    buckets, counts = np.unique(every, return_counts=True)
    return RawFeatures(buckets, counts.astype(np.float32))


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The buckets a model knows (sorted) and their inverse document frequency."""

    buckets: U64Array
    idf: F32Array

    def transform(self, raw: RawFeatures) -> tuple[npt.NDArray[np.intp], F32Array]:
        """Column indices and TF-IDF values (each block L2-normalised) of one text."""
        if len(self.buckets) == 0 or len(raw.buckets) == 0:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
        pos = np.searchsorted(self.buckets, raw.buckets)
        pos = np.minimum(pos, len(self.buckets) - 1)
        known = self.buckets[pos] == raw.buckets
        columns = pos[known]
        values = (1.0 + np.log(raw.counts[known])) * self.idf[columns]
        is_char = raw.buckets[known] >= BLOCK_SIZE
        for block in (~is_char, is_char):
            norm = float(np.sqrt(np.sum(values[block] ** 2)))
            if norm > 0:
                values[block] /= norm
        return columns.astype(np.intp), values.astype(np.float32)


def fit_vocabulary(docs: list[RawFeatures], *, min_df: int) -> Vocabulary:
    """Buckets seen in at least ``min_df`` documents, with smoothed idf."""
    if not docs:
        return Vocabulary(np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32))
    every = np.concatenate([d.buckets for d in docs])
    buckets, df = np.unique(every, return_counts=True)
    keep = df >= min_df
    n = len(docs)
    idf = np.log((1.0 + n) / (1.0 + df[keep])) + 1.0
    return Vocabulary(buckets[keep], idf.astype(np.float32))
