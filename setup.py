"""Build hook: generate the gRPC/protobuf code from protos/ before packaging.

The generated modules land in shared/tandem/v1/ (git-ignored) and import as the
normal package ``tandem.v1``; they are never edited by hand. ``make proto`` runs
the same generator for development.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        from tools_protoc import generate  # noqa: PLC0415 - available only at build time

        generate(ROOT)
        super().run()


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    setup(cmdclass={"build_py": BuildPyWithProtos})
