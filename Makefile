# Two entry points on a fresh machine: `make demo` and `make test`. Both build .venv from the
# pinned constraints first (pip, not uv: see CONTRIBUTING.md).
PYTHON ?= python3
VENV ?= .venv
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
# pytest-xdist workers per backend: most tests are single-threaded Python (tracing, small ops),
# so two workers use both cores of the CI machine; PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
EXTRAS = tensorflow-cpu,jax,torch,data,export,dev,docs

.PHONY: venv demo test docs lint clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.installed

# The main job (`keras-convit train`) with no flags: a small ConViT on the offline digits,
# written to runs/demo/. A killed demo resumes when run again; a finished runs/demo/ is kept:
# `make demo` then says so and succeeds (nothing to do; the job itself would refuse with exit
# status 2) unless `make demo DEMO_FLAGS=--overwrite` (or another --output-dir).
# OMP_WAIT_POLICY=PASSIVE stops torch's idle OpenMP threads spinning against tf.data's threads.
DEMO_FLAGS ?=
DEMO_DIR = runs/demo
demo: venv
	@if [ -z "$(filter --overwrite --output-dir%,$(DEMO_FLAGS))" ] && $(VENV)/bin/python -c \
		"import json, sys; sys.exit(json.load(open('$(DEMO_DIR)/run.json'))['status'] != 'finished')" \
		2>/dev/null; then \
		echo "$(DEMO_DIR) already holds a finished run (see $(DEMO_DIR)/); nothing to do." \
			"make demo DEMO_FLAGS=--overwrite trains it again."; \
	else \
		set -x; \
		KERAS_BACKEND=$${KERAS_BACKEND:-jax} OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} \
			$(VENV)/bin/python -m keras_convit train --output-dir $(DEMO_DIR) $(DEMO_FLAGS); \
	fi

# One process per backend: Keras fixes its backend at import time. Every process of the run
# (pytest's workers and the jobs the tests start) shares one JAX compilation cache, new for the
# run and removed after it: the job's tests start dozens of processes that compile the same tiny
# models' steps. A size limit turns on the cache's file lock (no process reads an entry another
# is still writing), which makes each write scan the cache: compilations under 0.2 s (single
# eager ops, hundreds a process) are left out. JAX, the job's process tests (preemption, resume,
# repeatable runs, test_job.py) on 2 workers: 140 s without the cache, 105 s with it.
test: venv
	@failed=""; cache=$$(mktemp -d); \
	for backend in $(BACKENDS); do \
		echo "== KERAS_BACKEND=$$backend =="; \
		KERAS_BACKEND=$$backend OMP_WAIT_POLICY=PASSIVE JAX_COMPILATION_CACHE_DIR=$$cache \
			JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.2 JAX_COMPILATION_CACHE_MAX_SIZE=4000000000 \
			$(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS) \
			|| failed="$$failed $$backend"; \
	done; \
	rm -rf "$$cache"; \
	if [ -n "$$failed" ]; then echo "FAILED backends:$$failed"; exit 1; fi; \
	echo "All backends passed: $(BACKENDS)"

# The docs site (docs/ and the API pages from the docstrings) into site/; --strict fails on a
# broken link or a missing reference. NO_MKDOCS_2_WARNING silences Material's banner about MkDocs 2.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: venv
	$(VENV)/bin/ruff check keras_convit tests examples benchmarks
	$(VENV)/bin/ruff format --check keras_convit tests examples benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
