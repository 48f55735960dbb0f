"""The bot's configuration: one pydantic-settings class, read once by the composition root."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobs.defaults import (
    DEFAULT_CLAIM_LEASE_MS,
    DEFAULT_CONCURRENCY,
    DEFAULT_DELIVERY_LEASE_MS,
    DEFAULT_EXECUTION_TIMEOUT_MS,
    DEFAULT_FIRST_POLL_MS,
    DEFAULT_JITTER,
    DEFAULT_MAX_QUEUE_WAIT_MS,
    DEFAULT_QUEUED_MAX_MS,
    DEFAULT_QUEUED_MIN_MS,
    DEFAULT_RUNNING_MAX_MS,
    DEFAULT_RUNNING_MIN_MS,
    DEFAULT_STATUS_BUDGET_PER_S,
    DEFAULT_SUBMIT_CONCURRENCY,
    DEFAULT_SUBMIT_WAIT_S,
    MAX_POLICY_TTL_MS,
    RUNPOD_RETENTION_MS,
    TTL_MARGIN_MS,
)
from runpod_bot.defaults import DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT
from runpod_client.defaults import DEFAULT_MAX_IMAGE_BYTES
from storage.defaults import (
    DAY_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PREFIX,
    DEFAULT_RECORD_TTL_S,
    DEFAULT_SUBMIT_LEASE_MS,
)

# Every default is written once. A setting whose class has a default refers to that class's named constant, which
# lives in its package's `defaults` module (it imports nothing, so reading the settings loads no part of the core):
# the core built from default settings is the classes' defaults. These are the settings' own.
DEFAULT_RUNPOD_BASE_URL = "https://api.runpod.ai/v2"
DEFAULT_DATA_DIR = Path("./data")
DEFAULT_MODELS_FILE = Path("models.toml")
# Admission: `storage.store.Limits` defaults to no limits at all; these are the bot's.
DEFAULT_USER_ACTIVE_JOBS = 2
DEFAULT_GUILD_ACTIVE_JOBS = 20
DEFAULT_USER_COOLDOWN_S = 5.0
# No GPU-time budget unless the operator sets one.
DEFAULT_MEMBER_DAILY_GPU_S = 0
DEFAULT_SERVER_MONTHLY_GPU_S = 0
DEFAULT_CARD_EDIT_INTERVAL_S = 3.0
# The notifier's Discord budgets (cogs/pacing.py `DiscordBudget`). Discord lets a bot edit about 5 messages per 5 s in
# one channel, and create about 5 (each its own count): one request fewer leaves room for a request of another
# process or a clock that disagrees. Its global limit is 50 requests per second per bot, for all its processes: the
# notifier keeps 10 of them free for what the commands send (cards, followups) in the same second.
DEFAULT_CHANNEL_REQUESTS = 4
DEFAULT_CHANNEL_WINDOW_S = 5.0
DEFAULT_REQUESTS_PER_S = 40
MIB = 1024 * 1024
ENV_EXAMPLE = ".env.example"
# No real credential is shorter: RunPod keys are `rpa_` and 46 characters today (24 leaves room for older formats),
# Discord bot tokens three dot-separated parts of 58 characters or more. A shorter value is a copying mistake, and
# would make the log filter replace ordinary text.
MIN_RUNPOD_API_KEY_CHARS = 24
MIN_DISCORD_TOKEN_CHARS = 50
# The webhook tokens are an HMAC under this secret: it must be at least as long as a 128-bit random hex string.
MIN_WEBHOOK_SECRET_CHARS = 32
_TOO_SHORT = {
    "discord_token": f"too short to be a Discord bot token (those have at least {MIN_DISCORD_TOKEN_CHARS} characters): "
    "copy the whole token",
    "runpod_api_key": f"too short to be a RunPod API key (those have at least {MIN_RUNPOD_API_KEY_CHARS} characters): "
    "copy the whole key",
    "webhook_secret": f"too short (at least {MIN_WEBHOOK_SECRET_CHARS} characters): use a random string, such as the "
    "output of `openssl rand -hex 32`",
}
_MINIMUM_CHARS = {
    "discord_token": MIN_DISCORD_TOKEN_CHARS,
    "runpod_api_key": MIN_RUNPOD_API_KEY_CHARS,
    "webhook_secret": MIN_WEBHOOK_SECRET_CHARS,
}

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# RunPod's policy.ttl is MAX_QUEUE_WAIT_S + EXECUTION_TIMEOUT_S + this (its 30-minute retention and a margin), and
# RunPod accepts at most 7 days: their sum may be at most what is left.
TTL_ALLOWANCE_S = (RUNPOD_RETENTION_MS + TTL_MARGIN_MS) // 1000
MAX_QUEUE_AND_RUN_S = MAX_POLICY_TTL_MS // 1000 - TTL_ALLOWANCE_S


class ConfigError(Exception):
    """The configuration cannot be used; the message says which variables to fix."""


class Settings(BaseSettings):
    """Every setting the bot reads, from the environment and `.env` (the environment wins)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    # Required for `run`; commands that do not need one (the CLI's --local mode) leave it unset.
    discord_token: SecretStr | None = None
    runpod_api_key: SecretStr | None = None
    runpod_endpoint_id: str | None = None
    # RunPod's local worker server (`python handler.py --rp_serve_api`) instead of RUNPOD_ENDPOINT_ID: no key needed.
    runpod_local_worker_url: str | None = None
    runpod_base_url: str = DEFAULT_RUNPOD_BASE_URL
    redis_url: SecretStr | None = None
    redis_server_bin: Path | None = None
    redis_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")] = DEFAULT_PREFIX
    # Covers POLL_CONCURRENCY and SUBMIT_CONCURRENCY with room to spare; commands wait for a free connection.
    redis_max_connections: Annotated[int, Field(ge=2, le=10_000)] = DEFAULT_MAX_CONNECTIONS
    data_dir: Path = DEFAULT_DATA_DIR
    log_level: LogLevel = "INFO"
    log_format: Literal["text", "json"] = "text"
    discord_api_base_url: str | None = None
    discord_gateway_url: str | None = None
    dev_guild_id: int | None = None

    # Models and jobs
    models_file: Path = DEFAULT_MODELS_FILE
    user_active_jobs: Annotated[int, Field(ge=0)] = DEFAULT_USER_ACTIVE_JOBS
    guild_active_jobs: Annotated[int, Field(ge=0)] = DEFAULT_GUILD_ACTIVE_JOBS
    user_cooldown_s: Annotated[float, Field(ge=0)] = DEFAULT_USER_COOLDOWN_S
    # GPU-time budgets in seconds (0: none): a member's per UTC day, a server's per UTC month. A server may set lower.
    member_daily_gpu_s: Annotated[int, Field(ge=0)] = DEFAULT_MEMBER_DAILY_GPU_S
    server_monthly_gpu_s: Annotated[int, Field(ge=0)] = DEFAULT_SERVER_MONTHLY_GPU_S
    # At most 200: RunPod takes at most 200 /run at once per endpoint.
    submit_concurrency: Annotated[int, Field(ge=1, le=200)] = DEFAULT_SUBMIT_CONCURRENCY
    # Well under the 15 minutes an interaction's followup token lasts.
    submit_wait_s: Annotated[float, Field(gt=0, le=600)] = DEFAULT_SUBMIT_WAIT_S
    max_queue_wait_s: int = DEFAULT_MAX_QUEUE_WAIT_MS // 1000
    execution_timeout_s: int = DEFAULT_EXECUTION_TIMEOUT_MS // 1000
    job_record_ttl_days: Annotated[int, Field(ge=1, le=365)] = DEFAULT_RECORD_TTL_S // DAY_S
    allow_private_image_urls: bool = False
    image_max_mb: Annotated[int, Field(ge=1, le=500)] = DEFAULT_MAX_IMAGE_BYTES // MIB

    # Discord
    shard_count: Annotated[int, Field(ge=1)] | None = None
    shard_ids: str = ""
    moderator_role_id: int | None = None
    # The bot's operators (comma-separated user ids), besides the application's owner: any job, all of /health.
    bot_owner_ids: str = ""
    # Whether members may install the app on their own account and use it anywhere (DMs, group DMs, servers without
    # the bot); off, the commands are synced for server installs only, and a user install's command is refused.
    user_installs: bool = True
    card_edit_interval_s: Annotated[float, Field(ge=0.5, le=60)] = DEFAULT_CARD_EDIT_INTERVAL_S
    # This process's share of Discord's budgets: per route (edits, creates, deletes) and channel, and in all. Room
    # above Discord's usual numbers for a bot granted more, or a REST proxy that paces for it.
    discord_channel_requests: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_CHANNEL_REQUESTS
    discord_channel_window_s: Annotated[float, Field(gt=0, le=60)] = DEFAULT_CHANNEL_WINDOW_S
    discord_requests_per_s: Annotated[int, Field(ge=1, le=10_000)] = DEFAULT_REQUESTS_PER_S
    prompt_denylist: str = ""

    # HTTP server (/healthz, /readyz, /metrics, webhooks)
    http_host: str = DEFAULT_HTTP_HOST
    http_port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_HTTP_PORT
    webhook_public_url: str | None = None
    webhook_secret: SecretStr | None = None

    # Polling
    poll_first_ms: Annotated[int, Field(ge=0)] = DEFAULT_FIRST_POLL_MS
    poll_queued_min_ms: Annotated[int, Field(ge=100)] = DEFAULT_QUEUED_MIN_MS
    poll_queued_max_ms: Annotated[int, Field(ge=100)] = DEFAULT_QUEUED_MAX_MS
    poll_running_min_ms: Annotated[int, Field(ge=100)] = DEFAULT_RUNNING_MIN_MS
    poll_running_max_ms: Annotated[int, Field(ge=100)] = DEFAULT_RUNNING_MAX_MS
    poll_jitter: Annotated[float, Field(ge=0, le=0.5)] = DEFAULT_JITTER
    poll_concurrency: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_CONCURRENCY
    status_budget_per_s: Annotated[int, Field(ge=1, le=400)] = DEFAULT_STATUS_BUDGET_PER_S
    poll_lease_ms: Annotated[int, Field(ge=1000)] = DEFAULT_CLAIM_LEASE_MS
    delivery_lease_ms: Annotated[int, Field(ge=1000)] = DEFAULT_DELIVERY_LEASE_MS
    submit_lease_ms: Annotated[int, Field(ge=10_000)] = DEFAULT_SUBMIT_LEASE_MS

    @field_validator("max_queue_wait_s", "execution_timeout_s")
    @classmethod
    def _within_runpods_range(cls, value: int, info: ValidationInfo) -> int:
        # RunPod's executionTimeout starts at 5 s; a queue wait under 10 s would cancel jobs during a warm start.
        low = 10 if info.field_name == "max_queue_wait_s" else 5
        high = MAX_QUEUE_AND_RUN_S - (5 if low == 10 else 10)
        if not low <= value <= high:
            name = (info.field_name or "").upper()
            raise ValueError(
                f"{name} must be between {low} and {high} seconds (RunPod's policy.ttl, the queue wait plus the "
                f"execution timeout plus {TTL_ALLOWANCE_S // 60} minutes, may not exceed 7 days)"
            )
        return value

    @model_validator(mode="after")
    def _ttl_within_runpods_range(self) -> Settings:
        total = self.max_queue_wait_s + self.execution_timeout_s
        if total > MAX_QUEUE_AND_RUN_S:
            raise ValueError(
                f"MAX_QUEUE_WAIT_S + EXECUTION_TIMEOUT_S is {total} s but may be at most {MAX_QUEUE_AND_RUN_S} s: "
                f"RunPod's policy.ttl is their sum plus {TTL_ALLOWANCE_S // 60} minutes (its 30-minute result "
                "retention and a margin) and RunPod allows at most 7 days"
            )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "discord_token",
        "runpod_api_key",
        "runpod_endpoint_id",
        "runpod_local_worker_url",
        "redis_url",
        "redis_server_bin",
        "discord_api_base_url",
        "discord_gateway_url",
        "dev_guild_id",
        "moderator_role_id",
        "shard_count",
        "webhook_public_url",
        "webhook_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `.env.example` lists optional variables with empty values; an empty value means "not set".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("discord_token", "runpod_api_key", "webhook_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        name = str(info.field_name)
        if value is not None and len(value.get_secret_value()) < _MINIMUM_CHARS[name]:
            # The message never quotes the value: it is a secret.
            raise PydanticCustomError("too_short", _TOO_SHORT[name])
        return value

    @field_validator("runpod_local_worker_url")
    @classmethod
    def _local_worker_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # The model catalog's module (and its HTTP client) is loaded only when this setting is used.
        from jobs.presets import check_local_worker_url

        return check_local_worker_url(value)

    @model_validator(mode="after")
    def _one_default_endpoint(self) -> Settings:
        if self.runpod_endpoint_id is not None and self.runpod_local_worker_url is not None:
            raise ValueError(
                "RUNPOD_ENDPOINT_ID and RUNPOD_LOCAL_WORKER_URL are both set: the default model runs on one or the "
                "other, so unset one"
            )
        return self

    @field_validator("runpod_base_url", "discord_api_base_url", "discord_gateway_url", "webhook_public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    def secrets(self) -> list[str]:
        """The secret values that must never appear in a log record or a message."""
        values = [
            secret.get_secret_value()
            for secret in (self.discord_token, self.runpod_api_key, self.webhook_secret)
            if secret
        ]
        if self.redis_url is not None:
            # As written in the URL and decoded (as a client would send it, and an error might quote it).
            password = urlsplit(self.redis_url.get_secret_value()).password
            values += [password, unquote(password)] if password else []
        return list(dict.fromkeys(value for value in values if value))

    @property
    def shard_id_list(self) -> list[int]:
        """SHARD_IDS ("0,1,2") as numbers; empty means every shard of SHARD_COUNT."""
        return [int(part) for part in self.shard_ids.split(",") if part.strip()]

    @field_validator("shard_ids")
    @classmethod
    def _shard_ids_are_numbers(cls, value: str) -> str:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            raise ValueError("SHARD_IDS is a comma-separated list of shard numbers, like 0,1,2")
        return ",".join(parts)

    @field_validator("bot_owner_ids")
    @classmethod
    def _owner_ids_are_numbers(cls, value: str) -> str:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            raise ValueError("BOT_OWNER_IDS is a comma-separated list of Discord user ids, like 123456789012345678")
        return ",".join(parts)

    @property
    def operator_ids(self) -> frozenset[int]:
        """BOT_OWNER_IDS as numbers."""
        return frozenset(int(part) for part in self.bot_owner_ids.split(",") if part)

    @property
    def denied_terms(self) -> list[str]:
        """PROMPT_DENYLIST as a list of terms, as the operator wrote them (matching ignores case and disguises)."""
        return [term.strip() for term in self.prompt_denylist.split(",") if term.strip()]

    def missing(self, required: Iterable[str]) -> list[str]:
        """The names (as environment variables) of required settings that are unset.

        RUNPOD_LOCAL_WORKER_URL stands in for RUNPOD_ENDPOINT_ID and needs no RUNPOD_API_KEY; with a models file,
        which models need the key is known only once it is read (`core.build_core` asks for it then). This is the one
        place that decides it, for the settings check and for `core.load_models` alike.
        """
        elsewhere = set()
        if self.runpod_local_worker_url is not None or self.models_file.exists():
            elsewhere = {"runpod_endpoint_id", "runpod_api_key"}
        return [
            ALTERNATIVES.get(name, name.upper())
            for name in required
            if name not in elsewhere and getattr(self, name) is None
        ]


# How a missing setting is named when something else may stand in for it.
ALTERNATIVES = {"runpod_endpoint_id": "RUNPOD_ENDPOINT_ID (or RUNPOD_LOCAL_WORKER_URL, or a MODELS_FILE)"}
# What `runpod-bot run` cannot start without (the endpoint and the key: unless a models file or a local worker server
# stands in for them, see `Settings.missing`).
REQUIRED_FOR_RUN = ("discord_token", "runpod_api_key", "runpod_endpoint_id")
# What talking to RunPod needs (the endpoint may instead come from models.toml, checked where it is read).
REQUIRED_FOR_RUNPOD = ("runpod_api_key",)


def load_settings(required: Iterable[str] = REQUIRED_FOR_RUN, **overrides: Any) -> Settings:
    """Read the settings, turning every validation problem and missing value into one readable `ConfigError`."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    missing = settings.missing(required)
    if missing:
        raise ConfigError(describe_problems(missing, []))
    return settings


def describe_validation_error(exc: ValidationError) -> str:
    """One message naming every missing or invalid variable, pointing at `.env.example`."""
    invalid: list[str] = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper()
        # Never echo the input: it may be a secret. A rule across settings names them in its message.
        invalid.append(f"{name}: {error['msg']}" if name else str(error["msg"]).removeprefix("Value error, "))
    return describe_problems([], invalid)


def describe_problems(missing: list[str], invalid: list[str]) -> str:
    lines = ["The bot's configuration is incomplete."]
    if missing:
        lines.append("Missing required settings: " + ", ".join(missing) + ".")
    if invalid:
        lines.append("Invalid settings: " + "; ".join(invalid) + ".")
    lines.append(f"Set them in the environment or in a .env file; {ENV_EXAMPLE} lists every setting.")
    return "\n".join(lines)


def log_level_number(settings: Settings) -> int:
    """The `logging` level number for the configured level name."""
    return logging.getLevelNamesMapping()[settings.log_level]
