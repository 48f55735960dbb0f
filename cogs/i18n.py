"""The member's language: the message catalogs (gettext `.po`, read with Babel), the locale a text is rendered in,
and the translator of the commands' descriptions (`app_commands.Translator`).

Which locale: an ephemeral reply speaks the member's (`interaction.locale`); a public message (a card, a result)
the server's as it was when the job started (`guild_locale`, recorded on the job so any process delivering it
after any restart agrees); a job sent by direct message the member's, recorded likewise. The text is chosen by
`tr`/`trn` in the locale of the current task (`speaking`, `use_member_locale`), so the cogs keep their code shape.

The catalogs are compiled in memory when first used (`read_po` then `write_mo`): nothing generated to build or to
forget, and a fresh clone runs as it is. English is the source language: its texts are the msgids, rendered exactly
as written; the other locales format numbers, dates and durations through Babel for their language.
"""

from __future__ import annotations

import contextlib
import gettext
import io
import re
import string
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import discord
from babel.dates import format_datetime, format_skeleton, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from discord import app_commands

from jobs.text import STORED, STORED_ENDINGS, Text

LOCALE_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"
SOURCE_LOCALE = "en"
# Discord's locale codes (discord.com/developers/docs/reference#locales) → the catalog that speaks them. Any other
# locale (English of either side, or one not shipped) falls back to English.
DISCORD_LOCALES: Mapping[str, str] = {
    "de": "de",
    "es-ES": "es",
    "es-419": "es",
    "pt-BR": "pt_BR",
    "fr": "fr",
    "ja": "ja",
}
SHIPPED = tuple(sorted(set(DISCORD_LOCALES.values())))
# What a job's record keeps (`extra`): the locale of its public messages and of its member.
GUILD_LOCALE_FIELD = "guild_locale"
MEMBER_LOCALE_FIELD = "locale"

_current: ContextVar[str] = ContextVar("locale", default=SOURCE_LOCALE)


def catalog_locale(locale: discord.Locale | str | None) -> str:
    """The catalog for a Discord locale (`de`, `pt-BR`, `es-419`…); English for any other."""
    if locale is None:
        return SOURCE_LOCALE
    value = locale.value if isinstance(locale, discord.Locale) else str(locale)
    return DISCORD_LOCALES.get(value, SOURCE_LOCALE)


@cache
def translations(locale: str) -> gettext.NullTranslations:
    """The locale's catalog compiled in memory (fuzzy entries are left out, as `msgfmt` does); English: the msgids."""
    path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if locale == SOURCE_LOCALE or not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def load_catalogs() -> None:
    """Compile every shipped catalog now (tens of milliseconds each), and load Babel's data for its language (the
    first number written the German way reads 30 ms of it from disk): run it in a thread at start, so the first
    message in a language does not hold the event loop."""
    for locale in SHIPPED:
        translations(locale)
        format_decimal(0.5, locale=locale)
        format_skeleton("dMMMM", datetime(2000, 1, 1, tzinfo=UTC), locale=locale)


def current_locale() -> str:
    return _current.get()


def use_locale(locale: discord.Locale | str | None) -> None:
    """From here on, this task speaks `locale` (a Discord locale code or a catalog's)."""
    _current.set(locale if isinstance(locale, str) and locale in SHIPPED else catalog_locale(locale))


def use_member_locale(interaction: discord.Interaction[Any]) -> None:
    """The rest of this interaction's task answers the member in their language (ephemeral replies)."""
    use_locale(interaction.locale)


@contextlib.contextmanager
def speaking(locale: str) -> Iterator[None]:
    """Render what the block renders in `locale` (a catalog's code)."""
    token = _current.set(locale)
    try:
        yield
    finally:
        _current.reset(token)


def public_locale(extra: Mapping[str, Any]) -> str:
    """A job's public messages: its server's locale as it was at submit; by direct message (a private job, or one
    of no server), its member's."""
    private = bool(extra.get("private"))
    field = MEMBER_LOCALE_FIELD if private or not extra.get(GUILD_LOCALE_FIELD) else GUILD_LOCALE_FIELD
    value = extra.get(field)
    return value if isinstance(value, str) and value in SHIPPED else SOURCE_LOCALE


