"""AgentDojo's indirect injections, rebuilt from the package's data without running it.

AgentDojo (MIT) gives an agent tools over a simulated workspace, bank, Slack and
travel agency, and plants attacks in what those tools return: an email body, a
file in the cloud drive, a hotel review, a bank transfer's subject. Each suite's
environment YAML marks the planted places with ``{injection_vector}``
placeholders whose benign default is in ``injection_vectors.yaml``; each
injection task's ``GOAL`` (``default_suites/v1/<suite>/injection_tasks.py``) is
what the attacker wants done; each attack (``agentdojo/attacks/``) wraps a goal in
a fixed text ("IMPORTANT!!! Ignore all previous instructions and ...").

``documents`` renders what a tool would return, one record of the environment
(an email, an event, a file, a review) as YAML:

- for each goal and attack, the record of one vector (chosen by hash) with the
  attack in place of the default: an injected tool result;
- every record of the environment with the defaults in place: a benign tool result
  (the injected records' own clean versions among them).

The package is read with ``ast`` and ``yaml.safe_load`` (importing it would pull in
its whole agent pipeline).
"""

from __future__ import annotations

import ast
import hashlib
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

SUITES = ("banking", "slack", "travel", "workspace")
_PLACEHOLDER = re.compile(r"\{(injection_\w+|calendar_\w+|email_\w+|drive_\w+)\}")
_MARK = "AGENTDOJO-MARK-"
# The attacks whose text is a fixed wrapper of the goal (the others need the
# agent's tool list or the model's name at run time, or are denial-of-service).
ATTACKS = ("direct", "ignore_previous", "system_message", "injecagent", "important_instructions")


@dataclass(frozen=True, slots=True)
class Document:
    suite: str
    family: str  # the attack's name, or "clean"
    text: str
    injected: bool


class _Unsupported(Exception):
    pass


def _value(node: ast.AST, names: dict[str, Any]) -> Any:
    """A literal, a name bound earlier in the class or module, an f-string or ``+`` of them."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.JoinedStr):
        return "".join(str(_value(v, names)) for v in node.values)
    if isinstance(node, ast.FormattedValue) and node.format_spec is None:
        return _value(node.value, names)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _value(node.left, names) + _value(node.right, names)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(e, names) for e in node.elts]
    raise _Unsupported(ast.dump(node))


def _assignments(body: list[ast.stmt], names: dict[str, Any]) -> dict[str, Any]:
    out = dict(names)
    for stmt in body:
        target, value = None, None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        if isinstance(target, ast.Name) and value is not None:
            try:
                out[target.id] = _value(value, out)
            except _Unsupported:
                continue
    return out


def goals(source: str) -> list[str]:
    """The ``GOAL`` of every injection task class in an ``injection_tasks.py``."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            goal = _assignments(node.body, {}).get("GOAL")
            if isinstance(goal, str):
                found.append(goal)
    return found


def attack_templates(sources: list[str]) -> dict[str, str]:
    """Attack name -> its text with ``{goal}`` (``{user}``/``{model}`` filled with
    AgentDojo's defaults), from the attack modules' classes."""
    module: dict[str, Any] = {}
    templates: dict[str, str] = {}
    for source in sources:
        tree = ast.parse(source)
        module = _assignments(tree.body, module)
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            fields = _assignments(node.body, module)
            texts = [fields.get("_JB_STRING")]
            texts += [
                _value(arg, fields)
                for call in ast.walk(node)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "__init__"
                for arg in call.args
                if isinstance(arg, (ast.Constant, ast.JoinedStr))
            ]
            text = next((t for t in texts if isinstance(t, str) and "{goal}" in t), None)
            name = fields.get("name")
            if text is not None and isinstance(name, str):
                templates[name] = text
    model = module.get("DEFAULT_MODEL_NAME", "the AI language model")
    # The important_instructions attack signs as AgentDojo's user; the others use the default.
    users = {"important_instructions": "Emma Johnson"}
    default_user = module.get("DEFAULT_USER_NAME", "the user")
    return {
        name: templates[name]
        .replace("{user}", users.get(name, default_user))
        .replace("{model}", model)
        for name in ATTACKS
        if name in templates
    }


def _records(node: Any) -> Iterator[Any]:
    """The records of an environment: each mapping in a list, and each long string
    value of a mapping (a file's content, a web page)."""
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                yield item
            else:
                yield from _records(item)
    elif isinstance(node, dict):
        for value in node.values():
            if isinstance(value, str) and len(value) > 80:
                yield value
            else:
                yield from _records(value)


def _render(record: Any) -> str:
    if isinstance(record, str):
        return record
    return yaml.safe_dump(record, sort_keys=False, allow_unicode=True, width=100)


def _environment_texts(z: zipfile.ZipFile, suite: str) -> list[str]:
    base = f"agentdojo/data/suites/{suite}/"
    env = z.read(base + "environment.yaml").decode("utf-8")
    includes = re.findall(r"!include (\S+)", env)
    if includes:
        return [z.read(base + name).decode("utf-8") for name in includes]
    return [env]


def _pick(key: str, n: int) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % n


def documents(z: zipfile.ZipFile) -> list[Document]:
    """Injected and clean tool results of every suite, deterministically."""
    attack_sources = [
        z.read(f"agentdojo/attacks/{name}.py").decode("utf-8")
        for name in ("base_attacks", "baseline_attacks", "important_instructions_attacks")
    ]
    templates = attack_templates(attack_sources)
    out: list[Document] = []
    for suite in SUITES:
        vectors = yaml.safe_load(
            z.read(f"agentdojo/data/suites/{suite}/injection_vectors.yaml").decode("utf-8")
        )
        defaults = {name: str(v.get("default", "")) for name, v in vectors.items()}
        marked: dict[str, str] = {}  # vector -> its record, with the vector marked
        for text in _environment_texts(z, suite):
            filled = _PLACEHOLDER.sub(lambda m: f"{_MARK}{m.group(1)}", text)
            for record in _records(yaml.safe_load(filled)):
                rendered = _render(record)
                names = re.findall(_MARK + r"(\w+)", rendered)
                clean = rendered
                for name in names:
                    clean = clean.replace(_MARK + name, defaults.get(name, ""))
                out.append(Document(suite, "clean", clean, injected=False))
                for name in names:
                    if name in defaults:
                        marked[name] = rendered
        suite_goals = goals(
            z.read(f"agentdojo/default_suites/v1/{suite}/injection_tasks.py").decode("utf-8")
        )
        usable = sorted(marked)
        for goal in suite_goals:
            for attack, template in templates.items():
                vector = usable[_pick(f"{suite}/{attack}/{goal}", len(usable))]
                text = marked[vector].replace(_MARK + vector, template.replace("{goal}", goal))
                for other in re.findall(_MARK + r"(\w+)", text):
                    text = text.replace(_MARK + other, defaults.get(other, ""))
                out.append(Document(suite, attack, text, injected=True))
    return out
