"""The prompt deny-list: which characters a prompt loses before it is sent, and how terms are matched.

Two views of a text, for two purposes:

`visible_text` is what reaches the worker and the job card: the member's own words, minus characters that show
nothing and only serve to hide or smuggle text. These are the Unicode Default_Ignorable_Code_Point characters
(soft hyphen, U+034F, U+180E, zero-width spaces and joiners, bidi controls U+202A–202E and U+2066–2069, variation
selectors, tag characters U+E0000–E007F, Hangul fillers U+115F/U+1160/U+3164/U+FFA0…), control characters other
than tab and newline, line and paragraph separators, and the few other invisible format controls. One exception
keeps emoji whole: a zero-width joiner between two emoji (👩‍💻) and a variation selector after an emoji or before a
keycap (❤️, 1️⃣) stay. Tag characters always go, even in the rare flag sequences that use them, because they can
carry hidden ASCII text.

`match_forms` are only ever compared, never shown. The prompt and every term are folded in these steps:
1. every invisible character above is dropped (emoji joiners included);
2. NFKC: fullwidth, mathematical, circled and superscript letters become plain ones;
3. accents are stripped (NFD, then combining marks dropped): generic diacritics wherever they are, and any mark
   on a Latin, Greek or Cyrillic letter or on a non-letter (Zalgo text). Marks that spell words in other scripts
   (Devanagari vowel signs, kana voicing marks…) stay, or different words would become one;
4. case folding, and look-alike letters from other scripts (Cyrillic о, Greek ο, Latin ɡ…) become their
   prototype, after the confusables skeleton of Unicode TS #39 (table in `jobs/confusables.py`). Small capitals
   (ᴛ, ʜ) count as their letter. ASCII characters are never folded onto each other (`rn` and `m`, `0` and `O`,
   `1` and `l`): "pom poms" must not read as a term; so a capital that looks like I stands for i;
5. whitespace runs (any kind, and the braille blank) become one space.
The skeleton is case-sensitive and case folding is not, so step 4 is done in both orders, giving two forms: case
folded first (capitals and small letters of one script always agree: ΣΊΣΥΦΟΣ is σίσυφος) and skeleton first
(capitals that look like Latin ones are caught: Cyrillic КILL is kill). A term matches if its case-first form is
in the prompt's case-first form, or its skeleton-first form in the prompt's skeleton-first form.

A term matches whole words, and where a word ends depends on its script: a word of a spaced script (Latin, Cyrillic,
Greek, digits) ends where its letters do, whatever follows (Japanese text included); a katakana term ends where the
katakana run does; a Hangul term may carry a Korean particle; in scripts written without spaces (kanji, hiragana,
Thai…) a term is found anywhere. An underscore separates words, as prompts written as tags use it.

"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from jobs.confusables import PAIRS
from jobs.text import N_, stored

# (first, last) code points of every character that shows nothing. Kept in step with Unicode's
# Default_Ignorable_Code_Point (including its unassigned reserves, so later characters are covered too).
_INVISIBLE_RANGES = (
    (0x00, 0x08),  # C0 controls; tab (0x09) and newline (0x0A) are kept
    (0x0B, 0x1F),
    (0x7F, 0x9F),  # DEL and the C1 controls
    (0xAD, 0xAD),  # soft hyphen
    (0x34F, 0x34F),  # combining grapheme joiner
    (0x61C, 0x61C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner; LRM, RLM
    (0x2028, 0x202E),  # line and paragraph separators; bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated format controls
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFFB),  # reserved ignorables; interlinear annotation controls
    (0x13430, 0x1343F),  # Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tag characters, variation selectors supplement, reserved ignorables
)
_INVISIBLE = re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in _INVISIBLE_RANGES) + "]")

_ZWJ = "\u200d"
_EMOJI_VARIATION = "\ufe0e\ufe0f"
_KEYCAP = "\u20e3"
_SKIN_TONES = range(0x1F3FB, 0x1F400)

# Combining marks that are decoration in every script: generic diacritics, Cyrillic titlo and the like, and the
# optional vowel points and cantillation of Hebrew and Arabic.
_DIACRITIC_RANGES = (
    (0x0300, 0x036F),
    (0x0483, 0x0489),
    (0x0591, 0x05C7),
    (0x0610, 0x061A),
    (0x064B, 0x065F),
    (0x0670, 0x0670),
    (0x06D6, 0x06ED),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0x2DE0, 0x2DFF),
    (0xA66F, 0xA67F),
    (0xFE20, 0xFE2F),
)
# Letters of the Latin, Greek and Cyrillic blocks, on which any mark is only an accent.
_ACCENTED_SCRIPT_RANGES = (
    (0x0000, 0x052F),
    (0x1C80, 0x1C8F),
    (0x1D00, 0x1FFF),
    (0x2C60, 0x2C7F),
    (0xA640, 0xA69F),
    (0xA720, 0xA7FF),
    (0xAB30, 0xAB6F),
)
# Characters that look like a space without being whitespace.
_BLANKS = {0x2800: " "}
_WORD = re.compile(r"\w")
# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, hiragana, Han ideographs): a term in
# them is found anywhere in the text, or a Japanese prompt would hide every term it runs into its sentence.
_UNSPACED = (
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1780, 0x17FF),
    (0x3040, 0x309F),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
)
# Katakana writes words (loanwords, mostly) as runs between other scripts: a katakana term ends where the run does,
# so "ヌード" is found in "美しいヌード写真" but not in "ヌードル" (noodle).
_KATAKANA = ((0x30A0, 0x30FF), (0x31F0, 0x31FF))
# Korean is written with spaces, but a noun carries its particles (and the plural 들) at its end: "고어를" is "고어"
# with the object particle. A Hangul term ends where its word does or where a particle ending the word begins, so
# "고어를" and "고어들이" hold "고어", and "고어텍스" (Gore-Tex) does not.
_HANGUL = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7FF))
_KOREAN_PARTICLES = (
    "입니다", "에서", "에게", "한테", "이랑", "으로", "까지", "부터", "보다", "처럼", "하고", "이나", "이야", "이다",
    "은", "는", "이", "가", "을", "를", "의", "에", "께", "와", "과", "랑", "로", "도", "만", "나", "야", "요",
)  # fmt: skip


def visible_text(text: str) -> str:
    """The text without invisible characters, except the joiners and selectors inside emoji sequences."""
    if _INVISIBLE.search(text) is None:
        return text
    return _INVISIBLE.sub(_keep_in_emoji, text)


def _keep_in_emoji(match: re.Match[str]) -> str:
    char, text, at = match.group(), match.string, match.start()
    if char == _ZWJ:
        before = at - 1
        while before >= 0 and text[before] in _EMOJI_VARIATION:
            before -= 1
        if before >= 0 and _is_emoji(text[before]) and at + 1 < len(text) and _is_emoji(text[at + 1]):
            return char
    elif char in _EMOJI_VARIATION and ((at > 0 and _is_emoji(text[at - 1])) or text[at + 1 : at + 2] == _KEYCAP):
        return char
    return ""


def _is_emoji(char: str) -> bool:
    return unicodedata.category(char) == "So" or ord(char) in _SKIN_TONES


def _in(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(first <= code <= last for first, last in ranges)


def _char_class(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in ranges)


_CONTINUES_KATAKANA = f"[{_char_class(_KATAKANA)}]"
# A word of a spaced script (Latin, Cyrillic, Greek, digits…) ends where its letters do, also against a Japanese
# neighbour: "nude" is found in "美しいnude写真".
_CONTINUES_SPACED = f"[^\\W{_char_class((*_UNSPACED, *_KATAKANA))}]"
# After a Hangul term: what follows is not the rest of its word once the plural and one particle are set aside.
_ENDS_KOREAN_WORD = f"(?=(?:들)?(?:{'|'.join(_KOREAN_PARTICLES)})?(?!{_CONTINUES_SPACED}))"
# The edges, compiled once and tried where a term's words were found (`_found`), not written into each term's
# pattern: a class of the CJK blocks takes `re` about 2 ms to compile, which for the bot's 136 NSFW terms held the
# event loop for 0.2 s at the first prompt, and a server's 200 deny-list terms would do the same.
# Each is (what must hold before a term's first character, after its last), matched at the term's edge.
_KATAKANA_EDGES = (re.compile(f"(?<!{_CONTINUES_KATAKANA})"), re.compile(f"(?!{_CONTINUES_KATAKANA})"))
_SPACED_EDGES = (re.compile(f"(?<!{_CONTINUES_SPACED})"), re.compile(f"(?!{_CONTINUES_SPACED})"))
_KOREAN_TAIL = re.compile(_ENDS_KOREAN_WORD)


def _mark_ranges() -> list[tuple[int, int]]:
    """Every combining mark (Mn, Mc, Me) below U+20000; above it there are only variation selectors, invisible."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x20000):
        if unicodedata.category(chr(code))[0] == "M":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return ranges


