# newsbot: the service in one container.
#   docker build -t newsbot .
#   docker run -d --name newsbot -e TELEGRAM_BOT_TOKEN=... -v newsbot-data:/data newsbot
# The base is the official slim image, pinned by version tag and by the digest of its
# multi-architecture index (amd64 and arm64), so every build starts from the same bytes.
FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    BOT_CONFIG=/app/config.toml

# The service runs as this unprivileged user; it owns nothing but /data.
# /app/data is a link to /data, so the shipped config's "data/newsbot.db" lands on the volume.
RUN groupadd --system --gid 10001 newsbot \
 && useradd --system --uid 10001 --gid newsbot --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin newsbot \
 && mkdir -p /data /app \
 && chown newsbot:newsbot /data \
 && ln -s /data /app/data

WORKDIR /app

# Dependencies before the source: this layer is rebuilt only when the pins change.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY config.toml ./
COPY bot/ ./bot/

USER 10001:10001
VOLUME ["/data"]

# Healthy = `python -m bot status` exits 0 (it judges the service from its database).
HEALTHCHECK --interval=60s --timeout=20s --start-period=120s --retries=3 \
    CMD ["python", "-m", "bot", "status"]

# The Telegram token comes only from the environment: docker run -e TELEGRAM_BOT_TOKEN=...
CMD ["python", "-m", "bot", "run"]
