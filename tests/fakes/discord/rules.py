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
# A thread's (or forum post's) name.
THREAD_NAME_LIMIT = 100
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
# Commands per application and scope (global, or one guild) by type: 100 slash commands, 15 user and 15 message
# commands (discord/discord-api-docs developers/interactions/application-commands.mdx, "An app can have the
# following number of commands"). discord.py's CommandTree stops at 5 context menus per type before it sends anything.
COMMANDS_PER_TYPE_LIMIT = {1: 100, 2: 15, 3: 15}

# Components V2 (discord/discord-api-docs developers/components/reference.mdx unless said otherwise).
COMPONENTS_V2_TOTAL_LIMIT = 40  # "Messages allow up to 40 total components" (nested ones count; so does discord.py)
TEXT_DISPLAY_TOTAL_LIMIT = 4000  # discord.py ui/view.py LayoutView.content_length: 4000 across all text displays
GALLERY_ITEMS_MIN, GALLERY_ITEMS_MAX = 1, 10  # Media Gallery: "1 to 10 media gallery items"
SECTION_CHILDREN_MIN, SECTION_CHILDREN_MAX = 1, 3  # Section: "One to three child components"
MEDIA_DESCRIPTION_LIMIT = 1024  # Thumbnail / gallery item: "Alt text for the media, max 1024 characters"
ATTACHMENT_SCHEME = "attachment://"
# Component types (reference.mdx, "Component Types").
ACTION_ROW, BUTTON, STRING_SELECT, TEXT_INPUT = 1, 2, 3, 4
SECTION, TEXT_DISPLAY, THUMBNAIL, MEDIA_GALLERY, FILE, SEPARATOR, CONTAINER, LABEL = 9, 10, 11, 12, 13, 14, 17, 18
SELECT_TYPES = frozenset({STRING_SELECT, 5, 6, 7, 8})
V2_TOP_LEVEL_TYPES = frozenset({ACTION_ROW, SECTION, TEXT_DISPLAY, MEDIA_GALLERY, FILE, SEPARATOR, CONTAINER})
CONTAINER_CHILD_TYPES = frozenset({ACTION_ROW, SECTION, TEXT_DISPLAY, MEDIA_GALLERY, FILE, SEPARATOR})
SECTION_CHILD_TYPES = frozenset({TEXT_DISPLAY})
SECTION_ACCESSORY_TYPES = frozenset({BUTTON, THUMBNAIL})
ROW_CHILD_TYPES = frozenset({BUTTON}) | SELECT_TYPES
# Fields a Components V2 message cannot use ("The content and embeds fields will no longer work", "The poll and
# stickers fields are disabled").
V2_LEGACY_FIELDS = ("content", "embeds", "sticker_ids", "poll")