# A base character (or none) and the run of combining marks on it.
_MARK_RUN = re.compile(f"(.?)([{_char_class(_mark_ranges())}]+)", re.DOTALL)
_DIACRITIC = re.compile(f"[{_char_class(_DIACRITIC_RANGES)}]+")


def _accents_dropped(run: re.Match[str]) -> str:
    base, marks = run.group(1), run.group(2)
    if not base or unicodedata.category(base)[0] == "M":
        return ""  # marks with no base at all
    if unicodedata.category(base)[0] != "L" or _in(ord(base), _ACCENTED_SCRIPT_RANGES):
        return base
    return base + _DIACRITIC.sub("", marks)


def _nfkc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def prefold(text: str) -> str:
    """Steps 2 and 3: compatibility forms and accents folded, case kept."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    return unicodedata.normalize("NFC", _MARK_RUN.sub(_accents_dropped, decomposed))


def _small_capitals() -> dict[int, str]:
    """LATIN LETTER SMALL CAPITAL X → x (not the reversed or turned ones, which spell no word)."""
    found: dict[int, str] = {}
    for code in (*range(0x0260, 0x02B0), *range(0x1D00, 0x1D2C), *range(0xA730, 0xA800)):
        name = unicodedata.name(chr(code), "")
        if name.startswith("LATIN LETTER SMALL CAPITAL ") and len(name) == len("LATIN LETTER SMALL CAPITAL X"):
            found[code] = name[-1].lower()
    return found


# Case folding after step 3 adds no accent (the characters whose folding has one decompose, so lost it already),
# so NFKC is all it needs after.
def _case_first(folded: str, table: dict[int, str]) -> str:
    return _nfkc(folded.casefold()).translate(table)


def _skeleton_first(folded: str, table: dict[int, str]) -> str:
    return _nfkc(folded.translate(table).casefold()).translate(table)


def _skeleton_table() -> dict[int, str]:
    """Each look-alike's prototype in its final form (folded, case folded, mapped), for `str.translate`."""
    table: dict[int, str] = {}
    for line in PAIRS.split():
        source, _, target = line.partition(":")
        char = chr(int(source, 16))
        prototype = "".join(chr(int(code, 16)) for code in target.split(","))
        # ASCII I and l are not folded onto each other: a capital that looks like I stands for i.
        table[ord(char)] = "i" if prototype == "l" and char.casefold() != char else prototype
    table.update(_small_capitals())
    # A prototype may itself be a look-alike once folded: map until nothing changes (two rounds in practice).
    for _ in range(4):
        settled = {source: _case_first(prefold(target), table) for source, target in table.items()}
        if settled == table:
            break
        table = settled
    return {**table, **_BLANKS}


