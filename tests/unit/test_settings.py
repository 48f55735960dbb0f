"""Settings: required values, defaults, and the message a misconfigured operator sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runpod_bot.settings import DEFAULT_RUNPOD_BASE_URL, ConfigError, Settings, load_settings

# Shaped like the real ones (a bot token is three dot-separated parts; a key is `rpa_` and 46 characters).
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abc"
KEY = "rpa_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123abcdef"
REQUIRED = {"DISCORD_TOKEN": TOKEN, "RUNPOD_API_KEY": KEY, "RUNPOD_ENDPOINT_ID": "ep"}
REPO = Path(__file__).resolve().parents[2]
ALL_NAMES = (
    *REQUIRED,
    "WEBHOOK_SECRET",
    "RUNPOD_BASE_URL",
    "REDIS_URL",
    "REDIS_SERVER_BIN",
    "DATA_DIR",
    "LOG_LEVEL",
    "DISCORD_API_BASE_URL",
    "DISCORD_GATEWAY_URL",
    "DEV_GUILD_ID",
    "BOT_OWNER_IDS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts with none of the bot's variables and no `.env` in the working directory."""
    for name in ALL_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_missing_required_values_are_named_together() -> None:
    """One error names every missing required variable and points at .env.example."""
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    for name in REQUIRED:
        assert name in message
    assert ".env.example" in message


def test_empty_endpoint_id_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty RUNPOD_ENDPOINT_ID (as copied from .env.example) is reported as missing."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "")
    with pytest.raises(ConfigError, match="Missing required settings: RUNPOD_ENDPOINT_ID"):
        load_settings()


def test_defaults_apply_when_only_required_values_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """The optional settings take their documented defaults."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.runpod_base_url == DEFAULT_RUNPOD_BASE_URL
    assert settings.redis_url is None
    assert settings.data_dir == Path("data")
    assert settings.log_level == "INFO"
    assert settings.dev_guild_id is None


def test_dotenv_file_is_read_and_empty_optionals_are_unset(tmp_path: Path) -> None:
    """Values come from .env; an optional variable left empty there means "not set"."""
    (tmp_path / ".env").write_text(
        f"DISCORD_TOKEN={TOKEN}\nRUNPOD_API_KEY={KEY}\nRUNPOD_ENDPOINT_ID=ep\nREDIS_URL=\nDEV_GUILD_ID=\nLOG_LEVEL=debug\n"
    )
    settings = load_settings()
    assert settings.runpod_endpoint_id == "ep"
    assert settings.redis_url is None
    assert settings.dev_guild_id is None
    assert settings.log_level == "DEBUG"


def test_invalid_value_is_named_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """An invalid value is reported by variable name, and the value itself is not repeated."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEV_GUILD_ID", "not-a-number-secret")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "DEV_GUILD_ID" in str(caught.value)
    assert "not-a-number-secret" not in str(caught.value)


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Printing the settings never shows the token or the key."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert TOKEN not in repr(settings)
    assert KEY not in repr(settings)
    assert settings.secrets() == [TOKEN, KEY]


@pytest.mark.parametrize(
    ("name", "value", "minimum"),
    [
        ("WEBHOOK_SECRET", "w" * 31, 32),
        ("RUNPOD_API_KEY", "rpa_" + "K" * 19, 24),
        ("DISCORD_TOKEN", "MTIz.GhIjKl." + "t" * 37, 50),
    ],
)
def test_secret_too_short_to_be_real_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, minimum: int
) -> None:
    """A secret one character under its minimum is a configuration error naming the variable, without its value."""
    for required, required_value in REQUIRED.items():
        monkeypatch.setenv(required, required_value)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"{name}: " in message
    assert f"at least {minimum} characters" in message
    assert value not in message


def test_secrets_at_their_minimum_length_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 32-character WEBHOOK_SECRET, a 24-character key and a 50-character token are accepted."""
    monkeypatch.setenv("WEBHOOK_SECRET", "w" * 32)
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_" + "K" * 20)
    monkeypatch.setenv("DISCORD_TOKEN", "MTIz.GhIjKl." + "t" * 38)
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "ep")
    settings = load_settings()
    assert settings.webhook_secret is not None
    assert len(settings.webhook_secret.get_secret_value()) == 32


def test_env_example_lists_every_setting() -> None:
    """.env.example names exactly the settings the bot reads."""
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text().splitlines()
    names = [line.split("=", 1)[0] for line in example if line and not line.startswith("#")]
    assert sorted(names) == sorted(name.upper() for name in Settings.model_fields)


def test_bot_owner_ids_are_read_as_user_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """BOT_OWNER_IDS is a comma-separated list of user ids; anything else is named as invalid."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BOT_OWNER_IDS", " 123456789012345678, 42 ,")
    assert load_settings().operator_ids == frozenset({123456789012345678, 42})
    monkeypatch.setenv("BOT_OWNER_IDS", "alice")
    with pytest.raises(ConfigError, match="BOT_OWNER_IDS"):
        load_settings()


def test_queue_wait_out_of_range_is_refused_naming_the_variable_and_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_QUEUE_WAIT_S below 10 s is refused, naming the variable and the allowed range."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAX_QUEUE_WAIT_S", "5")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "MAX_QUEUE_WAIT_S" in message
    assert "between 10 and 602695 seconds" in message


def test_queue_wait_and_execution_timeout_past_runpods_seven_days_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A queue wait and execution timeout whose ttl would pass RunPod's 7 days are refused, naming both."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAX_QUEUE_WAIT_S", str(4 * 24 * 3600))
    monkeypatch.setenv("EXECUTION_TIMEOUT_S", str(3 * 24 * 3600))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "MAX_QUEUE_WAIT_S + EXECUTION_TIMEOUT_S" in message
    assert "at most 602700 s" in message
    assert "7 days" in message


def test_reading_the_settings_loads_no_part_of_the_core() -> None:
    """The settings come with their defaults but without Redis' client, the HTTP client, metrics or the core."""
    code = (
        "import sys, runpod_bot.settings; "
        "print(' '.join(sorted(name for name in sys.modules if name.split('.')[0] in "
        "{'aiohttp', 'redis', 'prometheus_client'} or (name.startswith(('jobs.', 'storage.', 'runpod_client.')) "
        "and not name.endswith('.defaults')))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.split() == []
