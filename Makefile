# mailroll: `make demo` runs the main job on the bundled sample mailbox; `make test` runs the tests.
# Both set everything up on a fresh Debian machine: apt packages (when run as root; otherwise the
# exact command is printed) and the Python environment in .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APT_PACKAGES := ffmpeg dovecot-imapd libarchive-tools libreoffice-writer-nogui libreoffice-calc-nogui fonts-wqy-microhei fonts-crosextra-carlito time openssl python3-venv chromium chromium-driver poppler-utils
# the commands each apt package provides (to skip apt when all are there)
APT_COMMANDS := ffprobe dovecot bsdtar soffice openssl chromium chromedriver pdftotext

.PHONY: demo test lint setup system-packages python-env bench clean samples mutants mutants-picked messages

demo: python-env
	@command -v ffprobe >/dev/null || $(MAKE) --no-print-directory system-packages
	rm -rf demo-out && mkdir -p demo-out && cp -r samples/maildir samples/roster.csv samples/config.toml demo-out/
	$(BIN)/mailroll --config demo-out/config.toml ingest --once
	@# staff decisions are not mail: the sample's (scripts/make_samples.py STAFF_DECISIONS)
	MAILROLL_ACTOR=demo $(BIN)/mailroll --config demo-out/config.toml exempt taiyuan-kx --note "本年度未承办科技活动周活动"
	MAILROLL_ACTOR=demo $(BIN)/mailroll --config demo-out/config.toml dismiss "<7f8e9d0c.5a11.1819a3e1b27.Coremail.kxdbfx@sina.cn>" --note "报刊征订广告"
	MAILROLL_ACTOR=demo $(BIN)/mailroll --config demo-out/config.toml answered "<3c7a1f20.5e21.18122f0a1b3.Coremail.dtkjj2022@163.com>" --note "电话答复：按万人次填报，直播观看人次计入"
	$(BIN)/mailroll --config demo-out/config.toml status
	@echo
	@echo "More: $(BIN)/mailroll --config demo-out/config.toml show taiyuan-kjj | unmatched --all | stats | report --xlsx demo-out/report.xlsx"

# one pytest process per core (pytest-xdist); TEST_WORKERS=0 runs them in this process. Not
# --dist loadfile: after a crashed worker it can wait forever (pytest-xdist issues 784, 1378).
# A test whose worker crashed (a segfault in a C library) gets one run alone: scripts/run_tests.py
TEST_WORKERS ?= auto
test: setup lint
	$(BIN)/python scripts/run_tests.py -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

# style, formatting and types; configured in pyproject.toml
lint: python-env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

setup: system-packages python-env

system-packages:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null 2>&1 || [ -x /usr/bin/$$c ] || [ -x /usr/sbin/$$c ] || missing="$$missing $$c"; done; \
	[ -x /usr/bin/time ] || missing="$$missing time"; \
	[ -f /usr/share/fonts/truetype/crosextra/Carlito-Regular.ttf ] || missing="$$missing fonts-crosextra-carlito"; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "missing:$$missing"; \
	if [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	else \
		echo "run as root:  sudo apt-get install -y --no-install-recommends $(APT_PACKAGES)"; exit 1; \
	fi

python-env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

samples: python-env
	$(BIN)/python scripts/make_samples.py

# the message catalog (reconcile/locale): extract new messages, update the .po, compile the .mo
messages: python-env
	$(BIN)/python scripts/messages.py

bench: setup
	$(BIN)/python bench/run_all.py

# Generated mutants (mutmut, scripts/mutation.py) of the rule modules, each with its own fast
# test selection; only modules changed since their last run are run again; prints the score per
# module. MUTANT_JOBS=2 runs two mutants at once. Not part of `make test` (see README).
MUTANT_JOBS ?= 1
mutants: setup
	$(BIN)/python -m pip install -q -e '.[mutation]'
	MUTANT_JOBS=$(MUTANT_JOBS) nice $(BIN)/python scripts/mutation.py $(MODULES)

# the 22 mutants chosen by hand (scripts/mutants.py)
mutants-picked: setup
	$(BIN)/python scripts/mutants.py

clean:
	rm -rf $(VENV) demo-out bench/out .pytest_cache *.egg-info .mutants
