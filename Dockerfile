# dbtgate as a GitHub Docker container action and a standalone container.
# Python is PID 1 (exec-form ENTRYPOINT) and handles SIGINT/SIGTERM itself: it cancels the dbt Cloud run and
# writes its report before the runner's 7.5 s grace period ends. No USER: GitHub's runner needs root in the
# container to write the workspace and file-command files.

FROM python:3.12.8-slim-bookworm AS deps
COPY requirements.txt /tmp/requirements.txt
# Pure-Python wheels only, verified against the hashes in the lock; nothing is compiled, so no build tools.
RUN pip install --no-cache-dir --no-compile --require-hashes --only-binary=:all: --no-deps \
        --target /opt/dbtgate/site-packages -r /tmp/requirements.txt

FROM python:3.12.8-slim-bookworm
ARG VERSION=0.0.0-dev
LABEL org.opencontainers.image.title="dbtgate" \
      org.opencontainers.image.description="Gate a CI/CD pipeline on a dbt Cloud job run" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/dbtgate/dbtgate"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/dbtgate/site-packages:/opt/dbtgate/app
COPY --from=deps /opt/dbtgate/site-packages /opt/dbtgate/site-packages
# `dbtgate` on PATH for standalone use (GitLab CI's image: + script:, docker run --entrypoint dbtgate).
COPY scripts/container/dbtgate /usr/local/bin/dbtgate
# Standalone runs write artifacts relative to here: mount the host's folder on it (docker run -v "$PWD:/work").
# GitHub's runner passes --workdir /github/workspace, which takes precedence.
WORKDIR /work
COPY entrypoint.py /opt/dbtgate/app/entrypoint.py
COPY dbtgate /opt/dbtgate/app/dbtgate
# Bytecode compiled once, here: PYTHONDONTWRITEBYTECODE keeps a container from caching it, so without this every start
# would compile requests, urllib3 and dbtgate from source before the first request. unchecked-hash: the image's sources
# never change, so Python need not stat them.
RUN python -m compileall -q --invalidation-mode unchecked-hash /opt/dbtgate
ENTRYPOINT ["python", "/opt/dbtgate/app/entrypoint.py"]
