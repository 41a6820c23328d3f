# labelgate: `make run` starts the service, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 50051
WEIGHTS ?= weights
export PIP_CACHE_DIR := $(CURDIR)/.build/pip-cache
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: bench bench-deps venv run test test-unit demo demo-weights proto proto-check clean help system-deps

help:
	@echo "make run         set up .venv, fetch the default weights if missing, serve on $(HOST):$(PORT)"
	@echo "make test        set up .venv and run the whole test suite"
	@echo "make demo        offline: demo weights, start a server, segment a sample image -> overlay.png"
	@echo "make proto       regenerate the gRPC stubs from proto/"
	@echo "make bench       benchmark side by side (a few minutes): bench/results/bench.{md,json,png}"
	@echo "make cvat-nuclio build the wheels the CVAT nuclio functions install (then nuctl deploy, see clients/cvat/README.md)"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml clients/cvat/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	SAM2_BUILD_CUDA=0 $(BIN)/pip install -q --no-build-isolation sam2==1.1.0
	$(BIN)/pip install -q -e clients/python -e '.[test]' -e 'clients/cvat[sdk]'
	touch $@

# Official SAM 2.1 hiera-tiny + Grounding DINO tiny; without a network, random demo weights (said loudly).
run: venv
	@$(BIN)/labelgate weights fetch --dir $(WEIGHTS) sam2.1-hiera-tiny grounding-dino-tiny; status=$$?; \
	if [ $$status -eq 0 ]; then \
		exec $(BIN)/labelgate serve --host $(HOST) --port $(PORT) \
			--sam2-checkpoint $(WEIGHTS)/sam2.1_hiera_tiny.pt --gdino-model $(WEIGHTS)/grounding-dino-tiny; \
	elif [ $$status -eq 2 ]; then \
		echo "*** no network: serving RANDOM demo weights from $(WEIGHTS)/demo (masks are meaningless) ***"; \
		exec $(BIN)/labelgate serve --host $(HOST) --port $(PORT) --demo-weights $(WEIGHTS)/demo; \
	else exit $$status; fi

# The last step reruns the agreement with the references (-m fidelity) under PyTorch's portable kernels,
# not this CPU's best: the tolerances (tests/tolerances.py) must hold whichever kernels a machine picks.
test: venv system-deps proto-check lint-imports label-studio-env triton-env bench-deps
	$(LABEL_STUDIO_ENV)/bin/python -m pytest -q clients/label_studio/tests
	$(BIN)/python -m pytest -q tests
	ATEN_CPU_CAPABILITY=default $(BIN)/python -m pytest -q -m fidelity tests

test-unit: venv system-deps
	$(BIN)/python -m pytest -q tests/unit

# Side-by-side benchmark (a few minutes on 2 CPU cores): bench/results/bench.{md,json,png}
bench: venv bench-deps
	$(BIN)/labelgate bench --out bench/results

bench-deps: $(VENV)/.bench-installed

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

demo: venv
	$(BIN)/python scripts/demo.py --weights $(WEIGHTS)/demo --out overlay.png

proto: venv
	$(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=clients/python --pyi_out=clients/python --grpc_python_out=clients/python \
		proto/labelgate/v1/labelgate.proto

# Fails when the committed stubs differ from what `make proto` generates.
proto-check: venv
	rm -rf .build/proto-check && mkdir -p .build/proto-check
	$(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=.build/proto-check --pyi_out=.build/proto-check --grpc_python_out=.build/proto-check \
		proto/labelgate/v1/labelgate.proto
	for f in labelgate_pb2.py labelgate_pb2.pyi labelgate_pb2_grpc.py; do \
		diff -q .build/proto-check/labelgate/v1/$$f clients/python/labelgate/v1/$$f || \
		{ echo "generated stubs are stale: run 'make proto' and commit"; exit 1; }; done

# The layer contract in .importlinter (the architecture): fails on an import that goes upward.
.PHONY: lint-imports
lint-imports: venv
	$(BIN)/lint-imports

# docs/configuration.md from the settings; tests/unit/test_config_docs.py fails when it is stale.
.PHONY: docs
docs: venv
	$(BIN)/python -m labelgate.server.config_docs docs/configuration.md

# System packages the tests run for real (Debian): a no-op when already installed.
SYSTEM_PACKAGES := redis-server
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
system-deps:
	@missing=""; for pkg in $(SYSTEM_PACKAGES); do command -v $$pkg >/dev/null || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The wheels the CVAT nuclio functions install (clients/cvat/nuclio/*/wheels), before `nuctl deploy`.
.PHONY: cvat-nuclio
cvat-nuclio: venv
	$(BIN)/python clients/cvat/nuclio/bundle.py

# Label Studio (a real server for tests/integration/test_label_studio.py) and the labelgate ML backend
# (clients/label_studio) in their own venv: label-studio-sdk pins numpy/opencv below what .venv has.
LABEL_STUDIO_ENV := .build/label-studio
.PHONY: label-studio-env
label-studio-env: $(LABEL_STUDIO_ENV)/.installed

$(LABEL_STUDIO_ENV)/.installed: clients/label_studio/pyproject.toml clients/python/pyproject.toml
	test -x $(LABEL_STUDIO_ENV)/bin/python || $(PYTHON) -m venv $(LABEL_STUDIO_ENV)
	$(LABEL_STUDIO_ENV)/bin/pip install -q label-studio==1.23.2 -e clients/python -e 'clients/label_studio[test]'
	touch $@

# Triton Inference Server for tests/integration/test_triton.py: the real tritonserver binary and python
# backend bundled in the nvidia-pytriton wheel (runs without a GPU), plus what the python-flavor models
# import in the backend stub (numpy, onnxruntime). Its own venv: pytriton's builds need numpy<2.
TRITON_ENV := .build/triton-venv
TRITON_SERVER_WHEEL := nvidia-pytriton==0.7.0
TRITON_STUB_PACKAGES := numpy==1.26.4 onnxruntime==1.31.1
.PHONY: triton-env
triton-env: $(TRITON_ENV)/.installed-pytriton-0.7.0-ort-1.31.1

# --no-deps: only the server binaries are used, not pytriton's Python API and its dependencies.
$(TRITON_ENV)/.installed-pytriton-0.7.0-ort-1.31.1:
	test -x $(TRITON_ENV)/bin/python || $(PYTHON) -m venv $(TRITON_ENV)
	$(TRITON_ENV)/bin/pip install -q --no-deps $(TRITON_SERVER_WHEEL)
	$(TRITON_ENV)/bin/pip install -q $(TRITON_STUB_PACKAGES)
	touch $@

clean:
	rm -rf $(VENV) .build
