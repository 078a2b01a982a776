"""Sentence embeddings of training windows, cached on disk by the window's sha256.

Embedding every window of every training row takes minutes on two cores; the
cache makes a second ``make train-guard`` (same rows) fast and changes nothing
else: the same window always has the same embedding.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tandem_gateway.guard.encoder import SentenceEncoder


class EmbeddingCache:
    def __init__(self, path: Path, encoder: SentenceEncoder) -> None:
        self.path = path
        self.encoder = encoder
        self._known: dict[str, npt.NDArray[np.float32]] = {}
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                self._known = {k: data[k] for k in data.files}

    def embed(self, texts: list[str]) -> list[npt.NDArray[np.float32]]:
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        new = 0
        for key, text in zip(keys, texts, strict=True):
            if key not in self._known:
                self._known[key] = self.encoder.embed(text)
                new += 1
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self.path, **self._known)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        return [self._known[k] for k in keys]
