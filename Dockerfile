# The settlement service: `settle serve` (uvicorn) in production mode on port 8000.
#
#   docker build -t settle .
#   docker run --rm -e DATABASE_URL=postgresql+asyncpg://USER:PASSWORD@HOST:5432/settle settle settle db upgrade
#   docker run -d -p 8000:8000 -e DATABASE_URL=postgresql+asyncpg://USER:PASSWORD@HOST:5432/settle settle
#
# Production mode neither migrates nor loads demo data: run `settle db upgrade` (the same image) first;
# /readyz answers 200 once the schema is at the head revision, /healthz as soon as the process is up.

FROM python:3.11-slim AS build
# every dependency ships wheels for this Python, so no compiler is needed; the virtual environment
# is built here and copied alone, leaving pip's build files behind
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
    SETTLE_MIGRATIONS=/app/migrations
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin settle
COPY --from=build /opt/venv /opt/venv
# the alembic scripts are not a Python package: installed beside the code, found through SETTLE_MIGRATIONS
COPY migrations /app/migrations
WORKDIR /app
USER settle
EXPOSE 8000
CMD ["settle", "serve"]
