"""Generate Python protobuf and gRPC modules for protos/tandem/v1/*.proto.

Used by setup.py (during ``pip install``) and by ``make proto``. Output goes to
shared/tandem/v1/ so that the code imports as ``tandem.v1``.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path


def generate(root: Path) -> list[Path]:
    from grpc_tools import protoc

    proto_root = root / "protos"
    out_dir = root / "shared"
    sources = sorted(proto_root.glob("tandem/v1/*.proto"))
    if not sources:
        raise RuntimeError(f"no .proto files under {proto_root}/tandem/v1")
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(path.relative_to(proto_root)) for path in sources),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    return sources


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    for source in generate(root):
        print(f"generated {source.relative_to(root)}")
