"""The input guard: rules tier, LLM judge, and the policy that combines them."""
