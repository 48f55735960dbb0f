"""Logging setup: one handler on the root logger, with a filter that keeps secrets out of every record."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# Shorter values cannot be real tokens or keys, and replacing them would garble every record (a key of "t").
MIN_SECRET_LENGTH = 6
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Libraries that log every request at INFO or DEBUG: their chatter hides the bot's own records.
QUIET_LOGGERS = ("discord.gateway", "discord.http", "aiohttp.access")


class SecretRedactingFilter(logging.Filter):
    """Replaces every known secret in a record's message, arguments and traceback text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted(
            {secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        # Render the message once so that secrets inside `%s` arguments are caught too.
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def configure_logging(level: int, secrets: Iterable[str]) -> logging.Handler:
    """Send every record to stderr through the redacting filter; return the handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(SecretRedactingFilter(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler
