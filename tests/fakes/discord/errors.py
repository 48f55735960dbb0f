"""Discord's error responses, each with the status and JSON code discord.py turns into an exception."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error response: `status`, Discord's JSON `code`, its `message` and, for 50035, the `errors` tree."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class ControlError(Exception):
    """A control-API call the fake cannot carry out (unknown object, nobody to deliver to, bad arguments)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def field_error(code: str, message: str) -> dict[str, Any]:
    """One entry of a 50035 error tree, as Discord nests it under the offending field."""
    return {"_errors": [{"code": code, "message": message}]}


def invalid_form_body(errors: dict[str, Any]) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", errors)


def too_long(path: list[str], limit: int) -> ApiError:
    """A 50035 for a string or list over its limit, nested under `path` (e.g. ["embeds", "0", "title"])."""
    tree: dict[str, Any] = field_error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    for part in reversed(path):
        tree = {part: tree}
    return invalid_form_body(tree)


def unauthorized() -> ApiError:
    return ApiError(401, 0, "401: Unauthorized")


def not_found_route() -> ApiError:
    return ApiError(404, 0, "404: Not Found")


def method_not_allowed() -> ApiError:
    return ApiError(405, 0, "405: Method Not Allowed")


def unknown_channel() -> ApiError:
    return ApiError(404, 10003, "Unknown Channel")


def unknown_guild() -> ApiError:
    return ApiError(404, 10004, "Unknown Guild")


def unknown_member() -> ApiError:
    return ApiError(404, 10007, "Unknown Member")


def unknown_message() -> ApiError:
    return ApiError(404, 10008, "Unknown Message")


def unknown_user() -> ApiError:
    return ApiError(404, 10013, "Unknown User")


def unknown_webhook() -> ApiError:
    return ApiError(404, 10015, "Unknown Webhook")


def unknown_command() -> ApiError:
    return ApiError(404, 10063, "Unknown application command")


def unknown_interaction() -> ApiError:
    return ApiError(404, 10062, "Unknown interaction")


def already_acknowledged() -> ApiError:
    return ApiError(400, 40060, "Interaction has already been acknowledged.")


def invalid_webhook_token() -> ApiError:
    return ApiError(401, 50027, "Invalid Webhook Token")


def missing_access() -> ApiError:
    return ApiError(403, 50001, "Missing Access")


def missing_permissions() -> ApiError:
    return ApiError(403, 50013, "Missing Permissions")


def not_author() -> ApiError:
    return ApiError(403, 50005, "Cannot edit a message authored by another user")


def cannot_message_user() -> ApiError:
    """A DM to a user who does not accept them (closed DMs, no shared server, or another bot)."""
    return ApiError(403, 50007, "Cannot send messages to this user")


def invalid_recipients() -> ApiError:
    return ApiError(400, 50033, "Invalid Recipient(s)")


def empty_message() -> ApiError:
    return ApiError(400, 50006, "Cannot send an empty message")


def too_large() -> ApiError:
    return ApiError(413, 40005, "Request entity too large")


def invalid_json() -> ApiError:
    return ApiError(400, 50109, "The request body contains invalid JSON.")


def archived_thread() -> ApiError:
    """Editing (or, in a locked thread, posting) in an archived thread."""
    return ApiError(400, 50083, "Operation on an archived thread")


def thread_locked() -> ApiError:
    """Posting or editing in a locked thread without Manage Threads."""
    return ApiError(403, 160005, "Thread is locked")


def invalid_channel_type() -> ApiError:
    """An action the channel's type does not allow (a thread in a thread, a message straight into a forum)."""
    return ApiError(400, 50024, "Cannot execute action on this channel type")


def message_has_thread() -> ApiError:
    return ApiError(400, 160004, "A thread has already been created for this message")
