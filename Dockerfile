# tesoro's production image: the project built as a wheel and installed, with the locked
# runtime dependencies only (hash-checked), into a virtualenv copied into a slim runtime
# stage that runs as a non-root user. See the README, "Running in production".
#
# Plain Dockerfile syntax: no `# syntax=` line (BuildKit would fetch a frontend image from a
# registry) and no BuildKit-only `RUN --mount`, so the legacy builder builds it as well.
#
#   docker build -t tesoro:0.1.0 .
#   docker build -t tesoro:0.1.0 \
#     --build-arg INDEX_URL=https://pypi.internal.example/simple \
#     --build-arg EXTRA_CA_CERT="$(cat corporate-root.pem)" .
#
# Build arguments:
#   PYTHON_IMAGE   the base image of both stages (one Python for build and run)
#   INDEX_URL      the package index (a private mirror of PyPI); used by the build stage only,
#                  so it never reaches the final image (whose history is the runtime stage's).
#                  An index that needs credentials takes them in this URL
#                  (https://user:token@host/simple): the builder keeps the build stage's
#                  history in its local cache, so build such images on a builder whose cache
#                  is thrown away (CI), or prune it (`docker builder prune`).
#   EXTRA_CA_CERT  a PEM certificate (the text) to trust besides the system's: at build time
#                  (the index) and at run time (e.g. an egress proxy in front of the upstreams)
#   TESORO_EXTRAS  the project's extras to install, separated by spaces ("redis otel");
#                  `redis` by default, so TESORO_REDIS_URL works without another image
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ARG INDEX_URL=https://pypi.org/simple
ARG EXTRA_CA_CERT=""
ARG TESORO_EXTRAS="redis"
SHELL ["/bin/sh", "-eu", "-c"]
ENV PIP_INDEX_URL=${INDEX_URL} \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_DEFAULT_INDEX=${INDEX_URL} \
    UV_SYSTEM_CERTS=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
RUN if [ -n "${EXTRA_CA_CERT}" ]; then \
        printf '%s\n' "${EXTRA_CA_CERT}" > /usr/local/share/ca-certificates/extra-ca.crt; \
        update-ca-certificates; \
    fi
RUN pip install uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
# The runtime dependencies exactly as locked, each with its hashes; no dev group, no project.
# TESORO_EXTRAS is split into words on purpose: one --extra per extra.
# hadolint ignore=SC2086
RUN extras=""; for extra in ${TESORO_EXTRAS}; do extras="${extras} --extra ${extra}"; done; \
    uv export --frozen --no-dev --no-emit-project ${extras} \
        --format requirements.txt --output-file /tmp/requirements.txt
RUN python -m venv /opt/tesoro \
    && uv pip install --python /opt/tesoro/bin/python --require-hashes -r /tmp/requirements.txt
COPY app ./app
# The project as a wheel (not editable: the image holds no source tree), without resolving
# anything more: every dependency came from the lock above, and `uv pip check` proves it.
RUN uv build --wheel --out-dir /tmp/dist \
    && uv pip install --python /opt/tesoro/bin/python --no-deps /tmp/dist/tesoro-*.whl \
    && uv pip check --python /opt/tesoro/bin/python

FROM ${PYTHON_IMAGE} AS runtime
ARG EXTRA_CA_CERT=""
SHELL ["/bin/sh", "-eu", "-c"]
RUN if [ -n "${EXTRA_CA_CERT}" ]; then \
        printf '%s\n' "${EXTRA_CA_CERT}" > /usr/local/share/ca-certificates/extra-ca.crt; \
        update-ca-certificates; \
    fi; \
    groupadd --system --gid 10001 tesoro; \
    useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin tesoro
COPY --from=build /opt/tesoro /opt/tesoro
ENV PATH=/opt/tesoro/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# An empty working directory: settings come from the environment, and no .env file is here.
WORKDIR /srv/tesoro
USER 10001:10001
EXPOSE 8000
# Exec form: no shell is needed. The check asks /healthz on the port and host the main
# process's `tesoro serve` command line names (`serve --port 19095` is probed on 19095), and
# fails (exit 1) on any error or another status than 200.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-m", "app.healthcheck"]
# SIGTERM (the default stop signal) drains: the listener closes, requests in flight finish.
ENTRYPOINT ["tesoro"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
