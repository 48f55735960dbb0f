"""The message catalogs: every text translated in every shipped language, placeholders and plural forms kept, the
template up to date with the code, and no text over Discord's limits in any language (discord.md, "Limits"; the
component limits from discord-api-docs' components reference)."""

from __future__ import annotations

import re
import string
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from discord import app_commands
from discord.ext import commands

from cogs import delivery, history, imagine, moderation, settings, usage
from cogs.i18n import DISCORD_LOCALES, LOCALE_DIR, SHIPPED, catalog_locale, render, speaking, tr
from cogs.jobs_ui import BUTTONS
from jobs.presets import Range
from jobs.prices import format_money
from jobs.source_image import ALLOWED_FORMATS, IS_NOT
from jobs.text import plural_of
from jobs.waiting import ALL_WORKERS_ARE_BUSY_JOB

REPO = Path(__file__).resolve().parents[3]
KEYWORDS = {
    "tr": None,
    "trn": (1, 2),
    "T": None,
    "Tn": (1, 2),
    "N_": None,
    "stored": None,
    "stored_n": (1, 2),
    "stored_ending": None,
    "locale_str": None,
}
# Discord's limits (discord.md, "Limits"; discord-api-docs components reference): a command's or an option's
# description and a choice's name 100, a button's label 80, a modal's title and a text input's label 45, a text
# input's placeholder 100, an embed's title and a field's name 256, a message's content 2000.
DESCRIPTION_LIMIT = 100
BUTTON_LABEL_LIMIT = 80
MODAL_TITLE_LIMIT = 45
INPUT_LABEL_LIMIT = 45
PLACEHOLDER_LIMIT = 100
EMBED_TITLE_LIMIT = 256
CONTENT_LIMIT = 2000
MODAL_TITLES = ("Remix", "Vary this image")
INPUT_LABELS = ("Prompt", "Negative prompt")
# The longest realistic value of each placeholder (a job id is 32 hex digits, a prompt is shown cut to 1000, a
# model's name is at most 100 in a choice…); any other placeholder: 60 characters.
LONGEST: dict[str, int] = {
    "prompt": 1000,
    "jid": 32,
    "link": 100,
    "where": 100,
    "name": 100,
    "model": 100,
    "models": 300,
    "value": 300,
    "allowed": 400,
    "problem": 300,
    "reason": 600,
    "detail": 200,
    "term": 100,
    "member": 32,
    "server": 100,
    "permissions": 120,
    "what": 200,
    "error": 400,
    "own": 400,
    "index": 2,
    "last": 2,
    "n": 6,
    "count": 6,
}
DEFAULT_LONGEST = 60


@cache
def catalog(locale: str) -> Catalog:
    path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        return read_po(po, locale=locale)


@cache
def template() -> Catalog:
    with (LOCALE_DIR / "messages.pot").open("rb") as pot:
        return read_po(pot)


def texts(found: Catalog) -> Iterator[Message]:
    return (message for message in found if message.id)


def key(message: Message) -> str:
    return message.id if isinstance(message.id, str) else message.id[0]


def forms(message: Message) -> list[str]:
    return [message.string] if isinstance(message.string, str) else list(message.string or ())


def translated(message: Message) -> bool:
    return "fuzzy" not in message.flags and bool(forms(message)) and all(forms(message))


