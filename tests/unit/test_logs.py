"""The redacting log filter: no record carries the Discord token or the RunPod key."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.logcontext import job_context
from runpod_bot.logs import REDACTED, JobIdFilter, JsonFormatter, SecretRedactingFilter, configure_logging
from runpod_bot.settings import load_settings

TOKEN = "MTIzNDU2Nzg5.discord.token-value"
KEY = "rpa_SECRETKEYVALUE"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose one handler writes formatted records, through the filter, into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(SecretRedactingFilter([TOKEN, KEY]))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)


def test_secret_in_message_is_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A secret written into the message text is replaced."""
    logger, buffer = captured
    # Deliberately not lazy: the secret must be caught in the message text itself.
    logger.info(f"connecting with {TOKEN}")  # noqa: G004
    assert TOKEN not in buffer.getvalue()
    assert f"connecting with {REDACTED}" in buffer.getvalue()


def test_secret_in_arguments_is_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A secret passed as a %s argument is replaced after formatting."""
    logger, buffer = captured
    logger.warning("headers: %s", {"Authorization": f"Bearer {KEY}"})
    assert KEY not in buffer.getvalue()
    assert REDACTED in buffer.getvalue()


def test_secret_in_traceback_is_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A secret inside an exception's message is replaced in the logged traceback."""
    logger, buffer = captured
    try:
        raise RuntimeError(f"request failed for key {KEY}")
    except RuntimeError:
        logger.exception("request failed")
    output = buffer.getvalue()
    assert "RuntimeError" in output
    assert KEY not in output


def test_records_without_secrets_are_unchanged(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """Ordinary records pass through as they were written."""
    logger, buffer = captured
    logger.info("job %s finished in %.1f s", "abc", 2.5)
    assert buffer.getvalue() == "job abc finished in 2.5 s\n"


def test_json_lines_carry_the_job_id_and_stay_redacted() -> None:
    """With LOG_FORMAT=json each record is one JSON object; records about a job carry its id; secrets are gone."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(JobIdFilter())
    handler.addFilter(SecretRedactingFilter([KEY]))
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with job_context("abc123"):
            logger.warning("status failed with key %s", KEY)
        logger.info("no job here")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert first["job_id"] == "abc123"
    assert first["level"] == "WARNING"
    assert KEY not in first["message"]
    assert "job_id" not in second
    assert second["message"] == "no job here"


@pytest.fixture
def restored_root() -> Iterator[None]:
    """`configure_logging` replaces the root logger's handlers: put back the test runner's afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restored_root")
def test_redis_password_never_reaches_a_log_record(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With a password in REDIS_URL, a record quoting the URL, or the password decoded, shows neither."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings((), redis_url="redis://bot:s3cret%2FPa55word@redis.internal:6379/0")
    configure_logging(logging.INFO, settings.secrets(), "json")
    logger = logging.getLogger("tests.redis_password")
    logger.warning("cannot reach %s", settings.redis_url.get_secret_value() if settings.redis_url else "")
    logger.warning("authentication failed for password %s", "s3cret/Pa55word")
    logged = capsys.readouterr().err
    assert "cannot reach redis://bot:" in logged
    assert "Pa55word" not in logged
