# Two commands for a fresh machine:
#   make demo    serve the demo project's admin with uWSGI (PORT=8000, ADMIN_PASSWORD=admin)
#   make test    run the whole test suite in its own virtualenv (TM_TEST_DB=sqlite|postgresql|mariadb)
# and `make bench` for the benchmarks. Each target creates the virtualenv it needs
# (.venv-demo, .venv-test; bench/bench_tasks.py also .venv-bench-tasks, Django 6.1)
# on first use and reuses it afterwards.

PYTHON ?= python3
PORT ?= 8000
# Empty: the demo's superuser gets the password 'admin' when it is created and
# keeps its password afterwards; given, it becomes the password (demo/demo_setup.py).
ADMIN_PASSWORD ?=
TM_TEST_DB ?= sqlite
# Extra arguments for pytest, e.g. make test PYTEST_ARGS="-x -k stop"
PYTEST_ARGS ?=

export TM_TEST_DB

DEMO_VENV := .venv-demo
TEST_VENV := .venv-test

# The database driver comes with the test extras for PostgreSQL always; the
# MariaDB driver (mysqlclient) compiles against libmariadb-dev, so it is only
# installed when the tests are asked to run on MariaDB.
comma := ,
TEST_EXTRAS := test,postgresql
ifeq ($(TM_TEST_DB),mariadb)
TEST_EXTRAS := $(TEST_EXTRAS),mysql
endif
TEST_STAMP := $(TEST_VENV)/.installed-$(subst $(comma),-,$(TEST_EXTRAS))

.PHONY: demo test bench test-venv demo-venv lint docs dist clean distclean help

help:
	@echo "make demo   [PORT=8000] [ADMIN_PASSWORD=admin]   serve the demo admin with uWSGI"
	@echo "make test   [TM_TEST_DB=sqlite|postgresql|mariadb] [PYTEST_ARGS=...]   run the test suite"
	@echo "make bench                                       run the benchmarks (bench/run.py)"
	@echo "make lint | docs | dist | clean | distclean"

# -- virtualenvs ---------------------------------------------------------------
# A stamp file per virtualenv records that the install is done; it is redone
# when the package metadata changes.

# The demo's virtualenv runs Django 6.1 (and the demo its django.tasks part)
# where a Python >= 3.12 is found (PYTHON itself, python3.12+ on PATH, pyenv's
# versions), else Django 5.2 on PYTHON: demo/demo_venv.py chooses, makes it
# again when the interpreter changes, and does nothing when it is up to date.
demo-venv:
	$(PYTHON) demo/demo_venv.py $(DEMO_VENV)

$(TEST_VENV)/bin/python:
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_VENV)/bin/python -m pip install --quiet --upgrade pip

$(TEST_STAMP): setup.cfg pyproject.toml | $(TEST_VENV)/bin/python
	@echo "Installing the app with the extras [$(TEST_EXTRAS)] into $(TEST_VENV)"
	$(TEST_VENV)/bin/python -m pip install --quiet -e '.[$(TEST_EXTRAS)]'
	touch $@

test-venv: $(TEST_STAMP)

# -- the demo ------------------------------------------------------------------
# demo/var/ (database, spool files, static files, secret key) is kept across
# restarts (also when the virtualenv moves to another Django); delete it to
# start from scratch.

demo: export DEMO_ADMIN_PASSWORD = $(ADMIN_PASSWORD)
demo: export DEMO_PORT = $(PORT)
demo: demo-venv
	mkdir -p demo/var/spool
	cd demo && ../$(DEMO_VENV)/bin/python manage.py migrate --noinput
	cd demo && ../$(DEMO_VENV)/bin/python manage.py collectstatic --noinput --verbosity 0
	cd demo && ../$(DEMO_VENV)/bin/python manage.py collect_commands --excludecore -v2
	cd demo && ../$(DEMO_VENV)/bin/python demo_setup.py --port $(PORT)
	cd demo && exec ../$(DEMO_VENV)/bin/uwsgi --ini uwsgi.ini

# -- tests, benchmarks, lint, docs, packages ----------------------------------

test: test-venv
	$(TEST_VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

bench: test-venv
	$(TEST_VENV)/bin/python bench/run.py

lint: test-venv
	$(TEST_VENV)/bin/python -m pip install --quiet -e '.[lint]'
	$(TEST_VENV)/bin/ruff check .

docs: test-venv
	$(TEST_VENV)/bin/python -m pip install --quiet -e '.[docs]'
	$(TEST_VENV)/bin/sphinx-build -W -b html docs docs/_build/html

dist: test-venv
	rm -rf dist
	$(TEST_VENV)/bin/python -m build
	$(TEST_VENV)/bin/twine check --strict dist/*

clean:
	rm -rf build dist docs/_build .tox *.egg-info

distclean: clean
	rm -rf $(DEMO_VENV) $(DEMO_VENV).lock $(TEST_VENV) .venv-bench-tasks .venv-bench-tasks.lock demo/var