_SKELETON = _skeleton_table()


def match_forms(text: str) -> tuple[str, str]:
    """The case-first and the skeleton-first forms in which prompts and terms are compared (often the same)."""
    visible = _INVISIBLE.sub("", text)
    if visible.isascii():
        plain = _words(visible.casefold())
        return plain, plain
    folded = prefold(visible)
    return _words(_case_first(folded, _SKELETON)), _words(_skeleton_first(folded, _SKELETON))


def _words(form: str) -> str:
    """The form's words, one space apart; an underscore separates words too, as prompts written in tags do
    ("completely_nude"), and after folding, so a fullwidth one does as well."""
    return " ".join(form.replace("_", " ").split())


def term_key(term: str) -> str:
    """What makes two terms the same term (their case-first form); empty when nothing in the term is visible."""
    return match_forms(term)[0]


@dataclass(frozen=True)
class _TermPattern:
    """One form of a term: its first word (a cheap substring test rules most terms out), its words with any spacing
    between them, and what must hold at its edges where they are found (None: nothing)."""

    first_word: str
    words: re.Pattern[str]
    head: re.Pattern[str] | None
    tail: re.Pattern[str] | None


@functools.lru_cache(maxsize=4096)
def _term_patterns(term: str) -> tuple[_TermPattern, ...]:
    """The term's pattern in each form of `match_forms`."""
    compiled = []
    for form in match_forms(term):
        words = form.split()
        if not words:
            return ()
        first, last = _edges(words[0][0]), _edges(words[-1][-1])
        head = first[0] if first is not None else None
        tail = _KOREAN_TAIL if _in(ord(words[-1][-1]), _HANGUL) else last[1] if last is not None else None
        joined = re.compile(" ?".join(re.escape(word) for word in words))
        compiled.append(_TermPattern(words[0], joined, head, tail))
    return tuple(compiled)


