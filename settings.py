"""The bot's configuration: one pydantic-settings class, read once by the composition root."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RUNPOD_BASE_URL = "https://api.runpod.ai/v2"
DEFAULT_DATA_DIR = Path("./data")
ENV_EXAMPLE = ".env.example"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


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

    discord_token: SecretStr
    runpod_api_key: SecretStr
    runpod_endpoint_id: Annotated[str, Field(min_length=1)]
    runpod_base_url: str = DEFAULT_RUNPOD_BASE_URL
    redis_url: SecretStr | None = None
    redis_server_bin: Path | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    log_level: LogLevel = "INFO"
    discord_api_base_url: str | None = None
    discord_gateway_url: str | None = None
    dev_guild_id: int | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "redis_url",
        "redis_server_bin",
        "discord_api_base_url",
        "discord_gateway_url",
        "dev_guild_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `.env.example` lists optional variables with empty values; an empty value means "not set".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("runpod_base_url", "discord_api_base_url", "discord_gateway_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    def secrets(self) -> list[str]:
        """The secret values that must never appear in a log record or a message."""
        values = [self.discord_token.get_secret_value(), self.runpod_api_key.get_secret_value()]
        return [value for value in values if value]


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning every validation problem into one readable `ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One message naming every missing or invalid variable, pointing at `.env.example`."""
    missing: list[str] = []
    invalid: list[str] = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper() or "?"
        if error["type"] == "missing" or (error["type"] == "string_too_short" and not error.get("input")):
            missing.append(name)
        else:
            # Never echo the input: it may be a secret.
            invalid.append(f"{name}: {error['msg']}")
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
