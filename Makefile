# salt: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# torch's build: cuda (the default: PyPI's torch, with its NVIDIA libraries) or cpu (torch and
# torchvision from PyTorch's CPU index, no NVIDIA libraries): make install TORCH=cpu
# The CPU build is pinned at 2.13.0, the one whose CPU wheel was at hand offline; the benchmarks
# ran PyPI's torch 2.14.1 (docs/install.md: CPU or CUDA torch)
TORCH ?= cuda
TORCH_CPU_VERSION ?= 2.13.0
TORCHVISION_CPU_VERSION ?= 0.28.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_CPU := torch==$(TORCH_CPU_VERSION)+cpu torchvision==$(TORCHVISION_CPU_VERSION)+cpu
STAMP := $(VENV)/.installed-torch-$(TORCH)
DATA ?= data/tgs
RUNS ?=
EXPERIMENT ?= resnet34
ARGS ?=
OUT ?= submission.csv
# make gpu-bundle: the training data and the test folder it copies; make gpu-check: its folder
GPU_DATA ?= ../shared/tgs
GPU_TEST ?= ../shared/tgs-holdout
BUNDLE ?= bundle
# the Python that runs make gpu-check: .venv's where there is one, else the machine's python3
GPU_PYTHON ?= $(if $(wildcard $(PYTHON)),$(PYTHON),python3)
comma := ,
space := $(empty) $(empty)

.DEFAULT_GOAL := help
.PHONY: help install test test-fast test-multiprocess lint typecheck docs demo train submit pseudo data bench bench-metric gpu-bundle gpu-check

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@case "$(TORCH)" in cpu|cuda) ;; *) echo "error: TORCH=$(TORCH): choose cpu or cuda"; exit 1;; esac
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(if $(filter cpu,$(TORCH)),$(PYTHON) -m pip install --no-deps $(TORCH_CPU) --extra-index-url $(TORCH_CPU_INDEX))
	$(PYTHON) -m pip install -e '.[dev]' $(if $(filter cpu,$(TORCH)),$(TORCH_CPU))
	rm -f $(VENV)/.installed-torch-*
	touch $(STAMP)

install: $(STAMP) ## create .venv and install salt with its dev tools [TORCH=cpu|cuda] (redone when pyproject.toml changes)

# pytest-xdist: two workers, one per core (a test holds one core most of the time)
PYTEST_WORKERS ?= 2

test: $(STAMP) ## run every test on both cores, the slow and multi-process ones too (what CI runs)
	$(PYTHON) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal

test-fast: $(STAMP) ## run the tests not marked slow (the quick check while working)
	$(PYTHON) -m pytest -m "not slow" -q -n $(PYTEST_WORKERS)

test-multiprocess: $(STAMP) ## only the multi-process runs (DDP on gloo, two ranks, tests/distributed/)
	$(PYTHON) -m pytest -m multiprocess -q

lint: $(STAMP) ## ruff over the package and the tests
	$(VENV)/bin/ruff check salt tests hydra_plugins benchmarks
	$(VENV)/bin/ruff format --check salt tests hydra_plugins benchmarks

typecheck: $(STAMP) ## mypy over the package
	$(VENV)/bin/mypy salt

docs: $(STAMP) ## build docs/ and the README as a site in site/ (mkdocs --strict: a broken link or anchor fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

demo: $(STAMP) ## train the offline CPU demo on generated data (a few minutes)
	$(PYTHON) -m salt.train experiment=demo hydra.run.dir=outputs/demo $(ARGS)
	@echo "demo outputs: outputs/demo (metrics.json, checkpoints/, csv/, tensorboard/, oof.npz)"

train: $(STAMP) ## train one fold: make train EXPERIMENT=resnet34 DATA=dir ARGS="data.fold=0"
	$(PYTHON) -m salt.train experiment=$(EXPERIMENT) data.root=$(DATA) $(ARGS)

