# Two commands: `make demo` and `make test`. Each does all of its own set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup check-tools test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

check-tools:
	@bash scripts/check-tools.sh

setup: check-tools $(STAMP)

test: setup
	$(BIN)/pytest -q -p no:cacheprovider

demo: setup
	bash scripts/demo.sh

bench: setup
	$(BIN)/python -m bench.attach_secondary --players 1000000 --out bench/results/attach-secondary.json

clean:
	-$(BIN)/migrate lab down 2>/dev/null
	rm -rf $(VENV) .migrate .lab