def locales_of(interaction: discord.Interaction[Any], by_dm: bool = False) -> dict[str, str]:
    """What a job records of the interaction that started it: its member's catalog, and its server's unless
    everything the job shows goes to the member alone (`by_dm`: an ephemeral card, images by direct message)."""
    recorded = {MEMBER_LOCALE_FIELD: catalog_locale(interaction.locale)}
    if interaction.guild_locale is not None and not by_dm:
        recorded[GUILD_LOCALE_FIELD] = catalog_locale(interaction.guild_locale)
    return recorded


_PRECISION = re.compile(r"\.(\d+)[fF%]?$")


class LocalNumber:
    """A number that formats itself for a locale, honouring the precision of the msgid's format spec (`{x:.1f}`)."""

    def __init__(self, value: float | Decimal, locale: str) -> None:
        self.value = value
        self.locale = locale

    def __format__(self, spec: str) -> str:
        match = _PRECISION.search(spec)
        if match is None or not Decimal(self.value).is_finite():
            return format_decimal(self.value, locale=self.locale)
        digits = int(match[1])
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        rounded = round(Decimal(self.value), digits)
        return format_decimal(rounded, format=pattern, locale=self.locale)

    def __str__(self) -> str:
        return format(self, "")


class _Plain(str):
    """A value already in words (found in a kept text, or rendered): shown as it is whatever the format spec."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return str(self)


def _localized(value: Any, locale: str) -> Any:
    if isinstance(value, bool) or locale == SOURCE_LOCALE:
        return value
    if isinstance(value, str):
        return _Plain(value)
    if isinstance(value, int | float | Decimal):
        return LocalNumber(value, locale)
    if isinstance(value, datetime):
        return format_datetime(value, format="medium", locale=locale)
    if isinstance(value, timedelta):
        return format_timedelta(value, locale=locale)
    if isinstance(value, Text):
        return render(value, locale)
    return value


def fill(template: str, params: Mapping[str, Any], locale: str) -> str:
    """The template's `{name}` placeholders filled, numbers and dates written the locale's way."""
    if not params:
        return template
    return template.format(**{name: _localized(value, locale) for name, value in params.items()})


def tr(msgid: str, /, **params: Any) -> str:
    """`msgid` (English, `{name}` placeholders) in the current locale, filled with `params`."""
    locale = _current.get()
    return fill(translations(locale).gettext(msgid), params, locale)


def trn(singular: str, plural: str, n: int, /, **params: Any) -> str:
    """The plural form for `n` in the current locale (`{n}` is the count), filled with `params`."""
    locale = _current.get()
    return fill(translations(locale).ngettext(singular, plural, n), {"n": n, **params}, locale)


def render(text: Text | str, locale: str | None = None) -> str:
    """A core's text in `locale` (default: the current one): a `Text`, or English the core wrote as a string (a
    constant marked with `N_`, or a kept text the core's templates recognise, `jobs.text.stored`); any other string
    (RunPod's or a worker's own words) is shown as it is."""
    locale = locale or _current.get()
    if isinstance(text, str):
        return _render_kept(text, locale, 0)
    catalog = translations(locale)
    if text.plural is not None and text.n is not None:
        return fill(catalog.ngettext(text.msgid, text.plural, text.n), text.params, locale)
    return fill(catalog.gettext(text.msgid), text.params, locale)


# How deep a kept text's values are recognised in turn ("{what} {late} after…": `what` and `late` are kept texts).
_KEPT_DEPTH = 3
_FORMATTER = string.Formatter()


# A duration as the core writes it (`jobs.reasons.duration`): the values of these placeholders are tried as durations
# first, so "{what} {late} after its time limit" splits "RunPod still reported … as running 3 minutes" right.
_DURATION = re.compile(r"\d+ (?:second|minute|hour|day)s?")
_DIGITS = re.compile(r"\d+")
_DURATION_NAMES = frozenset({"late", "lasted", "duration", "limit"})
# The format specs of a number (`{guidance:g}`, `{size:.1f}`), and of a day as a kept text writes it
# (`{ends:%-d %B}`, "31 December", `jobs.usage`): their values are written the reader's way.
_NUMBER_SPECS = frozenset("gGfFeE%d")
_DATE_SPEC = "%-d %B"
# Recognising a text tries the ways its templates' placeholders could split it, and a text a member typed (a size
# value, a prompt quoted in a refusal) can be built to make those ways many. Each way tried costs a step, and a text
# whose recognition would take more steps than this is shown as it is: the cost is bounded whatever the text (tens
# of milliseconds at worst for a crafted 6000-character text on a slow core), while a real kept text takes at most
# about 6000, most of them `_RENDER_COST`s of the values it nests.
_RECOGNITION_STEPS = 20_000
# What one recognition of a text (or of one of its values) costs before any split is tried: a look at each template.
_RENDER_COST = 50
# A template with this little of its own text ("{what} can't be {value}") would also fit a worker's or RunPod's own
# sentence ("Input image can't be empty", "Image can't be empty"); its free-text values must then be words the
# catalogs know (a setting's name) or quantities, or the sentence is not this template's and is shown as it is.
_SHORT_TEMPLATE = 16
# What a short template's value may be without being a known text: a quantity ("0", "-1", "8 MB").
_QUANTITY = re.compile(r"[-−]?\d")


class _OutOfSteps(Exception):
    """The text's recognition took more than `_RECOGNITION_STEPS`."""


