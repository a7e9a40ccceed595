# Two commands matter: `make run` (serve the sandbox) and `make test` (everything CI checks).
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
GEN := .gen
GEN_VENV := $(GEN)/venv
CLIENT := $(GEN)/client
HOST ?= 127.0.0.1
PORT ?= 8000

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install run sandbox test lint typecheck pytest openapi client clean bench lint-deploy redis-server postgresql \
	chromium wrk bench-inprocess bench-redis

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Every extra as well: the tests cover the Redis tier and tracing.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@
	@echo '$(PATH_HINT)'

# The `tesoro` command is in the virtualenv, not on the PATH.
PATH_HINT := tesoro is installed in $(VENV)/bin/: run $(VENV)/bin/tesoro --help, or first \
	`. $(VENV)/bin/activate` (then tesoro serve, tesoro sandbox, ...)

install: $(VENV)/.synced

run: install
	@echo '$(PATH_HINT)'
	$(VENV)/bin/tesoro serve --sandbox --host $(HOST) --port $(PORT)

sandbox: install
	$(VENV)/bin/tesoro sandbox

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

# The shared tier's tests start their own redis-server (Debian's package) on a free loopback
# port; installed here when missing. The package's own service is stopped: nothing needs it.
redis-server:
	@command -v redis-server >/dev/null || ( \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null \
		&& (service redis-server stop >/dev/null 2>&1 || true) )

# The history store's tests start their own PostgreSQL (Debian's package: initdb and pg_ctl as
# the `postgres` user, in a temporary directory, on a free loopback port); installed here when
# missing, its own cluster stopped: nothing needs it.
postgresql:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || ( \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null \
		&& (service postgresql stop >/dev/null 2>&1 || true) )

# The console's browser tests drive Debian's headless chromium through its chromedriver
# (selenium); installed here when missing. Only the tests need them, never `make run`.
chromium:
	@(command -v chromium >/dev/null && command -v chromedriver >/dev/null) || ( \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver) >/dev/null )

pytest: install client redis-server postgresql chromium
	$(VENV)/bin/pytest

# The container and the manifests: hadolint on the Dockerfile, yamllint on deploy/, and
# kubernetes-validate (strict, offline schemas) on what `kubectl kustomize` builds from the base
# and from the example overlay, or on the base's files one by one where kubectl is missing; the
# Secret template is checked too.
lint-deploy: install
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/yamllint --strict deploy/ .yamllint.yaml
	@mkdir -p $(GEN)
	@if command -v kubectl >/dev/null 2>&1; then \
		echo "kubectl kustomize deploy/kubernetes > $(GEN)/kubernetes.yaml"; \
		kubectl kustomize deploy/kubernetes > $(GEN)/kubernetes.yaml || exit 1; \
		echo "kubectl kustomize deploy/overlays/example > $(GEN)/overlay.yaml"; \
		kubectl kustomize deploy/overlays/example > $(GEN)/overlay.yaml || exit 1; \
		$(VENV)/bin/kubernetes-validate --strict --quiet $(GEN)/kubernetes.yaml \
			$(GEN)/overlay.yaml deploy/kubernetes/secret.example.yaml || exit 1; \
	else \
		echo "skipped: kubectl not found (kubectl kustomize); validating the base's files one by one"; \
		$(VENV)/bin/kubernetes-validate --strict --quiet \
			$$(ls deploy/kubernetes/*.yaml | grep -v /kustomization.yaml) || exit 1; \
	fi
	@echo "deploy: Dockerfile and manifests valid"

test: lint lint-deploy typecheck pytest

openapi: install
	$(VENV)/bin/tesoro openapi --output openapi/openapi.json

# openapi-python-client in a virtualenv of its own (it pulls in httpx, which tesoro does not use).
$(GEN_VENV)/.installed: tests/openapi/client-requirements.txt
	rm -rf $(GEN_VENV)
	$(PYTHON) -m venv $(GEN_VENV)
	$(GEN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	@touch $@

# The client generated from the committed spec; .spec is the spec it was generated from.
$(CLIENT)/.spec: $(GEN_VENV)/.installed openapi/openapi.json tests/openapi/client-config.yaml
	rm -rf $(CLIENT)
	$(GEN_VENV)/bin/openapi-python-client generate --path openapi/openapi.json \
		--config tests/openapi/client-config.yaml --meta none --output-path $(CLIENT)/tesoro_client
	cp openapi/openapi.json $@

client: $(CLIENT)/.spec

clean:
	rm -rf $(VENV) $(TOOLS) $(GEN) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# The hot-path benchmark of record (bench/README.md): fakes, tesoro serve and a bare baseline
# as processes on loopback, driven by wrk (Debian's package, installed when missing); prints
# a table and writes bench/results.json. About 10 minutes; not part of make test.
wrk:
	@command -v wrk >/dev/null || ( \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >/dev/null )

bench: install wrk
	$(VENV)/bin/python -m bench.harness
	$(VENV)/bin/python -m bench.history --json bench/results-history.json

# The older in-process ratios, and the shared tier's two-replica benchmark.
bench-inprocess: install
	$(VENV)/bin/python -m bench.bench_service

bench-redis: install redis-server
	$(VENV)/bin/python -m bench.bench_redis
