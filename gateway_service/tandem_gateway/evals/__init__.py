"""Evaluations of the gateway's guard on the labelled sets (``make eval-guardrail``,
``make eval-difficulty``), run through the real ``Classify`` RPC."""
