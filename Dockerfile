# The settlement service: `settle serve` (uvicorn) in production mode on port 8000. Build, migrate
# and run as the README's "Docker" section says:
#
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" -t settle:0.1.0 .
#   docker run --rm --env-file settle.env -v /run/secrets/settle-keyring:/keyring:ro settle:0.1.0 settle db upgrade
#   docker run -d -p 8000:8000 --env-file settle.env -v /run/secrets/settle-keyring:/keyring:ro \
#     -v /srv/settle-witness:/witness settle:0.1.0
#
# settle.env sets at least DATABASE_URL=postgresql+asyncpg://USER:PASSWORD@HOST:5432/settle,
# SETTLE_KEYRING_DIR=/keyring (the field-encryption keyring, a secret volume provisioned as
# keys/README.md says; or SETTLE_KEYRING for a KMS) and SETTLE_AUDIT_WITNESS_DIR=/witness (a folder
# the database's administrators cannot write, writable by uid 10001; or `off`). Bearer tokens are
# accepted from the issuers whose public keys are committed in keys/issuers/ (copied to
# /app/keys/issuers). Production mode neither migrates nor loads demo data; /healthz answers as soon
# as the process is up, /readyz once the schema is at the head revision. No secret is built in.
#
# The base image is pinned by its exact tag and by the digest of its multi-platform index (linux/amd64
# and linux/arm64 alike), as docker-library/repo-info recorded it for python:3.11.16-slim-bookworm;
# to move it, take the new digest from `docker buildx imagetools inspect python:3.11.X-slim-bookworm`
# and change both FROM lines together.

FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS build
# every dependency ships wheels for this Python on both platforms, so no compiler is needed. The
# virtual environment is built from the lock file (every release pinned, every file's hash checked,
# the build backend included) and copied alone, leaving the sources and pip's build files behind
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY adjudication ./adjudication
COPY api ./api
# not editable: the GraphiQL page and its files are package data, carried into site-packages
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip check

FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f
ARG REVISION=unknown
LABEL org.opencontainers.image.title="settle" \
      org.opencontainers.image.description="Real-time multi-payer settlement of innovative drugs" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.16-slim-bookworm" \
      org.opencontainers.image.base.digest="sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SETTLE_MODE=production \
    SETTLE_HOST=0.0.0.0 \
    SETTLE_PORT=8000 \
    SETTLE_HOME=/app
RUN groupadd --system --gid 10001 settle \
    && useradd --system --no-log-init --uid 10001 --gid settle --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin settle
COPY --from=build /opt/venv /opt/venv
# neither the alembic scripts nor the trusted issuers' public keys are Python packages: they are
# copied into SETTLE_HOME (owned by root, read-only to the service), where an installed package
# finds its migrations/ and keys/ (and any relative path of the settings resolves)
COPY migrations /app/migrations
COPY keys/issuers /app/keys/issuers
WORKDIR /app
# numeric, so that an orchestrator can check it is not root without reading /etc/passwd
USER 10001:10001
EXPOSE 8000
# liveness only (/readyz says whether the schema is migrated); slim has no curl, Python's urllib will do
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SETTLE_PORT', '8000'), timeout=4)"]
CMD ["settle", "serve"]
