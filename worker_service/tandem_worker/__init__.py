"""The worker service: generation on the node's model (the Mac Mini's qwen3-coder-next)."""