# the kaggle CLI of make data and make submit: .venv's where it is installed there (as the error
# below says to), else the one on PATH
KAGGLE_PATH = export PATH="$(abspath $(VENV))/bin:$$PATH";
KAGGLE_MISSING = error: kaggle CLI not found ($(PYTHON) -m pip install kaggle; put your token in ~/.kaggle/kaggle.json)
data: $(STAMP) ## download the competition data into DATA (needs the kaggle CLI and credentials)
	@$(KAGGLE_PATH) command -v kaggle >/dev/null || { echo "$(KAGGLE_MISSING), or point DATA=/any/folder with the Kaggle layout"; exit 1; }
	mkdir -p $(DATA)
	@$(KAGGLE_PATH) kaggle competitions download -c tgs-salt-identification-challenge -p $(DATA) || { echo "error: the Kaggle download was refused: sign in, accept the competition's rules at https://www.kaggle.com/c/tgs-salt-identification-challenge/rules and put your API token (Settings, Create New Token) in ~/.kaggle/kaggle.json"; exit 1; }
	cd $(DATA) && unzip -oq tgs-salt-identification-challenge.zip && \
		for z in train.zip test.zip; do [ -f $$z ] && mkdir -p $${z%.zip} && unzip -oq $$z -d $${z%.zip}; done; true
	$(PYTHON) -m salt.data.check $(DATA)

submit: $(STAMP) ## submission.csv from trained runs: make submit DATA=dir RUNS="run_dir ..." [KAGGLE_SUBMIT=1]
	@test -n "$(RUNS)" || { echo 'error: pass RUNS="RUN_DIR ..." (run directories or checkpoint files)'; exit 1; }
	$(PYTHON) -m salt.predict "runs=[$(subst $(space),$(comma),$(strip $(RUNS)))]" data.root=$(DATA) out=$(OUT) $(ARGS)
	@if [ "$(KAGGLE_SUBMIT)" = 1 ]; then \
		$(KAGGLE_PATH) command -v kaggle >/dev/null || { echo "$(KAGGLE_MISSING)"; exit 1; }; \
		message=$$($(PYTHON) -c "import sys; from salt.inference.submission import submission_message as m; print(m(sys.argv[1:]))" $(RUNS)); \
		kaggle competitions submit -c tgs-salt-identification-challenge -f $(OUT) -m "$$message"; \
	fi

# make pseudo: ROUNDS rounds of pseudo-labels, each round's runs and labels in their own folder
ROUNDS ?= 1
FOLDS ?= 0,1,2,3,4
PSEUDO_OUT ?= outputs/pseudo-rounds
PSEUDO_ARGS ?=

pseudo: $(STAMP) ## train -> pseudo-label -> retrain, ROUNDS times: make pseudo DATA=dir [ROUNDS=1 FOLDS=0,1,2,3,4 ARGS=... PSEUDO_ARGS=...]
	@set -e; labels=; for round in $$(seq 0 $(ROUNDS)); do \
		folder=$(PSEUDO_OUT)/round$$round; \
		$(PYTHON) -m salt.train -m experiment=$(EXPERIMENT) data.root=$(DATA) data.fold=$(FOLDS) \
			hydra.sweep.dir=$$folder/runs $${labels:+data.pseudo=$$labels} $(ARGS); \
		if [ $$round -lt $(ROUNDS) ]; then \
			runs=$$(ls -d $$folder/runs/*_fold*/ | paste -sd, -); \
			$(PYTHON) -m salt.pseudo "runs=[$$runs]" data.root=$(DATA) out=$$folder/labels $(PSEUDO_ARGS); \
			labels=$$folder/labels; \
		fi; \
	done; echo "pseudo-label rounds: $(PSEUDO_OUT)/round0..$(ROUNDS) (runs/, labels/)"

bench: $(STAMP) ## train and predict images/s against bare PyTorch loops: make bench [DATA=dir] [ARGS="--device cuda --precision bf16-mixed"]
	$(PYTHON) -m salt.bench.throughput $(if $(filter command line environment,$(origin DATA)),$(DATA)) $(ARGS)

bench-metric: $(STAMP) ## time the competition metric over 4,000 masks of DATA against a naive loop
	$(PYTHON) -m salt.bench.metric $(DATA)

gpu-bundle: $(STAMP) ## the offline bundle for a GPU machine in bundle/: the wheels it lacks, the data (prints its size)
	$(PYTHON) benchmarks/gpu_bundle.py --out $(BUNDLE) --data $(GPU_DATA) --test $(GPU_TEST)

gpu-check: ## on the GPU machine, from bundle/ and offline: every GPU figure in about 9 min [CHECK_OUT=dir] [ARGS=...]
	$(GPU_PYTHON) benchmarks/gpu_check.py --bundle $(BUNDLE) $(if $(CHECK_OUT),--out $(CHECK_OUT)) $(ARGS)
