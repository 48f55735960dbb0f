# syntax=docker/dockerfile:1
# The bot's image: the pinned dependency set in a virtualenv, the project installed as a package, run as a
# non-root user. No secret is baked in: configuration comes from the environment (docker compose reads .env).
#   docker build -t runpod-bot .
#   docker run --env-file .env -p 8080:8080 runpod-bot            # runpod-bot run --role all
#   docker run --env-file .env runpod-bot run --role poller        # an extra poller process

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /venv
# Dependencies first, so a code change does not reinstall them.
COPY constraints.txt ./
COPY pyproject.toml README.md ./
COPY bot.py ./
COPY runpod_bot runpod_bot
COPY cogs cogs
COPY jobs jobs
COPY runpod_client runpod_client
# `runpod-bot emulator` and `imagine --local` serve a local RunPod-compatible endpoint.
COPY runpod_emulator runpod_emulator
COPY storage storage
# The same install the Makefile does, without the dev extras and not editable.
RUN /venv/bin/pip install --no-cache-dir -c constraints.txt pip \
    && /venv/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 bot && mkdir -p /data && chown bot:bot /data
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
USER bot
WORKDIR /home/bot
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('HTTP_PORT', '8080')}/healthz\", timeout=4)"]
ENTRYPOINT ["runpod-bot"]
CMD ["run", "--role", "all"]
