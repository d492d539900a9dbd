# The two commands of the README's Quick start. Both create the virtualenv (.venv) on first use, with
# the versions CI tests (constraints.txt), so they work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

# The main job on the embedded default: sandbox marketplace, Celery worker and beat, approval UI.
demo: venv
	$(BIN)/sellerdesk demo

# The whole test suite; the PostgreSQL/Redis tier runs when SELLERDESK_TEST_DATABASE_URL and
# SELLERDESK_TEST_REDIS_URL are set (.ci/run sets them), and is skipped with the reason otherwise.
test: venv
	$(BIN)/python -m pytest -q
