# Sellerdesk worker, scheduler and web app in one image; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin sellerdesk

# Install the package (not editable): only the code and the files pip needs to build it.
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY worker ./worker
COPY connectors ./connectors
RUN pip install -c constraints.txt . && rm -rf /src

# Migrations and templates sit beside the package in the repository, not inside it: ship them here and say where.
WORKDIR /app
COPY migrations ./migrations
COPY templates ./templates
RUN mkdir /data && chown sellerdesk:sellerdesk /data
ENV SELLERDESK_DATA_DIR=/data \
    SELLERDESK_MIGRATIONS_DIR=/app/migrations \
    SELLERDESK_TEMPLATES_DIR=/app/templates

USER sellerdesk
VOLUME ["/data"]
EXPOSE 8000
CMD ["sellerdesk", "--help"]
