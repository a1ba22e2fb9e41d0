# scalemcp server image.
#
#   docker build -t scalemcp .
#   docker run --rm -p 8000:8000 scalemcp            # examples.quickstart:app, memory backend
#
# Supply chain: the base is pinned by digest; every Python package is an exact version whose
# files' hashes are in requirements/*.txt (pip --require-hashes; scripts/lock-requirements
# regenerates them); the runtime stage has neither pip nor setuptools. OCI labels name the
# version, revision and base. SBOM and provenance: docs/deploy.md ("The image").
#
# Your own app: mount it (the Helm chart's `app.files`), or build a derived image as in
# examples/derived-image/Dockerfile (dependencies go in with a pip of its build stage).
#
# The image holds no secrets: the Redis URL, the state keys (SCALEMCP_STATE_KEYS) and API keys
# come from the environment or mounted files at run time.

# python:3.11-slim-bookworm, pinned by digest; refresh it deliberately (docs/deploy.md).
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/image.txt requirements/build.txt ./requirements/
# Exact versions, hash-checked, nothing resolved here (--no-deps: the lock is complete; pip
# check below proves it). The build backend lives in a venv of its own, not in the image's.
RUN python -m venv /opt/build-backend \
    && /opt/build-backend/bin/pip install --no-cache-dir --require-hashes --no-deps \
       -r requirements/build.txt \
    && python -m venv /opt/scalemcp \
    && /opt/scalemcp/bin/pip install --no-cache-dir --require-hashes --no-deps \
       -r requirements/image.txt
COPY pyproject.toml README.md ./
COPY scalemcp ./scalemcp
# scalemcp's own wheel, built from this context; pip byte-compiles what it installs, so a
# read-only root filesystem costs no start-up time. Then pip and setuptools leave the venv.
RUN /opt/build-backend/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation \
       --wheel-dir /tmp/dist . \
    && /opt/scalemcp/bin/pip install --no-cache-dir --no-deps /tmp/dist/scalemcp-*.whl \
    && /opt/scalemcp/bin/pip check \
    && /opt/scalemcp/bin/pip uninstall --yes --quiet setuptools pip

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG UID=10001
LABEL org.opencontainers.image.title="scalemcp" \
      org.opencontainers.image.description="Serve MCP tools, resources and prompts over HTTP at scale" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# No package installer at run time: the base's own pip, setuptools and wheel go too (the
# Debian-based build of scripts/build-image has none).
RUN if python -m pip --version >/dev/null 2>&1; then \
        python -m pip uninstall --yes --quiet setuptools wheel pip; \
    fi \
    && groupadd --gid "${UID}" scalemcp \
    && useradd --uid "${UID}" --gid scalemcp --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin scalemcp
COPY --from=build /opt/scalemcp /opt/scalemcp
COPY examples /app/examples
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only under the Helm chart.
# SCALEMCP_HEALTHCHECK_URL: change it if you serve on another port or path.
ENV PATH=/opt/scalemcp/bin:${PATH} \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SCALEMCP_HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
WORKDIR /app
USER ${UID}:${UID}
EXPOSE 8000
# Hypercorn drains in-flight requests and streams on SIGTERM.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['SCALEMCP_HEALTHCHECK_URL'], timeout=4)"]
CMD ["scalemcp", "serve", "examples.quickstart:app", "--host", "0.0.0.0", "--port", "8000"]