class _Steps:
    """What is left of one text's recognition budget (shared with its values' recognition)."""

    def __init__(self) -> None:
        self.left = _RECOGNITION_STEPS

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise _OutOfSteps


@dataclass(frozen=True)
class _Template:
    """A kept text's template as the words before its first placeholder and each placeholder with the words after."""

    head: str
    # (name, kind, the words after it); kind: "count" (digits), "duration" (tried as a duration first), "same" (a
    # placeholder seen before: the same value), "number" and "date" (a number's or a day's format spec:
    # `{guidance:g}`; matched as any text), "text" (anything but nothing).
    slots: tuple[tuple[str, str, str], ...]
    literal: int
    entry: str | tuple[str, str]

    @property
    def short(self) -> bool:
        return self.literal < _SHORT_TEMPLATE


def _kept_templates() -> list[_Template]:
    """The templates registered so far (a module imported later adds its own)."""
    return _templates_of(len(STORED))


@cache
def _templates_of(_registered: int) -> list[_Template]:
    """Each form of every kept text's template, the most specific first."""
    templates: list[_Template] = []
    for entry in STORED:
        for form in (entry,) if isinstance(entry, str) else entry:
            parsed = list(_FORMATTER.parse(form))
            head, slots, seen = parsed[0][0], [], set()
            for index, (_text, name, spec, _conversion) in enumerate(parsed):
                if name is None:
                    continue
                after = parsed[index + 1][0] if index + 1 < len(parsed) else ""
                if name in seen:
                    kind = "same"
                else:
                    seen.add(name)
                    kind = _kind(name, spec)
                slots.append((name, kind, after))
            if slots:
                literal = len(head) + sum(len(after) for _name, _kind, after in slots)
                templates.append(_Template(head, tuple(slots), literal, entry))
    # The most specific first: the most of its own text, then (on a tie: "{steps} is out of range" and "{guidance:g}
    # is out of range") the most placeholders that say what they hold.
    templates.sort(key=lambda template: (-template.literal, -sum(kind != "text" for _n, kind, _a in template.slots)))
    return templates


def _kind(name: str, spec: str | None) -> str:
    """What a placeholder holds (see `_Template.slots`)."""
    if name == "n":
        return "count"
    if name in _DURATION_NAMES:
        return "duration"
    if spec == _DATE_SPEC:
        return "date"
    if spec and spec[-1] in _NUMBER_SPECS:
        return "number"
    return "text"


def _split(template: _Template, text: str, typed: bool, steps: _Steps) -> dict[str, str] | None:
    """The values of `template`'s placeholders in `text` (the shortest first, as a lazy regex would find them), or
    None if `text` is not this template's. `typed`: a duration's placeholder takes only a duration."""
    last_after = template.slots[-1][2]
    if not text.startswith(template.head) or not text.endswith(last_after):
        return None
    if len(text) < template.literal + len(template.slots):
        return None
    end_of_text = len(text) - len(last_after)
    # The template's own words must all be there, in order (each value takes a character at least): most texts that
    # are not this template's fail here, in one scan, before any split is tried.
    position = len(template.head)
    for _name, _kind, after in template.slots[:-1]:
        if after:
            position = text.find(after, position + 1, end_of_text)
            if position == -1:
                return None
            position += len(after)
    spans: dict[str, tuple[int, int]] = {}

    def fits(name: str, kind: str, start: int, end: int) -> bool:
        # Checked in place, not on a slice: a value may be most of a long text, tried thousands of times.
        if kind == "count":
            return _DIGITS.fullmatch(text, start, end) is not None
        if kind == "same":
            first, last = spans[name]
            return last - first == end - start and text.startswith(text[first:last], start)
        if kind == "duration" and typed:
            return _DURATION.fullmatch(text, start, end) is not None
        return True

    def place(index: int, start: int) -> bool:
        name, kind, after = template.slots[index]
        if index == len(template.slots) - 1:
            ends: Iterator[int] = iter((end_of_text,) if end_of_text > start else ())
        elif after:
            ends = _occurrences(text, after, start + 1, end_of_text)
        else:
            ends = iter(range(start + 1, end_of_text + 1))
        for end in ends:
            steps.spend()
            if not fits(name, kind, start, end):
                if kind == "count":
                    return False  # a longer value holds the same non-digit
                continue
            if kind != "same":
                spans[name] = (start, end)
            if index == len(template.slots) - 1 or place(index + 1, end + len(after)):
                return True
        return False

    if not place(0, len(template.head)):
        return None
    return {name: text[start:end] for name, (start, end) in spans.items()}