# Modals (developers/interactions/receiving-and-responding.mdx "Modal", reference.mdx "Text Input" and "Label").
MODAL_TITLE_LIMIT = 45
MODAL_COMPONENTS_MIN, MODAL_COMPONENTS_MAX = 1, 5
MODAL_LABEL_LIMIT = 45  # a Label's `label`, and the deprecated `label` of a text input in an action row
MODAL_LABEL_DESCRIPTION_LIMIT = 100
TEXT_INPUT_VALUE_LIMIT = 4000  # value, min_length (0-4000) and max_length (1-4000)
TEXT_INPUT_PLACEHOLDER_LIMIT = 100
TEXT_INPUT_STYLES = frozenset({1, 2})

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
    components_v2: bool | None = None,
) -> None:
    """Raise the ApiError Discord answers for a message body (and its uploads) that breaks a limit.

    `components_v2`: whether the message is (or becomes) a Components V2 message; None: read the body's flags.
    """
    flags = body.get("flags") or 0
    v2 = bool(isinstance(flags, int) and flags & FLAG_COMPONENTS_V2) if components_v2 is None else components_v2
    if v2:
        for field in V2_LEGACY_FIELDS:
            if body.get(field):
                raise _nested_error(
                    [field],
                    "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                    f"The '{field}' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
                )
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
        check_components(components, v2=v2)
    if len(file_sizes) > FILES_LIMIT:
        raise errors.too_long(["attachments"], FILES_LIMIT)
    if any(size > upload_limit for size in file_sizes):
        raise errors.too_large()
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
    """A message's components: legacy action rows, or (with IS_COMPONENTS_V2) the layout tree."""
    if not isinstance(components, list):
        raise _nested_error(["components"], "LIST_TYPE_CONVERT", "Must be an array.")
    if v2:
        _check_layout(components)
        return
    if len(components) > ACTION_ROWS_LIMIT:
        raise errors.too_long(["components"], ACTION_ROWS_LIMIT)
    seen: set[str] = set()
    for index, row in enumerate(components):
        where = ["components", str(index)]
        if not isinstance(row, dict) or row.get("type") != ACTION_ROW:
            raise _nested_error(where, "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "Top-level components must be action rows")
        _check_action_row(row, where, seen)


class _Tally:
    """What a Components V2 tree adds up to: its components (nested ones included) and its text."""

    def __init__(self) -> None:
        self.components = 0
        self.text = 0
        self.custom_ids: set[str] = set()


def _check_layout(components: list[Any]) -> None:
    tally = _Tally()
    for index, component in enumerate(components):
        _check_v2_component(component, ["components", str(index)], V2_TOP_LEVEL_TYPES, tally)
    if tally.components > COMPONENTS_V2_TOTAL_LIMIT:
        raise _nested_error(
            ["components"],
            "COMPONENT_MAX_TOTAL_COMPONENTS_EXCEEDED",
            f"A message may have at most {COMPONENTS_V2_TOTAL_LIMIT} components in all, nested ones included "
            f"(this one has {tally.components})",
        )
    if tally.text > TEXT_DISPLAY_TOTAL_LIMIT:
        raise _nested_error(
            ["components"],
            "COMPONENT_MAX_TOTAL_TEXT_LENGTH_EXCEEDED",
            f"The text displays of a message may hold at most {TEXT_DISPLAY_TOTAL_LIMIT} characters in all "
            f"(this one has {tally.text})",
        )


def _check_v2_component(component: Any, where: list[str], allowed: frozenset[int], tally: _Tally) -> None:
    if not isinstance(component, dict):
        raise _nested_error(where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    kind = component.get("type")
    if kind not in allowed:
        raise _nested_error(
            [*where, "type"],
            "COMPONENT_TYPE_INVALID",
            f"Component type {kind} is not allowed here (allowed: {', '.join(map(str, sorted(allowed)))})",
        )
    tally.components += 1
    if kind == ACTION_ROW:
        tally.components += _check_action_row(component, where, tally.custom_ids)
    elif kind == BUTTON:
        _check_interactive(component, where, tally.custom_ids)
    elif kind == SECTION:
        children = _children(component, where)
        if not SECTION_CHILDREN_MIN <= len(children) <= SECTION_CHILDREN_MAX:
            raise _nested_error(
                [*where, "components"],
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between {SECTION_CHILDREN_MIN} and {SECTION_CHILDREN_MAX} in length.",
            )
        for index, child in enumerate(children):
            _check_v2_component(child, [*where, "components", str(index)], SECTION_CHILD_TYPES, tally)
        accessory = component.get("accessory")
        if accessory is None:
            raise _nested_error([*where, "accessory"], "BASE_TYPE_REQUIRED", "This field is required")
        _check_v2_component(accessory, [*where, "accessory"], SECTION_ACCESSORY_TYPES, tally)
    elif kind == TEXT_DISPLAY:
        content = component.get("content")
        if not isinstance(content, str) or not content:
            raise _nested_error([*where, "content"], "BASE_TYPE_REQUIRED", "This field is required")
        tally.text += len(content)
    elif kind == THUMBNAIL:
        _check_media(component, "media", where)
        _checked_text(component, "description", MEDIA_DESCRIPTION_LIMIT, where)
    elif kind == MEDIA_GALLERY:
        items = component.get("items")
        if not isinstance(items, list) or not GALLERY_ITEMS_MIN <= len(items) <= GALLERY_ITEMS_MAX:
            raise _nested_error(
                [*where, "items"],
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between {GALLERY_ITEMS_MIN} and {GALLERY_ITEMS_MAX} in length.",
            )
        for index, item in enumerate(items):
            place = [*where, "items", str(index)]
            if not isinstance(item, dict):
                raise _nested_error(place, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            _check_media(item, "media", place)
            _checked_text(item, "description", MEDIA_DESCRIPTION_LIMIT, place)
    elif kind == FILE:
        url = _check_media(component, "file", where)
        if not url.startswith(ATTACHMENT_SCHEME):
            raise _nested_error(
                [*where, "file", "url"],
                "UNFURLED_MEDIA_ITEM_URL_INVALID",
                "A file component only takes attachment://<filename>",
            )
    elif kind == CONTAINER:
        for index, child in enumerate(_children(component, where)):
            _check_v2_component(child, [*where, "components", str(index)], CONTAINER_CHILD_TYPES, tally)


def _children(component: dict[str, Any], where: list[str]) -> list[Any]:
    children = component.get("components")
    if not isinstance(children, list):
        raise _nested_error([*where, "components"], "LIST_TYPE_CONVERT", "Must be an array.")
    return children


def _check_media(component: dict[str, Any], key: str, where: list[str]) -> str:
    media = component.get(key)
    url = media.get("url") if isinstance(media, dict) else None
    if not isinstance(url, str) or not url:
        raise _nested_error([*where, key, "url"], "BASE_TYPE_REQUIRED", "This field is required")
    return url


def _check_action_row(row: dict[str, Any], where: list[str], seen: set[str]) -> int:
    """Up to 5 buttons, or one select; returns how many components the row holds."""
    children = _children(row, where)
    if not children:
        raise _nested_error([*where, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
    if len(children) > ROW_COMPONENTS_LIMIT:
        raise errors.too_long([*where, "components"], ROW_COMPONENTS_LIMIT)
    for number, child in enumerate(children):
        place = [*where, "components", str(number)]
        kind = child.get("type") if isinstance(child, dict) else None
        if kind not in ROW_CHILD_TYPES:
            raise _nested_error(
                [*place, "type"],
                "COMPONENT_TYPE_INVALID",
                "An action row holds buttons (type 2) or one select (types 3, 5-8)",
            )
        if kind in SELECT_TYPES and len(children) > 1:
            raise _nested_error(
                [*where, "components"],
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "An action row holds up to 5 buttons or a single select, not both",
            )
        _check_interactive(child, place, seen)
    return len(children)


def _check_interactive(component: dict[str, Any], where: list[str], seen: set[str]) -> None:
    label = component.get("label")
    if component.get("type") == BUTTON and isinstance(label, str) and len(label) > BUTTON_LABEL_LIMIT:
        raise errors.too_long([*where, "label"], BUTTON_LABEL_LIMIT)
    _check_custom_id(component, where, seen)


def _check_custom_id(component: dict[str, Any], where: list[str], seen: set[str]) -> None:
    custom_id = component.get("custom_id")
    if custom_id is None:
        return
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= CUSTOM_ID_LIMIT:
        raise errors.too_long([*where, "custom_id"], CUSTOM_ID_LIMIT)
    if custom_id in seen:
        raise _nested_error(
            [*where, "custom_id"], "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated"
        )
    seen.add(custom_id)


def media_references(components: list[dict[str, Any]]) -> list[tuple[list[str], dict[str, Any]]]:
    """Every unfurled media item of a Components V2 tree, with its path (e.g. components.0.items.1.media)."""
    found: list[tuple[list[str], dict[str, Any]]] = []

    def walk(component: Any, where: list[str]) -> None:
        if not isinstance(component, dict):
            return
        for key in ("media", "file"):
            media = component.get(key)
            if isinstance(media, dict):
                found.append(([*where, key], media))
        for index, item in enumerate(component.get("items") or []):
            walk(item, [*where, "items", str(index)])
        for index, child in enumerate(component.get("components") or []):
            walk(child, [*where, "components", str(index)])
        if isinstance(component.get("accessory"), dict):
            walk(component["accessory"], [*where, "accessory"])

    for index, component in enumerate(components):
        walk(component, ["components", str(index)])
    return found


def check_attachment_references(components: list[dict[str, Any]], filenames: set[str]) -> None:
    """Every `attachment://name` a gallery, thumbnail or file component names must be one of the message's files."""
    for where, media in media_references(components):
        url = media.get("url")
        if isinstance(url, str) and url.startswith(ATTACHMENT_SCHEME):
            name = url.removeprefix(ATTACHMENT_SCHEME)
            if name not in filenames:
                raise _nested_error(
                    [*where, "url"],
                    "UNFURLED_MEDIA_ITEM_ATTACHMENT_NOT_FOUND",
                    f"attachment://{name} is not one of the message's attachments "
                    f"({', '.join(sorted(filenames)) or 'it has none'})",
                )


def check_modal(data: Any) -> None:
    """A MODAL callback's data: custom_id, title (45), 1-5 components, and each text input's limits."""
    if not isinstance(data, dict):
        raise _nested_error(["data"], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= CUSTOM_ID_LIMIT:
        raise errors.too_long(["data", "custom_id"], CUSTOM_ID_LIMIT)
    title = data.get("title")
    if not isinstance(title, str) or not title:
        raise _nested_error(["data", "title"], "BASE_TYPE_REQUIRED", "This field is required")
    if len(title) > MODAL_TITLE_LIMIT:
        raise errors.too_long(["data", "title"], MODAL_TITLE_LIMIT)
    components = data.get("components")
    if not isinstance(components, list) or not MODAL_COMPONENTS_MIN <= len(components) <= MODAL_COMPONENTS_MAX:
        raise _nested_error(
            ["data", "components"],
            "BASE_TYPE_BAD_LENGTH",
            f"Must be between {MODAL_COMPONENTS_MIN} and {MODAL_COMPONENTS_MAX} in length.",
        )
    seen: set[str] = set()
    for index, component in enumerate(components):
        where = ["data", "components", str(index)]
        kind = component.get("type") if isinstance(component, dict) else None
        if kind == LABEL:
            label = component.get("label")
            if not isinstance(label, str) or not label:
                raise _nested_error([*where, "label"], "BASE_TYPE_REQUIRED", "This field is required")
            _checked_text(component, "label", MODAL_LABEL_LIMIT, where)
            _checked_text(component, "description", MODAL_LABEL_DESCRIPTION_LIMIT, where)
            inner = component.get("component")
            if not isinstance(inner, dict):
                raise _nested_error([*where, "component"], "BASE_TYPE_REQUIRED", "This field is required")
            _check_modal_input(inner, [*where, "component"], seen, needs_label=False)
        elif kind == ACTION_ROW:
            # The older form (deprecated, still accepted): one text input in a row, with its own label.
            children = component.get("components")
            if not isinstance(children, list) or len(children) != 1:
                raise _nested_error(
                    [*where, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 1 in length."
                )
            _check_modal_input(children[0], [*where, "components", "0"], seen, needs_label=True)
        elif kind == TEXT_DISPLAY:
            if not isinstance(component.get("content"), str) or not component["content"]:
                raise _nested_error([*where, "content"], "BASE_TYPE_REQUIRED", "This field is required")
        else:
            raise _nested_error(
                [*where, "type"],
                "COMPONENT_TYPE_INVALID",
                f"Component type {kind} is not allowed in a modal (allowed: 1, 10, 18)",
            )


def _check_modal_input(component: Any, where: list[str], seen: set[str], *, needs_label: bool) -> None:
    kind = component.get("type") if isinstance(component, dict) else None
    if kind in SELECT_TYPES:
        _check_custom_id(component, where, seen)
        return
    if kind != TEXT_INPUT:
        raise _nested_error(
            [*where, "type"], "COMPONENT_TYPE_INVALID", f"Component type {kind} is not a modal input (4, 3, 5-8)"
        )
    if component.get("custom_id") is None:
        raise _nested_error([*where, "custom_id"], "BASE_TYPE_REQUIRED", "This field is required")
    _check_custom_id(component, where, seen)
    if component.get("style") not in TEXT_INPUT_STYLES:
        raise _nested_error([*where, "style"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2}.")
    if needs_label and not component.get("label"):
        raise _nested_error([*where, "label"], "BASE_TYPE_REQUIRED", "This field is required")
    _checked_text(component, "label", MODAL_LABEL_LIMIT, where)
    _checked_text(component, "value", TEXT_INPUT_VALUE_LIMIT, where)
    _checked_text(component, "placeholder", TEXT_INPUT_PLACEHOLDER_LIMIT, where)
    low, high = component.get("min_length"), component.get("max_length")
    if low is not None and not (isinstance(low, int) and 0 <= low <= TEXT_INPUT_VALUE_LIMIT):
        raise _nested_error(
            [*where, "min_length"], "NUMBER_TYPE_MAX", f"int value should be between 0 and {TEXT_INPUT_VALUE_LIMIT}."
        )
    if high is not None and not (isinstance(high, int) and 1 <= high <= TEXT_INPUT_VALUE_LIMIT):
        raise _nested_error(
            [*where, "max_length"], "NUMBER_TYPE_MAX", f"int value should be between 1 and {TEXT_INPUT_VALUE_LIMIT}."
        )
    if low is not None and high is not None and low > high:
        raise _nested_error(
            [*where, "min_length"], "TEXT_INPUT_MIN_LENGTH_INVALID", "min_length must not exceed max_length"
        )


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
    check_localizations(command, where)


def _check_options(options: list[dict[str, Any]], where: list[str]) -> None:
    if len(options) > COMMAND_OPTIONS_LIMIT:
        raise errors.too_long([*where, "options"], COMMAND_OPTIONS_LIMIT)
    for index, option in enumerate(options):
        place = [*where, "options", str(index)]
        if len(option.get("choices") or []) > CHOICES_LIMIT:
            raise errors.too_long([*place, "choices"], CHOICES_LIMIT)
        _check_options(option.get("options") or [], place)


# Discord's locales (discord-api-docs reference.md, "Locales"): a localization under any other key is refused.
DISCORD_LOCALES = frozenset(
    [
        "id",
        "da",
        "de",
        "en-GB",
        "en-US",
        "es-ES",
        "es-419",
        "fr",
        "hr",
        "it",
        "lt",
        "hu",
        "nl",
        "no",
        "pl",
        "pt-BR",
        "ro",
        "fi",
        "sv-SE",
        "vi",
        "tr",
        "cs",
        "el",
        "bg",
        "ru",
        "uk",
        "hi",
        "th",
        "zh-CN",
        "ja",
        "zh-TW",
        "ko",
    ]
)


def check_localizations(command: dict[str, Any], where: list[str]) -> None:
    """The localized names and descriptions of a command, its options and their choices: known locales, and each
    within the limit of what it localizes (a name 32, a description 100, a choice's name 100)."""
    _check_localized(command, where, "name_localizations", COMMAND_NAME_LIMIT)
    _check_localized(command, where, "description_localizations", COMMAND_DESCRIPTION_LIMIT)
    for index, option in enumerate(command.get("options") or []):
        if not isinstance(option, dict):
            continue
        place = [*where, "options", str(index)]
        for number, choice in enumerate(option.get("choices") or []):
            if isinstance(choice, dict):
                _check_localized(choice, [*place, "choices", str(number)], "name_localizations", CHOICE_NAME_LIMIT)
        check_localizations(option, place)


def _check_localized(item: dict[str, Any], where: list[str], key: str, limit: int) -> None:
    localized = item.get(key)
    if localized is None:
        return
    if not isinstance(localized, dict):
        raise _nested_error([*where, key], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    for locale, text in localized.items():
        if locale not in DISCORD_LOCALES:
            raise _nested_error([*where, key, str(locale)], "LOCALE_INVALID", f"Invalid locale {locale!r}")
        if not isinstance(text, str) or not 1 <= len(text) <= limit:
            raise errors.too_long([*where, key, str(locale)], limit)


def check_command_counts(commands: list[Any]) -> None:
    """A bulk overwrite may hold at most 100 slash commands, 15 user commands and 15 message commands."""
    counts: dict[int, int] = {}
    for command in commands:
        kind = int(command.get("type", 1)) if isinstance(command, dict) else 1
        counts[kind] = counts.get(kind, 0) + 1
    for kind, count in sorted(counts.items()):
        limit = COMMANDS_PER_TYPE_LIMIT.get(kind)
        if limit is not None and count > limit:
            raise errors.invalid_form_body(
                errors.field_error(
                    "APPLICATION_COMMANDS_TOO_MANY",
                    f"At most {limit} commands of type {kind} per application and scope ({count} sent)",
                )
            )
