"""The prompt deny-list: which characters a prompt loses before it is sent, and how terms are matched.

Two forms of a text, for two purposes:

`visible_text` is what reaches the worker and the job card: the member's own words, minus characters that show
nothing and only serve to hide or smuggle text. These are the Unicode Default_Ignorable_Code_Point characters
(soft hyphen, U+034F, U+180E, zero-width spaces and joiners, bidi controls U+202A–202E and U+2066–2069, variation
selectors, tag characters U+E0000–E007F, Hangul fillers U+115F/U+1160/U+3164/U+FFA0…), control characters other
than tab and newline, line and paragraph separators, and the few other invisible format controls. One exception
keeps emoji whole: a zero-width joiner between two emoji (👩‍💻) and a variation selector after an emoji or before a
keycap (❤️, 1️⃣) stay. Tag characters always go, even in the rare flag sequences that use them, because they can
carry hidden ASCII text.

`match_form` is only ever compared, never shown. Both the prompt and every term go through it, in this order:
1. every invisible character above is dropped (emoji joiners included);
2. NFKC, then case folding: fullwidth, mathematical, circled and superscript letters become plain ones;
3. accents are stripped (NFD, then combining marks dropped): generic diacritics wherever they are, and any mark
   on a Latin, Greek or Cyrillic letter or on a non-letter (Zalgo text). Marks that spell words in other scripts
   (Devanagari vowel signs, kana voicing marks…) stay, or different words would become one;
4. look-alike letters from other scripts (Cyrillic о, Greek ο, Latin ɡ…) become their prototype, after the
   confusables skeleton of Unicode TS #39 (table in `jobs/confusables.py`). ASCII characters are never folded
   onto each other (`rn` and `m`, `0` and `O`, `1` and `l`): "pom poms" must not read as a term;
5. whitespace runs (any kind, and the braille blank) become one space.

A term matches where its form appears as whole words (no letter or digit right before or after it, unless the
term itself starts or ends with a symbol), and the words of a multi-word term may be separated by any run of
spaces and invisible characters, or by none at all ("blood bath" also refuses "bloodbath").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from jobs.confusables import PAIRS

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

ZWJ = "\u200d"
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


def visible_text(text: str) -> str:
    """The text without invisible characters, except the joiners and selectors inside emoji sequences."""
    if _INVISIBLE.search(text) is None:
        return text
    return _INVISIBLE.sub(_keep_in_emoji, text)


def _keep_in_emoji(match: re.Match[str]) -> str:
    char, text, at = match.group(), match.string, match.start()
    if char == ZWJ:
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


def _strip_accents(decomposed: str) -> str:
    """NFD text without the combining marks that are only accents (see the module docstring)."""
    if decomposed.isascii():
        return decomposed
    kept: list[str] = []
    base_takes_accents = True
    for char in decomposed:
        if unicodedata.category(char)[0] == "M":
            if base_takes_accents or _in(ord(char), _DIACRITIC_RANGES):
                continue
        else:
            base_takes_accents = not unicodedata.category(char).startswith("L") or _in(
                ord(char), _ACCENTED_SCRIPT_RANGES
            )
        kept.append(char)
    return "".join(kept)


def prefold(text: str) -> str:
    """Steps 2 and 3 of `match_form`: compatibility forms, case and accents folded."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFC", _strip_accents(unicodedata.normalize("NFD", folded)))


def _skeleton_table() -> dict[int, str]:
    """Each look-alike's prototype, itself folded like a prompt, so one `str.translate` is the whole step 4."""
    prototypes: dict[int, str] = {}
    for line in PAIRS.split():
        source, _, target = line.partition(":")
        prototypes[int(source, 16)] = "".join(chr(int(code, 16)) for code in target.split(","))
    table = {source: prefold(target) for source, target in prototypes.items()}
    # A folded prototype may itself be a look-alike: map until nothing changes (two rounds at most in practice).
    for _ in range(4):
        settled = {source: prefold(target.translate(table)) for source, target in table.items()}
        if settled == table:
            break
        table = settled
    return {**table, **_BLANKS}


_SKELETON = _skeleton_table()


def match_form(text: str) -> str:
    """The form in which prompts and terms are compared (see the module docstring)."""
    text = prefold(_INVISIBLE.sub("", text)).translate(_SKELETON)
    return " ".join(text.split())


def term_key(term: str) -> str:
    """What makes two terms the same term; empty when the term has nothing visible in it."""
    return match_form(term)


@functools.lru_cache(maxsize=4096)
def _term_pattern(term: str) -> tuple[str, re.Pattern[str]] | None:
    """The term's first word (a cheap substring test rules most terms out) and the pattern of the whole term."""
    words = term_key(term).split()
    if not words:
        return None
    head = r"(?<!\w)" if _WORD.match(words[0][0]) else ""
    tail = r"(?!\w)" if _WORD.match(words[-1][-1]) else ""
    return words[0], re.compile(head + " ?".join(re.escape(word) for word in words) + tail)


def find_denied_term(prompt: str, terms: Iterable[str]) -> str | None:
    """The first term (as given) that the prompt contains as whole words, however disguised; None if none."""
    form = match_form(prompt)
    for term in terms:
        compiled = _term_pattern(term)
        if compiled is not None and compiled[0] in form and compiled[1].search(form):
            return term
    return None
