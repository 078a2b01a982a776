"""``make bench``: Tandem's added latency, throughput and failure timing, beside LiteLLM.

Every piece runs as its own process: the Ollama stand-in (``bench.standin``), the
load generator (``bench.loadgen``), Tandem's worker and gateway (the real CLI),
the LiteLLM proxy, and the orchestrator (``python -m bench``) that starts them,
runs the suites and writes ``bench/results/*.json``, the plots and the table.
"""
