"""``make audit``: pip-audit over requirements.lock, saying plainly what it could check.

pip-audit has two vulnerability sources, PyPI's JSON API and OSV. Where neither
is reachable it either crashes (OSV: a connection error) or, worse, reports "No
known vulnerabilities found" after skipping every package (PyPI: each lookup
fails as "not found"). This wrapper reads pip-audit's JSON and tells the three
outcomes apart:

- exit 1: known vulnerabilities (each listed with its fix versions);
- exit 0, "COULD NOT CHECK": no source could be reached, nothing was audited
  (exit 3 instead with --strict, for a machine that should reach them);
- exit 0: every package was checked and none is known vulnerable.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("pypi", "osv")
EXIT_CLEAN, EXIT_VULNERABLE, EXIT_UNCHECKED = 0, 1, 3
_NETWORK_WORDS = (
    "ConnectionError",
    "NameResolution",
    "Max retries",
    "timed out",
    "Temporary failure",
    "SSLError",
)


@dataclass
class Report:
    service: str
    checked: int = 0
    skipped: list[str] = field(default_factory=list)
    vulnerable: list[str] = field(default_factory=list)
    failure: str = ""

    @property
    def usable(self) -> bool:
        return not self.failure and self.checked > 0


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def run_pip_audit(pip_audit: Path, requirements: Path, service: str, timeout_s: float) -> Report:
    command = [
        str(pip_audit),
        "-r",
        str(requirements),
        "--require-hashes",
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--vulnerability-service",
        service,
    ]
    report = Report(service)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.failure = f"pip-audit did not run: {exc}"
        return report
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        why = _last_line(done.stderr)
        kind = (
            "cannot reach it"
            if any(w in done.stderr for w in _NETWORK_WORDS)
            else "pip-audit failed"
        )
        report.failure = f"{kind}: {why}"
        return report
    for dependency in result.get("dependencies", []):
        name = f"{dependency.get('name')} {dependency.get('version', '')}".strip()
        if "skip_reason" in dependency:
            report.skipped.append(f"{name}: {dependency['skip_reason']}")
            continue
        report.checked += 1
        for vuln in dependency.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            report.vulnerable.append(f"{name}: {vuln.get('id')} (fixed in: {fixes})")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pip-audit", type=Path, required=True, help="the pip-audit executable")
    parser.add_argument("--requirements", type=Path, default=Path("requirements.lock"))
    parser.add_argument(
        "--strict", action="store_true", help="exit 3 when nothing could be checked"
    )
    parser.add_argument("--timeout-s", type=float, default=300.0)
    args = parser.parse_args(argv)

    tried: list[Report] = []
    for service in SERVICES:
        report = run_pip_audit(args.pip_audit, args.requirements, service, args.timeout_s)
        tried.append(report)
        if report.usable:
            break
    report = tried[-1]
    if not report.usable:
        print("make audit: COULD NOT CHECK - no vulnerability data reachable, nothing audited.")
        for attempt in tried:
            why = attempt.failure or (
                f"every package skipped, e.g. {attempt.skipped[0]}"
                if attempt.skipped
                else "no packages"
            )
            print(f"  {attempt.service}: {why}")
        print("  (this machine may reach only the package index, not PyPI's JSON API or osv.dev;")
        print("   run `make audit` where they are reachable)")
        return EXIT_UNCHECKED if args.strict else EXIT_CLEAN
    for line in report.skipped:
        print(f"make audit: not checked: {line}")
    if report.vulnerable:
        print(f"make audit: {len(report.vulnerable)} KNOWN VULNERABILITIES ({report.service}):")
        for line in report.vulnerable:
            print(f"  {line}")
        return EXIT_VULNERABLE
    print(
        f"make audit: no known vulnerabilities in {report.checked} packages ({report.service} data)"
    )
    return EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main())
