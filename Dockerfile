# syntax=docker/dockerfile:1
# Build: docker build -t runpod-bot .   Run: docker run --env-file .env runpod-bot
FROM python:3.11-slim AS build
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY bot.py cli.py logs.py settings.py ./
COPY cogs cogs
COPY jobs jobs
COPY runpod_client runpod_client
COPY storage storage
RUN python -m venv /venv \
    && /venv/bin/pip install --no-cache-dir -c constraints.txt pip \
    && /venv/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 bot
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH DATA_DIR=/data PYTHONUNBUFFERED=1
RUN mkdir -p /data && chown bot:bot /data
USER bot
WORKDIR /home/bot
VOLUME ["/data"]
ENTRYPOINT ["runpod-bot"]
CMD ["run"]