def _occurrences(text: str, words: str, start: int, stop: int) -> Iterator[int]:
    """Where `words` begins in `text`, from `start` on, ending by `stop`."""
    found = text.find(words, start, stop)
    while found != -1:
        yield found
        found = text.find(words, found + 1, stop)


def _render_kept(text: str, locale: str, depth: int, steps: _Steps | None = None) -> str:
    if not text or locale == SOURCE_LOCALE:
        return text
    catalog = translations(locale)
    translated = catalog.gettext(text)
    if translated != text or depth > _KEPT_DEPTH:
        return translated
    if steps is None:
        try:
            return _render_kept(text, locale, depth, _Steps())
        except _OutOfSteps:
            return text
    steps.spend(_RENDER_COST)
    for ending in STORED_ENDINGS:
        if text.endswith(ending) and len(text) > len(ending):
            return _render_kept(text[: -len(ending)], locale, depth + 1, steps) + catalog.gettext(ending)
    for typed in (True, False):
        for template in _kept_templates():
            values = _split(template, text, typed, steps)
            if values is None:
                continue
            # Each value once (a repeated placeholder is the same value), the count apart: it picks the plural.
            free = [(name, kind) for name, kind, _after in template.slots if kind not in ("count", "same")]
            params = {name: _kept_value(kind, values[name], locale, depth, steps) for name, kind in free}
            if template.short and not all(
                params[name] != values[name] or _QUANTITY.match(values[name]) is not None for name, _kind in free
            ):
                continue
            entry = template.entry
            if isinstance(entry, tuple):
                n = int(values["n"])
                return fill(catalog.ngettext(entry[0], entry[1], n), {"n": n, **params}, locale)
            return fill(catalog.gettext(entry), params, locale)
    return text


# A decimal number a template writes as a number (`{guidance:g}`, `{size:.1f}`): written with the reader's decimal
# sign and the same digits. A value of any other placeholder (a term, a job's id) stays as written, as do whole
# numbers (a size's "1024", a seed), which would read wrong grouped.
_DECIMAL = re.compile(r"\d+\.\d+")


def _kept_value(kind: str, value: str, locale: str, depth: int, steps: _Steps) -> Any:
    """A value found in a kept text, for the translated template: a date or a decimal number written the locale's
    way, or a kept text of its own translated in turn."""
    if kind == "date":
        with contextlib.suppress(ValueError):
            return format_skeleton("dMMMM", datetime.strptime(f"{value} 2000", "%d %B %Y").date(), locale=locale)
    elif kind == "number" and _DECIMAL.fullmatch(value):
        decimals = len(value) - value.index(".") - 1
        return format_decimal(Decimal(value), format="#,##0." + "0" * decimals, locale=locale)
    return _render_kept(value, locale, depth + 1, steps)


class CatalogTranslator(app_commands.Translator):
    """The commands' and options' descriptions and the choices' names from the catalogs; names stay English."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        if context.location in (
            app_commands.TranslationContextLocation.command_name,
            app_commands.TranslationContextLocation.group_name,
            app_commands.TranslationContextLocation.parameter_name,
        ):
            return None
        target = DISCORD_LOCALES.get(locale.value)
        if target is None:
            return None
        translated = translations(target).gettext(string.message)
        return translated if translated != string.message else None


def catalog_digest() -> str:
    """What changes when any shipped translation changes: part of the command tree's hash, so a new translation of a
    description is synced."""
    import hashlib

    digest = hashlib.sha256()
    for locale in SHIPPED:
        path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()
