# scalemcp server image.
#
#   docker build -t scalemcp .
#   docker run --rm -p 8000:8000 scalemcp            # examples.quickstart:app, memory backend
#
# Your own app: either build FROM this image and COPY your module into /app (it is on
# PYTHONPATH), or mount it at run time (the Helm chart's `app.files` mounts a ConfigMap on
# PYTHONPATH), then run `scalemcp serve yourmodule:app --host 0.0.0.0 --port 8000`.
# Extra dependencies of your app: `RUN pip install --no-cache-dir yourdep==X.Y` in your
# derived image (the venv at /opt/scalemcp is first on PATH).
#
# The image holds no secrets: the Redis URL, the state key (SCALEMCP_STATE_KEY) and API keys
# come from the environment or mounted files at run time.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/scalemcp
COPY pyproject.toml README.md ./
COPY scalemcp ./scalemcp
# pip byte-compiles what it installs, so a read-only root filesystem costs no start-up time.
RUN /opt/scalemcp/bin/pip install --no-cache-dir ".[redis,auth]"

FROM ${BASE_IMAGE}
ARG UID=10001
RUN groupadd --gid "${UID}" scalemcp \
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
