# labelgate: `make run` starts the service, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 50051
WEIGHTS ?= weights
export PIP_CACHE_DIR := $(CURDIR)/.build/pip-cache
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv run test test-unit demo demo-weights proto proto-check clean help

help:
	@echo "make run         set up .venv, fetch the default weights if missing, serve on $(HOST):$(PORT)"
	@echo "make test        set up .venv and run the whole test suite"
	@echo "make demo        offline: demo weights, start a server, segment a sample image -> overlay.png"
	@echo "make proto       regenerate the gRPC stubs from proto/"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	SAM2_BUILD_CUDA=0 $(BIN)/pip install -q --no-build-isolation sam2==1.1.0
	$(BIN)/pip install -q -e clients/python -e '.[test]'
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

test: venv proto-check
	$(BIN)/python -m pytest -q tests

test-unit: venv
	$(BIN)/python -m pytest -q tests/unit

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

clean:
	rm -rf $(VENV) .build