def _found(term: _TermPattern, form: str) -> bool:
    """Whether the term's words are in `form` with its edges holding at one place at least."""
    start = 0
    while (found := term.words.search(form, start)) is not None:
        begins, ends = found.span()
        head_holds = term.head is None or term.head.match(form, begins) is not None
        if head_holds and (term.tail is None or term.tail.match(form, ends) is not None):
            return True
        start = begins + 1
    return False


def _edges(edge: str) -> tuple[re.Pattern[str], re.Pattern[str]] | None:
    """The checks at a term's edge character that it is not part of a longer word (None: nothing would make it so)."""
    code = ord(edge)
    if _in(code, _UNSPACED):
        return None
    if _in(code, _KATAKANA):
        return _KATAKANA_EDGES
    return _SPACED_EDGES if _WORD.match(edge) else None


def find_denied_term(prompt: str, terms: Iterable[str]) -> str | None:
    """The first term (as given) that the prompt contains as whole words, however disguised; None if none."""
    forms = match_forms(prompt)
    for term in terms:
        for pattern, form in zip(_term_patterns(term), forms, strict=False):
            if pattern.first_word in form and _found(pattern, form):
                return term
    return None


# The deny-list's limits as `storage.guilds` words them (a `ValueError` of `add_denied`), for the front end to
# recognise and translate.
TERM_LENGTH = stored("a term is 1 to {MAX_TERM_LENGTH} characters")
DENYLIST_FULL = stored("a deny-list holds at most {MAX_DENYLIST_TERMS} terms")
NO_VISIBLE_CHARACTER = N_("a term needs at least one visible letter, digit or symbol")


class DenyListStore(Protocol):
    """Where each server's deny-list is kept (`storage.guilds.GuildSettings`)."""

    async def denylist(self, guild_id: int) -> list[str]: ...

    async def add_denied(self, guild_id: int, term: str) -> bool: ...

    async def remove_denied(self, guild_id: int, term: str) -> bool: ...


class PromptRules:
    """The terms refused in prompts: the operator's, everywhere, and each server's own, in that server only."""

    def __init__(self, servers: DenyListStore, global_terms: Sequence[str] = ()) -> None:
        self.servers = servers
        self.global_terms = tuple(global_terms)

    async def denied_term(self, text: str, guild_id: int | None) -> str | None:
        """The first refused term (as written in its list) that `text` contains, or None."""
        terms = list(self.global_terms)
        if guild_id is not None:
            terms += await self.servers.denylist(guild_id)
        return find_denied_term(text, terms)

    async def server_terms(self, guild_id: int) -> list[str]:
        return await self.servers.denylist(guild_id)

    async def refuse(self, guild_id: int, term: str) -> bool:
        """Add a term to the server's list; False when it was there already. ValueError names a limit broken."""
        return await self.servers.add_denied(guild_id, term)

    async def allow(self, guild_id: int, term: str) -> bool:
        """Remove a term from the server's list, however it is spelled; False when it was not there."""
        return await self.servers.remove_denied(guild_id, term)