def placeholders(text: str) -> set[str]:
    return {name for _text, name, _spec, _conversion in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize("locale", SHIPPED)
def test_every_text_has_a_translation(locale: str) -> None:
    """Each text of the template is translated (not fuzzy, every plural form) in the language's catalog."""
    translations = {key(message): message for message in texts(catalog(locale))}
    missing = [
        key(message)
        for message in texts(template())
        if key(message) not in translations or not translated(translations[key(message)])
    ]
    assert missing == [], f"{len(missing)} texts untranslated in {locale}"


@pytest.mark.parametrize("locale", SHIPPED)
def test_translations_keep_every_placeholder(locale: str) -> None:
    """A translation names exactly the placeholders of its English text (a singular form may leave out `{n}`)."""
    wrong = []
    for message in texts(catalog(locale)):
        if not translated(message):
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        wanted = set().union(*(placeholders(text) for text in ids))
        for form in forms(message):
            found = placeholders(form)
            if found != wanted and not (isinstance(message.id, tuple) and found == wanted - {"n"}):
                wrong.append((key(message), sorted(found), sorted(wanted)))
    assert wrong == []


@pytest.mark.parametrize("locale", SHIPPED)
def test_plural_texts_have_every_form_of_the_language(locale: str) -> None:
    """A text with a plural has as many forms as the language has (Japanese one, German two…)."""
    found = catalog(locale)
    wrong = [
        (key(message), len(forms(message)))
        for message in texts(found)
        if isinstance(message.id, tuple) and any(forms(message)) and len(forms(message)) != found.num_plurals
    ]
    assert wrong == []


def test_the_template_holds_every_text_of_the_code() -> None:
    """`messages.pot` is what the code's texts are now (after a change: `make catalog`)."""
    extracted: set[str] = set()
    for directory in ("cogs", "jobs"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            REPO / directory, [("**.py", "python")], keywords=KEYWORDS, comment_tags=()
        ):
            extracted.add(message if isinstance(message, str) else message[0])
    assert extracted == {key(message) for message in texts(template())}


def _descriptions() -> Iterator[str]:
    """Every description and choice name of the commands the cogs define."""
    cogs: list[type[commands.Cog]] = [
        imagine.Imagine,
        moderation.Moderation,
        history.History,
        settings.ServerSettingsCog,
        usage.Usage,
    ]

    def walk(command: Any) -> Iterator[str]:
        yield str(command.description)
        if isinstance(command, app_commands.Group):
            for child in command.commands:
                yield from walk(child)
            return
        for parameter in command.parameters:
            yield str(parameter.description)
            for choice in parameter.choices:
                yield str(choice.name)

    for cog in cogs:
        for command in cog.__cog_app_commands__:
            if command.parent is None:
                yield from walk(command)


def _source_texts(pattern: str) -> set[str]:
    """The msgids the cogs pass as `<field>=tr("…")` (field names, embed titles, labels, placeholders)."""
    found: set[str] = set()
    for path in (REPO / "cogs").glob("*.py"):
        found |= set(re.findall(pattern, path.read_text()))
    return found


def _filled(text: str) -> str:
    """The text with each placeholder filled with its longest realistic value."""
    values = {name: "x" * LONGEST.get(name, DEFAULT_LONGEST) for name in placeholders(text)}
    plain = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", text)
    return plain.format(**values)


def _limited() -> dict[str, int]:
    """Each text with a known limit, and that limit (the strictest when a text is used in several places)."""
    limits: dict[str, int] = {}

    def at_most(text: str, limit: int) -> None:
        limits[text] = min(limit, limits.get(text, limit))

    for text in _descriptions():
        at_most(text, DESCRIPTION_LIMIT)
    for label, _style, _emoji in BUTTONS.values():
        at_most(label, BUTTON_LABEL_LIMIT)
    at_most("Refresh", BUTTON_LABEL_LIMIT)
    for title in MODAL_TITLES:
        at_most(title, MODAL_TITLE_LIMIT)
    for text in _source_texts(r'\bname=tr\("([^"]+)"\)'):
        at_most(text, EMBED_TITLE_LIMIT)
    for text in _source_texts(r'\btitle=tr\("([^"]+)"'):
        at_most(text, EMBED_TITLE_LIMIT)
    for label in INPUT_LABELS:
        at_most(label, INPUT_LABEL_LIMIT)
    for text in _source_texts(r'\bplaceholder=tr\("([^"]+)"'):
        at_most(text, PLACEHOLDER_LIMIT)
    return limits


@pytest.mark.parametrize("locale", ["en", *SHIPPED])
def test_no_text_overflows_discords_limits(locale: str) -> None:
    """The longest form of each text, filled with the longest realistic values, fits where Discord shows it; any
    other text fits in a message's content."""
    limits = _limited()
    assert "Generate images from a prompt" in limits  # the walk found the commands
    over = []
    for message in texts(template()):
        english = [message.id] if isinstance(message.id, str) else list(message.id)
        found = catalog(locale).get(message.id) if locale != "en" else None
        shown = [form for form in forms(found) if form] if found is not None else []
        limit = limits.get(key(message), CONTENT_LIMIT)
        for text in shown or english:
            length = len(_filled(text))
            if length > limit:
                over.append((key(message), length, limit))
    assert over == []


def test_discord_locales_map_to_shipped_catalogs_and_others_to_english() -> None:
    """`es-ES` and `es-419` read Spanish, `pt-BR` Brazilian Portuguese; an unknown locale reads English."""
    assert set(DISCORD_LOCALES.values()) == set(SHIPPED)
    assert (catalog_locale("es-419"), catalog_locale("es-ES"), catalog_locale("pt-BR")) == ("es", "es", "pt_BR")
    assert (catalog_locale("en-GB"), catalog_locale("ko"), catalog_locale(None)) == ("en", "en", "en")


def test_a_kept_english_reason_is_shown_in_german_with_its_numbers() -> None:
    """A job's reason kept as English in its record (an older one too) is recognised and translated with its values."""
    kept = (
        "RunPod could not be reached to check on this job for 12 minutes, so its images are lost."
        " A server admin needs to fix the bot's RunPod API key."
    )
    assert render(kept, "de") == (
        "RunPod war 12 Minuten lang nicht erreichbar, um diesen Auftrag zu prüfen, daher sind seine Bilder verloren."
        " Ein Server-Admin muss den RunPod-API-Schlüssel des Bots korrigieren."
    )


def test_words_of_no_template_are_shown_as_they_are() -> None:
    """A worker's own error text is not a template of the core: it is shown unchanged in every language."""
    assert render("CUDA out of memory of device 0", "de") == "CUDA out of memory of device 0"


def test_numbers_are_written_the_languages_way() -> None:
    """German writes a decimal comma; English keeps the text exactly as written."""
    with speaking("de"):
        assert tr("{seconds:.1f} s", seconds=1234.5) == "1.234,5 s"
    with speaking("en"):
        assert tr("{seconds:.1f} s", seconds=1234.5) == "1234.5 s"


def test_a_settings_change_kept_in_the_log_is_shown_in_german() -> None:
    """A log entry written by another process (its code never ran here) is recognised and shown in German."""
    assert render("NSFW term “kitten” removed", "de") == "NSFW-Begriff „kitten“ entfernt"


def test_a_text_built_to_split_many_ways_is_rendered_at_once() -> None:
    """A 6000-character size value repeating a usage template's words renders in well under a second (it took minutes
    when templates were lazy regular expressions; the event loop would have stood still for all that time)."""
    crafted = "a: " + "b of c used, d left; " * 280 + "x."
    started = time.perf_counter()
    shown = render(f"{crafted} is not offered by SDXL", "de")
    assert time.perf_counter() - started < 1.0
    assert shown.endswith(" wird von SDXL nicht angeboten")


def test_a_workers_sentence_that_fits_a_short_template_is_shown_as_it_is() -> None:
    """A worker's "Input image can't be empty" is not the settings' "{what} can't be {value}": no half-German."""
    assert render("Input image can't be empty", "de") == "Input image can't be empty"
    assert render("Image can't be empty", "de") == "Image can't be empty"


def test_a_short_template_with_a_known_setting_is_still_translated() -> None:
    """The settings' own "Active jobs per member can't be 0" is translated, its setting's name too."""
    assert render("Active jobs per member can't be 0", "de") == "Aktive Aufträge pro Mitglied kann nicht 0 sein"
    assert render("Active jobs per member can't be -1", "de") == "Aktive Aufträge pro Mitglied kann nicht -1 sein"


def test_a_usage_reset_date_and_wait_are_written_the_languages_way() -> None:
    """A budget's reset day kept as "31 December" reads "31. Dezember" in German, and its wait in hours as well."""
    assert render("resets on 31 December at 00:00 UTC (in 2 d 3 h)", "de") == (
        "wird am 31. Dezember um 00:00 UTC zurückgesetzt (in 2 d 3 h)"
    )
    assert render("resets on 31 December at 00:00 UTC (in 2 d 3 h)", "ja").startswith("12月31日")


def test_a_decimal_number_in_a_kept_text_gets_the_languages_decimal_sign() -> None:
    """A guidance of 7.5 refused reads "7,5" in German; a whole number stays as written."""
    assert render("7.5 is out of range", "de") == "7,5 liegt außerhalb des Bereichs"
    assert render("1024 is out of range", "de") == "1024 liegt außerhalb des Bereichs"


def test_an_allowed_range_is_named_in_the_members_language() -> None:
    """What a refusal allows, for a range with open ends, is German words, not English."""
    assert render(Range(0, 20, low_open=True, high_open=True).describe(), "de") == "mehr als 0 und weniger als 20"
    assert render(Range(2, None).describe(), "fr") == "au moins 2"


def test_money_is_written_the_languages_way_with_the_operators_currency() -> None:
    """An amount reads "1.234,50 USD" in German and "0,0031 USD" below one unit; English as before."""
    assert render(format_money(1_234_500_000, "USD"), "de") == "1.234,50 USD"
    assert render(format_money(3_100, "USD"), "de") == "0,0031 USD"
    assert render(format_money(1_234_500_000, "USD"), "en") == "1,234.50 USD"


def test_the_jobs_ahead_in_the_queue_take_the_languages_plural() -> None:
    """One job ahead is "1 Auftrag", three are "3 Aufträge"."""
    one, three = (plural_of(ALL_WORKERS_ARE_BUSY_JOB, ahead, running=2) for ahead in (1, 3))
    assert render(one, "de") == "alle 2 Worker sind beschäftigt; 1 Auftrag davor in der Warteschlange"
    assert render(three, "de") == "alle 2 Worker sind beschäftigt; 3 Aufträge davor in der Warteschlange"


def test_several_settings_changes_kept_in_the_log_are_each_translated() -> None:
    """A /settings limits change of two settings, kept as one English line, reads in German change by change."""
    kept = "limits: cooldown 5 s → 10 s; active jobs per member 2 → 3"
    assert render(kept, "de") == "Grenzen: Wartezeit 5 s → 10 s; aktive Aufträge pro Mitglied 2 → 3"


def test_what_discord_said_keeps_its_words_and_translates_ours() -> None:
    """A refused result's reason keeps Discord's own words and translates the bot's ("no reason given")."""
    refused = delivery.REFUSED.format(
        said=delivery.SAID_WITH_CODE.format(detail="Missing Permissions", status=403, code=50013)
    )
    not_taken = delivery.NOT_TAKEN.format(said=delivery.SAID.format(detail="no reason given", status=503))
    assert render(refused, "de") == (
        "Discord hat das Posten der Bilder abgelehnt: Missing Permissions (HTTP 403, Fehler 50013)"
    )
    assert render(not_taken, "de") == "Discord hat die Bilder nicht angenommen: kein Grund angegeben (HTTP 503)"


def test_a_superscript_digit_where_a_count_stands_is_shown_without_a_crash() -> None:
    """A moderator's term "² seconds" in the settings log is not taken for a count of seconds."""
    assert render("NSFW term “² seconds” added", "de") == "NSFW-Begriff „² seconds“ hinzugefügt"


def test_a_decimal_typed_by_a_member_is_kept_as_written() -> None:
    """A term "1.5" is the moderator's, not a number; a bound of 0.1234 keeps all its digits."""
    assert render("NSFW term “1.5” removed", "de") == "NSFW-Begriff „1.5“ entfernt"
    assert render("at least 0.1234", "fr") == "au moins 0,1234"


def test_the_image_formats_a_refusal_allows_are_translated() -> None:
    """A source image of the wrong format is refused in German, formats and all."""
    refusal = IS_NOT.format(ALLOWED_FORMATS=ALLOWED_FORMATS)
    assert render(refusal, "de") == "ist kein PNG-, JPEG-, WebP- oder GIF-Bild"
