# airflow-mlops: every set-up step on a fresh machine is in here.
#   make demo   venv + install + embedded stack + the example lifecycle end to end
#   make test   venv (reused) + the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# The CPU build of torch; installed first so nothing resolves a newer (CUDA) build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv demo test lint up down status clean-stack unit integration system-deps distributed flower-venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -c constraints.txt -e ".[all,dev,benchmarks]" "$(TORCH_SPEC)"
	$(PY) -c "import torch, airflow, mlflow, great_expectations, model_signing; print('installed: torch', torch.__version__, '| airflow', airflow.__version__, '| mlflow', mlflow.__version__)"
	@touch $(STAMP)

system-deps:
	bash scripts/system_deps.sh

# The Flower federation's own environment (training.backend: federated): the flwr CLI, SuperLink
# and SuperNodes. Flower pins protobuf < 7 and older click, cryptography and certifi than the
# project's environment, so it cannot live in .venv; it imports this checkout through PYTHONPATH.
FLOWER_VENV := .venv-flower
FLOWER_SPEC ?= flwr==1.42.0
flower-venv: $(FLOWER_VENV)/.installed

$(FLOWER_VENV)/.installed: constraints.txt
	@test -x $(FLOWER_VENV)/bin/python || $(PYTHON) -m venv $(FLOWER_VENV)
	$(FLOWER_VENV)/bin/pip install -q "$(TORCH_SPEC)" "$(FLOWER_SPEC)" \
		$$(grep -E '^(numpy|pandas|pyarrow|safetensors|scikit-learn)==' constraints.txt)
	$(FLOWER_VENV)/bin/flwr --version
	@touch $@

test: venv system-deps flower-venv
	bash scripts/run_tests.sh

unit: venv
	$(PY) -m pytest -m "not integration" -q

integration: venv system-deps flower-venv
	$(PY) -m pytest -m integration -q

lint: venv
	$(VENV)/bin/ruff check airflow_mlops dags tests benchmarks scripts docs/examples
	$(VENV)/bin/ruff format --check airflow_mlops dags tests benchmarks scripts docs/examples
	$(VENV)/bin/mypy

demo: venv
	bash scripts/stack.sh demo

# The same lifecycle on CeleryExecutor + Postgres + Redis + MLflow + S3 (moto), without Docker.
distributed: venv system-deps
	bash scripts/distributed_stack.sh demo

up: venv
	bash scripts/stack.sh up

down:
	bash scripts/stack.sh down

status:
	bash scripts/stack.sh status

clean-stack: down
	rm -rf .stack dags/data
