# Two commands: `make run` starts the app, `make test` runs every test.
# Both create .venv when missing and install what the requirement files ask for;
# a stamp file makes the second call skip pip entirely until a requirement file changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run test setup setup-dev clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.stamp-run: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# The tests also cover data-parallel training and Ray jobs, so they install the optional requirements-ray.txt.
$(VENV)/.stamp-dev: requirements.txt requirements-dev.txt requirements-ray.txt $(VENV)/.stamp-run
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt -r requirements-ray.txt
	touch $@

setup: $(VENV)/.stamp-run
setup-dev: $(VENV)/.stamp-dev

run: setup
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true

test: setup-dev
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
