# Two entry points do all set-up on a fresh Debian machine:
#   make reproduce   the embedded default (Fashion-MNIST, 8.2 min of run on 2 cores of an AMD EPYC with native bf16)
#   make test        the test suite (includes a tiny whole-DAG run and a local SLURM cluster)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?= config/config.yaml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv system-packages reproduce publish test test-fast lint clean

$(BIN)/snakemake: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

venv: $(BIN)/snakemake

# Debian's Fashion-MNIST (the default's data, offline). Skipped where apt is absent.
system-packages:
	@if command -v apt-get >/dev/null 2>&1 && [ ! -d /usr/share/datasets/fashion-mnist ]; then \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; \
	fi

# The config's own run name: the committed reference run of that config, where there is one.
NAME = $(shell grep '^run_name:' $(CONFIG) | awk '{print $$2}')
# Where `make reproduce` writes: its own folder (git ignores it), never over the committed run;
# RUN=$(NAME) regenerates the committed run itself (then `make publish`).
RUN ?= $(NAME)_fresh
RUN_ARGS = --configfile $(CONFIG) --config run_name=$(RUN) reference_run=$(NAME)

reproduce: venv system-packages
	$(BIN)/snakemake --profile workflow/profiles/default $(RUN_ARGS) --cores $(CORES)
	$(BIN)/snakemake $(RUN_ARGS) --report results/$(RUN)/report.html
	@echo "The answer above is in results/$(RUN)/tables/answer.md; the report: results/$(RUN)/report.html"

# Write PROVENANCE.md into a finished run so that its tables and figures can be committed.
#   make publish CONFIG=config/cifar10_cpu.yaml DATA_NOTE="CIFAR-10 (JPEG copy)"
publish: venv
	$(BIN)/python -m twindnn.publish results/$(NAME) \
		--config $(CONFIG) $(if $(DATA_NOTE),--data-note "$(DATA_NOTE)") $(if $(NOTE),--note "$(NOTE)")

test: venv system-packages
	@if command -v apt-get >/dev/null 2>&1; then $(SUDO) bash scripts/ci/install_slurm.sh; fi
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -ra --durations=30

test-fast: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -ra -m "not slow and not slurm"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf .snakemake results/tiny
