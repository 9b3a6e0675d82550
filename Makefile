# jamnet — every install step lives here, idempotent and fast when already done.
# `make run` installs and starts a node; `make test` installs and runs lint, types and tests.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .make
APT_RUN_PKGS  := libportaudio2 libsndfile1 libopus0 libmysofa1
APT_TEST_PKGS := chromium chromium-driver iproute2 ethtool docker.io docker-compose debootstrap

.PHONY: run test install install-test lint typecheck pytest jstest slither clean

run: install
	$(BIN)/jamnet up

test: install-test lint typecheck slither jstest pytest

install: $(STAMPS)/python $(STAMPS)/npm $(STAMPS)/apt-run $(STAMPS)/contracts

install-test: install $(STAMPS)/apt-test $(STAMPS)/slither

$(STAMPS):
	mkdir -p $(STAMPS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The lock pins every transitive version.
$(STAMPS)/python: pyproject.toml requirements.lock $(BIN)/python | $(STAMPS)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

$(STAMPS)/npm: package.json package-lock.json | $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Solidity: py-solc-x drives npm's solcjs (contracts/tools/solc.js); rebuilt when sources change.
$(STAMPS)/contracts: $(wildcard contracts/src/*.sol contracts/test/*.sol) contracts/tools/solc.js \
		$(STAMPS)/python $(STAMPS)/npm
	$(BIN)/python -m node.chain.build
	touch $@

# Debian packages: only installed when missing, so repeat runs cost one dpkg query (the
# list is re-checked whenever this Makefile changes).
$(STAMPS)/apt-run: Makefile | $(STAMPS)
	@missing=$$(for p in $(APT_RUN_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi
	touch $@

$(STAMPS)/apt-test: Makefile | $(STAMPS)
	@missing=$$(for p in $(APT_TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi
	touch $@

# slither needs web3<8, so it lives in its own venv with its own lock.
$(STAMPS)/slither: requirements-slither.lock | $(STAMPS)
	$(PYTHON) -m venv .venv-slither
	.venv-slither/bin/pip install --quiet -r requirements-slither.lock
	touch $@

# Fails on any medium or high finding; the low ones left are explained in contracts/SECURITY.md.
slither: $(STAMPS)/slither $(STAMPS)/contracts
	.venv-slither/bin/slither contracts/src --solc-standard-json --solc contracts/tools/solc.js \
		--filter-paths node_modules --exclude-informational --exclude-low --fail-medium

lint:
	$(BIN)/ruff check node client tests bench
	$(BIN)/ruff format --check node client tests bench

typecheck:
	$(BIN)/mypy

# The page's pure helpers, with Node's built-in test runner.
jstest:
	node --test client/web/test/

pytest:
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .venv-slither node_modules $(STAMPS)
