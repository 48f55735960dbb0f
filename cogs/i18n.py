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
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import discord
from babel.dates import format_datetime, format_timedelta
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
    """Compile every shipped catalog now (tens of milliseconds each): run it in a thread at start, so the first
    message in a language does not hold the event loop."""
    for locale in SHIPPED:
        translations(locale)


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


def public_locale(extra: Mapping[str, Any], private: bool = False) -> str:
    """A job's public messages: its server's locale as it was at submit; by direct message, its member's."""
    field = MEMBER_LOCALE_FIELD if private or not extra.get(GUILD_LOCALE_FIELD) else GUILD_LOCALE_FIELD
    value = extra.get(field)
    return value if isinstance(value, str) and value in SHIPPED else SOURCE_LOCALE


def locales_of(interaction: discord.Interaction[Any]) -> dict[str, str]:
    """What a job records of the interaction that started it: its member's catalog, and its server's."""
    recorded = {MEMBER_LOCALE_FIELD: catalog_locale(interaction.locale)}
    if interaction.guild_locale is not None:
        recorded[GUILD_LOCALE_FIELD] = catalog_locale(interaction.guild_locale)
    return recorded


_PRECISION = re.compile(r"\.(\d+)[fF%]?$")


class LocalNumber:
    """A number that formats itself for a locale, honouring the precision of the msgid's format spec (`{x:.1f}`)."""

    def __init__(self, value: float, locale: str) -> None:
        self.value = value
        self.locale = locale

    def __format__(self, spec: str) -> str:
        match = _PRECISION.search(spec)
        if match is None:
            return format_decimal(self.value, locale=self.locale)
        digits = int(match[1])
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(round(self.value, digits), format=pattern, locale=self.locale)

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
    if isinstance(value, int | float):
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
_DURATION = r"\d+ (?:second|minute|hour|day)s?"
_DURATION_NAMES = frozenset({"late", "lasted", "duration", "limit"})


def _kept_patterns(typed: bool) -> list[tuple[re.Pattern[str], str | tuple[str, str]]]:
    """The patterns of every template registered so far (a module imported later adds its own)."""
    return _patterns_of(typed, len(STORED))


@cache
def _patterns_of(typed: bool, _registered: int) -> list[tuple[re.Pattern[str], str | tuple[str, str]]]:
    """Each template of a kept text as a pattern that finds its values; the most specific (most literal text) first.
    `typed`: a duration's placeholder matches only a duration (tried first; then any text)."""
    patterns: list[tuple[int, re.Pattern[str], str | tuple[str, str]]] = []
    for entry in STORED:
        for form in (entry,) if isinstance(entry, str) else entry:
            regex, literal, seen = [], 0, set()
            for text, name, _spec, _conversion in _FORMATTER.parse(form):
                regex.append(re.escape(text))
                literal += len(text)
                if name is None:
                    continue
                if name in seen:
                    regex.append(f"(?P={name})")
                else:
                    seen.add(name)
                    if name == "n":
                        value = r"\d+"
                    elif typed and name in _DURATION_NAMES:
                        value = _DURATION
                    else:
                        value = ".+?"
                    regex.append(rf"(?P<{name}>{value})")
            patterns.append((literal, re.compile("".join(regex), re.DOTALL), entry))
    patterns.sort(key=lambda item: -item[0])
    return [(pattern, entry) for _literal, pattern, entry in patterns]


def _render_kept(text: str, locale: str, depth: int) -> str:
    if not text or locale == SOURCE_LOCALE:
        return text
    catalog = translations(locale)
    translated = catalog.gettext(text)
    if translated != text or depth > _KEPT_DEPTH:
        return translated
    for ending in STORED_ENDINGS:
        if text.endswith(ending) and len(text) > len(ending):
            return _render_kept(text[: -len(ending)], locale, depth + 1) + catalog.gettext(ending)
    for pattern, entry in (*_kept_patterns(True), *_kept_patterns(False)):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        values = match.groupdict()
        params: dict[str, Any] = {
            name: _render_kept(value, locale, depth + 1) for name, value in values.items() if name != "n"
        }
        if isinstance(entry, tuple):
            n = int(values["n"])
            return fill(catalog.ngettext(entry[0], entry[1], n), {"n": n, **params}, locale)
        return fill(catalog.gettext(entry), params, locale)
    return text


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
