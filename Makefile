# Two commands: `make demo` and `make test`. Each does all of its own set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup check-tools test demo gameday bench clean

# Beside .venv, not inside it: `make -j2` creates both at once, and python -m venv racing on a shared
# parent directory fails with 'File exists' (a clean clone's CI, session 5).
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

# pip byte-compiles every installed file one at a time (botocore alone has thousands): half of the
# install on a clean clone. Installing without it and compiling on every core after takes 30 s instead of
# 35 here; leaving it to first import made the suite slower, its workers compiling the same modules at once.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || echo "some installed files did not byte-compile (harmless: Python compiles them on import)"
	touch $(STAMP)

# checkov pins old boto3/packaging and ships a clashing hcl2 package: it gets a virtualenv of its own,
# not byte-compiled (16 s instead of the longer half of `make -j2 setup`): one test runs it.
$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet --no-compile 'checkov==3.3.30'

check-tools:
	@bash scripts/check-tools.sh

# The project's own modules, compiled up front: every lab test starts `migrate` and app processes by
# the hundred, and where PYTHONDONTWRITEBYTECODE is set (these machines set it) each would compile
# every module it imports again (0.1 s of a `migrate status`'s 0.8 s of CPU). Stale files are
# recompiled by Python as usual: it checks each source's mtime.
setup: check-tools $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 app migrate phases bench tests > /dev/null

# In parallel (DESIGN §7): each worker runs its own labs on its own ports. The lab tests mostly wait on
# WAN delays and bakes, so more workers than cores pay; a module stays on one worker (its fixtures
# build one lab world, e.g. Tokyo attached, for all its tests). Modules whose gates judge the latency
# players measure (latency_gated) then run alone: on 2 cores shared with three busy workers the players
# measured multi-second p95s that no lab process served (cause not found yet; see issue 9's note).
# They run with a 2 s DNS TTL instead of the lab's 5 s: each of their ~16 bakes first waits one TTL for
# the players' resolvers, and that wait is all they measure it for.
TEST_WORKERS ?= 4

# The two virtualenvs install side by side (pip mostly waits on the index and unpacking): about half
# a minute less on a fresh clone.
test:
	@$(MAKE) --no-print-directory -j2 setup $(CHECKOV)
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not latency_gated" --durations=15
	MIGRATE_LAB_DNS_TTL=2 $(BIN)/pytest -q -p no:cacheprovider -m latency_gated --durations=5

demo: setup
	bash scripts/demo.sh

# The region-kill game day on a fresh lab (Tokyo shifted and cut over through the real phases, then cut
# off under load, evacuated, brought back): figures in bench/results/gameday.json; exit 1 on a broken guarantee.
gameday: setup
	$(BIN)/python -m bench.gameday --players 100000 --out bench/results/gameday.json

bench: setup
	$(BIN)/python -m bench.attach_secondary --players 1000000 --out bench/results/attach-secondary.json

clean:
	-$(BIN)/migrate lab down 2>/dev/null
	rm -rf $(VENV) $(CHECKOV_VENV) .migrate .lab
