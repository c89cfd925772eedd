# The settlement service: `settle serve` (uvicorn) in production mode on port 8000.
#
#   docker build -t settle .
#   docker run --rm --env-file settle.env -v /run/secrets/settle-keyring:/keyring:ro settle settle db upgrade
#   docker run -d -p 8000:8000 --env-file settle.env -v /run/secrets/settle-keyring:/keyring:ro settle
#
# settle.env sets at least DATABASE_URL=postgresql+asyncpg://USER:PASSWORD@HOST:5432/settle and
# SETTLE_KEYRING_DIR=/keyring (the field-encryption keyring, a secret volume provisioned as
# keys/README.md says; or SETTLE_KEYRING for a KMS). Bearer tokens are accepted from the issuers
# whose public keys are committed in keys/issuers/ (copied to /app/keys/issuers). Production mode
# neither migrates nor loads demo data; /healthz answers as soon as the process is up, /readyz
# once the schema is at the head revision.

FROM python:3.11-slim AS build
# every dependency ships wheels for this Python, so no compiler is needed; the virtual environment
# is built here and copied alone, leaving the sources and pip's build files behind
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY adjudication ./adjudication
COPY api ./api
RUN /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SETTLE_MODE=production \
    SETTLE_HOST=0.0.0.0 \
    SETTLE_PORT=8000 \
    SETTLE_MIGRATIONS=/app/migrations \
    SETTLE_KEYS_DIR=/app/keys
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin settle
COPY --from=build /opt/venv /opt/venv
# neither the alembic scripts nor the trusted issuers' public keys are Python packages: they are
# copied beside the code and found through SETTLE_MIGRATIONS and SETTLE_KEYS_DIR
COPY migrations /app/migrations
COPY keys/issuers /app/keys/issuers
WORKDIR /app
USER settle
EXPOSE 8000
CMD ["settle", "serve"]
