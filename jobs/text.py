"""The core's texts without a language: what to tell a member, as English msgids of the message catalog.

The core stays presentation-free: it says *what* to tell, a front end renders it in the reader's language
(`cogs/i18n.py` for Discord, through the catalogs); the command line reads the English. A `Text` is a msgid and the
values of its placeholders (its `str` is the English). A text the core keeps in a record (a job's reason) or returns
as a string is English built from a template marked with `stored`: the front end recognises the template and
translates the text with the values it finds in it, so records stay plain English for every reader and older
records translate too. `N_` marks a constant English text. `pybabel extract` finds all of them (Makefile, `catalog`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Text:
    """`msgid` is the English text with `{name}` placeholders; `plural` and `n` make it a plural (ngettext)."""

    msgid: str
    params: Mapping[str, Any] = field(default_factory=dict)
    plural: str | None = None
    n: int | None = None

    def english(self) -> str:
        """The text in English, the catalogs' source language."""
        source = self.msgid if self.plural is None or self.n == 1 else self.plural
        return source.format(**self.params) if self.params else source

    def __str__(self) -> str:
        return self.english()


def T(msgid: str, /, **params: Any) -> Text:
    """A text for the catalog (`pybabel extract` finds `T("…")`)."""
    return Text(msgid, params)


def Tn(singular: str, plural: str, n: int, /, **params: Any) -> Text:
    """A text with a plural (`pybabel extract` finds `Tn("…", "…", n)`); `{n}` is the count."""
    return Text(singular, {"n": n, **params}, plural, n)


def N_(msgid: str, /) -> str:
    """Marks a constant English text for the catalog; it is translated where it is shown."""
    return msgid


# The core's texts that are kept as English in records (a job's reason): the front end recognises a kept text by
# these templates and translates it with the values it finds in it (`cogs/i18n.py`, `render`), so a record stays
# plain English for every reader (the command line, the logs) and an old record translates too.
STORED: list[str | tuple[str, str]] = []
# Endings the core appends to a kept text (", so its images are lost."): translated apart from what they end.
STORED_ENDINGS: list[str] = []


def stored(msgid: str, /) -> str:
    """A template of a kept text (`{name}` placeholders), marked for the catalog; fill it with `str.format`. Called
    at module level (a module's constants), so importing the module registers its templates once."""
    if msgid not in STORED:
        STORED.append(msgid)
    return msgid


def stored_n(singular: str, plural: str, /) -> tuple[str, str]:
    """A kept text with a plural: `{n}` is the count; `plural_of` picks the form."""
    if (singular, plural) not in STORED:
        STORED.append((singular, plural))
    return singular, plural


def stored_ending(msgid: str, /) -> str:
    """An ending the core appends to a kept text, marked for the catalog."""
    if msgid not in STORED_ENDINGS:
        STORED_ENDINGS.append(msgid)
    return msgid


def plural_of(forms: tuple[str, str], n: int, /, **params: Any) -> str:
    """The English form for `n`, filled."""
    return (forms[0] if n == 1 else forms[1]).format(n=n, **params)
