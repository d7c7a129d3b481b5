# The two commands of the README. Each creates .venv if missing and installs the package into it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.clawcrane-installed
OUT ?= quickstart_out

.PHONY: setup quickstart test
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

# Empty: quickstart trains the lite detector (5 minutes). DETECTOR=oracle uses the ground-truth masks.
DETECTOR ?=

quickstart: $(STAMP)
	$(VENV)/bin/clawcrane quickstart --out $(OUT) $(if $(DETECTOR),--detector $(DETECTOR))

test: $(STAMP)
	$(PY) -m pytest -q
