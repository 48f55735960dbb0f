"""Discord's limits on what a message may carry, checked the way Discord checks them (50035, 50006, 40005)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.fakes.discord import errors

CONTENT_LIMIT = 2000
FILES_LIMIT = 10
EMBEDS_LIMIT = 10
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELDS_LIMIT = 25
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_FOOTER_LIMIT = 2048
EMBED_AUTHOR_LIMIT = 256
EMBED_TOTAL_LIMIT = 6000
ACTION_ROWS_LIMIT = 5
ROW_COMPONENTS_LIMIT = 5
CUSTOM_ID_LIMIT = 100
BUTTON_LABEL_LIMIT = 80
CHOICES_LIMIT = 25
CHOICE_NAME_LIMIT = 100
CHOICE_VALUE_LIMIT = 100
COMMAND_NAME_LIMIT = 32
COMMAND_DESCRIPTION_LIMIT = 100
COMMAND_OPTIONS_LIMIT = 25

# Message flags a bot may set when it sends; EPHEMERAL only through an interaction.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15
CHANNEL_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2
INTERACTION_FLAGS = CHANNEL_FLAGS | FLAG_EPHEMERAL


def check_message(
    body: dict[str, Any],
    file_sizes: Sequence[int],
    *,
    upload_limit: int,
    allowed_flags: int,
    creating: bool,
) -> None:
    """Raise the ApiError Discord answers for a message body (and its uploads) that breaks a limit."""
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        raise errors.invalid_form_body({"content": errors.field_error("STRING_TYPE_CONVERT", "Could not interpret.")})
    if isinstance(content, str) and len(content) > CONTENT_LIMIT:
        raise errors.too_long(["content"], CONTENT_LIMIT)
    embeds = body.get("embeds")
    if embeds is not None:
        check_embeds(embeds)
    components = body.get("components")
    if components is not None:
        check_components(components, v2=bool((body.get("flags") or 0) & FLAG_COMPONENTS_V2))
    if len(file_sizes) > FILES_LIMIT:
        raise errors.too_long(["attachments"], FILES_LIMIT)
    if any(size > upload_limit for size in file_sizes):
        raise errors.too_large()
    flags = body.get("flags") or 0
    if not isinstance(flags, int) or flags & ~allowed_flags:
        raise errors.invalid_form_body({"flags": errors.field_error("MESSAGE_FLAGS_INVALID", "Invalid flags.")})
    if creating and not (content or embeds or components or file_sizes or body.get("sticker_ids") or body.get("poll")):
        raise errors.empty_message()


def check_embeds(embeds: Any) -> None:
    if not isinstance(embeds, list):
        raise errors.invalid_form_body({"embeds": errors.field_error("LIST_TYPE_CONVERT", "Must be an array.")})
    if len(embeds) > EMBEDS_LIMIT:
        raise errors.too_long(["embeds"], EMBEDS_LIMIT)
    total = 0
    for index, embed in enumerate(embeds):
        where = ["embeds", str(index)]
        total += _checked_text(embed, "title", EMBED_TITLE_LIMIT, where)
        total += _checked_text(embed, "description", EMBED_DESCRIPTION_LIMIT, where)
        footer = embed.get("footer") or {}
        total += _checked_text(footer, "text", EMBED_FOOTER_LIMIT, [*where, "footer"])
        author = embed.get("author") or {}
        total += _checked_text(author, "name", EMBED_AUTHOR_LIMIT, [*where, "author"])
        fields = embed.get("fields") or []
        if len(fields) > EMBED_FIELDS_LIMIT:
            raise errors.too_long([*where, "fields"], EMBED_FIELDS_LIMIT)
        for number, field in enumerate(fields):
            place = [*where, "fields", str(number)]
            for key, limit in (("name", EMBED_FIELD_NAME_LIMIT), ("value", EMBED_FIELD_VALUE_LIMIT)):
                text = field.get(key)
                if not isinstance(text, str) or not text:
                    raise _nested_error([*place, key], "BASE_TYPE_REQUIRED", "This field is required")
                total += _checked_text(field, key, limit, place)
    if total > EMBED_TOTAL_LIMIT:
        raise errors.invalid_form_body(
            {"embeds": errors.field_error("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")}
        )


def _checked_text(container: dict[str, Any], key: str, limit: int, where: list[str]) -> int:
    text = container.get(key)
    if text is None:
        return 0
    text = str(text)
    if len(text) > limit:
        raise errors.too_long([*where, key], limit)
    return len(text)


def _nested_error(path: list[str], code: str, message: str) -> errors.ApiError:
    tree: dict[str, Any] = errors.field_error(code, message)
    for part in reversed(path):
        tree = {part: tree}
    return errors.invalid_form_body(tree)


def check_components(components: Any, *, v2: bool) -> None:
    if not isinstance(components, list):
        raise _nested_error(["components"], "LIST_TYPE_CONVERT", "Must be an array.")
    if not v2 and len(components) > ACTION_ROWS_LIMIT:
        raise errors.too_long(["components"], ACTION_ROWS_LIMIT)
    seen: set[str] = set()
    for index, row in enumerate(components):
        where = ["components", str(index)]
        if v2:
            _check_custom_ids(row, where, seen)
            continue
        if row.get("type") != 1:
            raise _nested_error(where, "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "Top-level components must be action rows")
        children = row.get("components") or []
        if len(children) > ROW_COMPONENTS_LIMIT:
            raise errors.too_long([*where, "components"], ROW_COMPONENTS_LIMIT)
        for number, child in enumerate(children):
            place = [*where, "components", str(number)]
            label = child.get("label")
            if isinstance(label, str) and len(label) > BUTTON_LABEL_LIMIT:
                raise errors.too_long([*place, "label"], BUTTON_LABEL_LIMIT)
            _check_custom_ids(child, place, seen)


def _check_custom_ids(component: dict[str, Any], where: list[str], seen: set[str]) -> None:
    custom_id = component.get("custom_id")
    if custom_id is not None:
        if len(custom_id) > CUSTOM_ID_LIMIT:
            raise errors.too_long([*where, "custom_id"], CUSTOM_ID_LIMIT)
        if custom_id in seen:
            raise _nested_error(
                [*where, "custom_id"], "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated"
            )
        seen.add(custom_id)
    for index, child in enumerate(component.get("components") or []):
        _check_custom_ids(child, [*where, "components", str(index)], seen)


def check_choices(choices: Any) -> None:
    """An autocomplete answer: at most 25 choices, names and string values at most 100 characters."""
    if not isinstance(choices, list):
        raise _nested_error(["data", "choices"], "LIST_TYPE_CONVERT", "Must be an array.")
    if len(choices) > CHOICES_LIMIT:
        raise errors.too_long(["data", "choices"], CHOICES_LIMIT)
    for index, choice in enumerate(choices):
        where = ["data", "choices", str(index)]
        name = choice.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= CHOICE_NAME_LIMIT:
            raise errors.too_long([*where, "name"], CHOICE_NAME_LIMIT)
        value = choice.get("value")
        if isinstance(value, str) and len(value) > CHOICE_VALUE_LIMIT:
            raise errors.too_long([*where, "value"], CHOICE_VALUE_LIMIT)


def check_command(command: Any, index: int) -> None:
    """One command of a bulk overwrite: name, description and the number of options and choices."""
    where = [str(index)]
    if not isinstance(command, dict):
        raise _nested_error(where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    name = command.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= COMMAND_NAME_LIMIT:
        raise _nested_error([*where, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    command_type = command.get("type", 1)
    description = command.get("description", "")
    if command_type == 1 and (not isinstance(description, str) or not 1 <= len(description) <= 100):
        raise errors.too_long([*where, "description"], COMMAND_DESCRIPTION_LIMIT)
    _check_options(command.get("options") or [], where)


def _check_options(options: list[dict[str, Any]], where: list[str]) -> None:
    if len(options) > COMMAND_OPTIONS_LIMIT:
        raise errors.too_long([*where, "options"], COMMAND_OPTIONS_LIMIT)
    for index, option in enumerate(options):
        place = [*where, "options", str(index)]
        if len(option.get("choices") or []) > CHOICES_LIMIT:
            raise errors.too_long([*place, "choices"], CHOICES_LIMIT)
        _check_options(option.get("options") or [], place)
