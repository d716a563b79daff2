# callvault: `make run` to start, `make test` to check everything.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= $(CURDIR)/data
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the test suite drives as real peers and to make test audio.
TEST_APT := sip-tester sox libsox-fmt-all espeak-ng ffmpeg tshark chromium fonts-noto-cjk tcpreplay
TEST_BINS := sipp sox espeak-ng ffmpeg tshark dumpcap chromium

.PHONY: run test lint typecheck pytest test-deps clean bench bench-quick

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	CALLVAULT_DATA_DIR=$(DATA_DIR) $(BIN)/callvault manage migrate --noinput
	CALLVAULT_DATA_DIR=$(DATA_DIR) $(BIN)/callvault manage ensure_admin
	CALLVAULT_DATA_DIR=$(DATA_DIR) $(BIN)/callvault serve

test-deps:
	@missing=""; for b in $(TEST_BINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing test tools (missing:$$missing)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(TEST_APT) >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check callvault tests benchmarks
	$(BIN)/ruff format --check callvault tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy callvault

# The embedded default (SQLite) runs the whole suite; the database-backed tests run again
# on PostgreSQL (the scale-out database). Set CALLVAULT_TEST_POSTGRES=0 on a machine without it.
TEST_PG_URL ?= postgres://postgres@127.0.0.1:5432/callvault
pytest: $(STAMP) test-deps
	$(BIN)/pytest
	@if [ "$${CALLVAULT_TEST_POSTGRES:-1}" = 1 ]; then \
	  echo "--- database tests on PostgreSQL ($(TEST_PG_URL))"; \
	  DATABASE_URL=$(TEST_PG_URL) $(BIN)/pytest -q -m "not e2e" tests/apps tests/api tests/web tests/ops tests/uploads \
	    tests/customers tests/pbx tests/test_access_matrix.py; \
	else echo "--- PostgreSQL tests not run (CALLVAULT_TEST_POSTGRES=0)"; fi

test: $(STAMP) test-deps lint typecheck pytest

# The full benchmarks take about 40 and 20 minutes; bench-quick takes about two.
bench: $(STAMP) test-deps
	$(BIN)/python benchmarks/siprec_capacity.py
	$(BIN)/python benchmarks/web_list.py
	$(BIN)/python benchmarks/pcap_import.py

bench-quick: $(STAMP) test-deps
	$(BIN)/python benchmarks/siprec_capacity.py --quick
	$(BIN)/python benchmarks/web_list.py --quick
	$(BIN)/python benchmarks/pcap_import.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
