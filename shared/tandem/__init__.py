"""Tandem: a guarded, distributed LLM router over typed streaming gRPC.

``tandem.v1`` holds the generated protobuf/gRPC code; the other modules are the
small hand-written layer both services and the CLI share.
"""

from __future__ import annotations

__version__ = "0.1.0"
