"""The prompt deny-list: every known disguise of a term is caught, innocent prompts pass, and the prompt sent to
RunPod is what the member wrote minus invisible characters."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from jobs.presets import RequestOptions, default_catalog
from jobs.prompt_filter import find_denied_term, term_key, visible_text

TERMS = ["Gore", "blood bath"]

EVASIONS = {
    "plain, other case": "lots of GoRe here",
    "control characters": "lots of go\x00r\x7fe here",
    "soft hyphen": "lots of go\u00adre here",
    "combining grapheme joiner": "lots of go\u034fre here",
    "mongolian vowel separator": "lots of go\u180ere here",
    "bidi isolate around": "lots of \u2066gore\u2069 here",
    "bidi isolate inside": "lots of go\u2066re here",
    "bidi override inside": "lots of go\u202ere\u202c here",
    "arabic letter mark": "lots of go\u061cre here",
    "zero-width space": "lots of go\u200bre here",
    "zero-width joiners": "lots of g\u200do\u200cre here",
    "word joiner and bom": "lots of go\u2060r\ufeffe here",
    "variation selector": "lots of go\ufe0fre here",
    "ideographic variation selector": "lots of go\U000e0100re here",
    "tag characters": "lots of gor\U000e0065\U000e007fe here",
    "hangul filler": "lots of go\u3164re here",
    "hangul choseong filler": "lots of go\u115fre here",
    "hangul jungseong filler": "lots of go\u1160re here",
    "halfwidth hangul filler": "lots of go\uffa0re here",
    "cyrillic look-alikes": "lots of g\u043er\u0435 here",
    "greek omicron": "lots of g\u03bfre here",
    "latin script g and small capital o": "lots of \u0261\u1d0fre here",
    "cyrillic and greek capitals": "a \u0412L\u041e\u041eD \u0392\u0410\u0422\u041d",
    "small capitals": "a \u0299\u029f\u1d0f\u1d0f\u1d05 \u0299\u1d00\u1d1b\u029c",
    "fullwidth": "lots of \uff47\uff4f\uff52\uff45 here",
    "fullwidth capitals": "lots of \uff27\uff2f\uff32\uff25 here",
    "mathematical bold": "lots of \U0001d420\U0001d428\U0001d42b\U0001d41e here",
    "mathematical fraktur": "lots of \U0001d524\U0001d52c\U0001d52f\U0001d522 here",
    "combining accents": "lots of go\u0300re\u0308 here",
    "precomposed accents": "lots of g\u00f2r\u00eb here",
    "strikethrough overlay": "lots of g\u0336o\u0336r\u0336e\u0336 here",
    "zalgo": "lots of g\u0303\u0324\u0489o\u035fr\u0352e\u0353 here",
    "cyrillic with accent": "lots of g\u043e\u0301r\u0435 here",
    "double space": "a blood  bath",
    "ideographic space": "a blood\u3000bath",
    "no-break and em spaces": "a blood\u00a0\u2003bath",
    "newline and tab": "a blood\n\tbath",
    "space and invisible": "a blood \u200b\u00ad bath",
    "invisible only": "a blood\u200bbath",
    "hangul filler as space": "a blood\u3164bath",
    "braille blank as space": "a blood\u2800bath",
    "run together": "a bloodbath",
    "several at once": "a \U0001d41b\U0001d425\u043e\u0301od\u00ad \u2066\u00a0 \uff42\u0430\u034fth\U000e0041 scene",
}


@pytest.mark.parametrize("prompt", EVASIONS.values(), ids=EVASIONS.keys())
def test_disguised_term_is_caught(prompt: str) -> None:
    """Each disguise of a listed term is refused, naming the term as the moderator wrote it."""
    assert find_denied_term(prompt, TERMS) in TERMS


INNOCENT_TERMS = ["Gore", "ass", "blood bath", "porn", "lol", "かき", "बम"]
INNOCENT = {
    "term inside a longer word": "an Edward Gorey style illustration",
    "term inside other words": "a class of assassins",
    "multi-word term across word parts": "a bloody bathtub",
    "ascii rn and m are not folded": "a cheerleader with pom poms",
    "digits are not letters": "101 dalmatians in 1080p",
    "kana voicing marks are kept": "がき",
    "devanagari vowel signs are kept": "बूम",
    "emoji sequences": "a ninja cat 🐱‍👤 and a family 👨‍👩‍👧",
}


@pytest.mark.parametrize("prompt", INNOCENT.values(), ids=INNOCENT.keys())
def test_innocent_prompt_passes(prompt: str) -> None:
    """Words that merely contain a term, or differ from it in more than looks, are not refused."""
    assert find_denied_term(prompt, INNOCENT_TERMS) is None


@pytest.mark.parametrize(
    ("prompt", "term"),
    [("ΣΊΣΥΦΟΣ", "σίσυφος"), ("ПРИВЕТ", "привет"), ("βήτα", "ΒΗΤΑ")],
    ids=["greek", "cyrillic", "greek beta"],
)
def test_case_is_ignored_in_every_script(prompt: str, term: str) -> None:
    """Capitals and small letters of one script match each other, even where their look-alikes differ."""
    assert find_denied_term(prompt, [term]) == term


def test_term_of_only_invisible_characters_refuses_nothing() -> None:
    """A term that is empty once invisible characters are gone matches no prompt (not every prompt)."""
    assert term_key("\u200b\u00ad ") == ""
    assert find_denied_term("a lighthouse at dusk", ["\u200b\u00ad", " "]) is None


def test_term_that_is_a_symbol_matches_next_to_letters() -> None:
    """A term that starts and ends with a symbol needs no word boundary around it."""
    assert find_denied_term("a nice🍆emoji", ["🍆"]) == "🍆"


@pytest.mark.parametrize(
    ("prompt", "term"),
    [("血まみれの部屋", "血まみれ"), ("夜の墓地の絵", "墓地"), ("ภาพเลือดสาด", "เลือด")],
    ids=["hiragana and kanji", "kanji", "thai"],
)
def test_term_in_a_script_without_spaces_is_found_inside_the_sentence(prompt: str, term: str) -> None:
    """Japanese and Thai run words together: a deny-listed term there is found wherever it is written."""
    assert find_denied_term(prompt, [term]) == term


def test_katakana_term_ends_where_the_katakana_run_does() -> None:
    """A katakana word is found between other scripts, and not as the start of a longer katakana word."""
    assert find_denied_term("美しいゴア表現", ["ゴア"]) == "ゴア"
    assert find_denied_term("ゴアテックスの上着", ["ゴア"]) is None


@pytest.mark.parametrize(
    "prompt",
    ["피 묻은 고어를 그려", "고어들이 가득한 장면", "고어에서 영감을 받은", "잔인한 고어."],
    ids=["object particle", "plural and subject particle", "two-syllable particle", "before punctuation"],
)
def test_hangul_term_is_found_before_a_korean_particle(prompt: str) -> None:
    """Korean attaches particles to a noun: "고어를" holds the deny-listed "고어"."""
    assert find_denied_term(prompt, ["고어"]) == "고어"


def test_hangul_term_is_not_found_as_the_start_of_a_longer_word() -> None:
    """ "고어텍스" (Gore-Tex) is another word, not "고어" with a particle."""
    assert find_denied_term("고어텍스 재킷을 입은 등산객", ["고어"]) is None


def test_latin_term_is_found_next_to_japanese() -> None:
    """A Latin word written straight after Japanese text is still a whole word."""
    assert find_denied_term("とてもgoreな絵", ["gore"]) == "gore"


def test_spellings_of_one_term_share_a_key() -> None:
    """Case, width, look-alike letters, accents and invisible characters do not make a different term."""
    assert len({term_key(t) for t in ["Gore", "ＧＯＲＥ", "g\u043er\u0435", "go\u00adre", "gòre", " gore "]}) == 1
    assert term_key("blood  bath") == term_key("Blood\u3000Bath")


def runpod_prompt(prompt: str) -> str:
    """The prompt as the worker receives it, after the model resolved the member's request."""
    model = default_catalog("ep-1").default
    request = model.resolve(RequestOptions(prompt=prompt), random_seed=lambda: 1)
    return str(model.build_input(request)["prompt"])


INVISIBLE = {
    "soft hyphen": "\u00ad",
    "combining grapheme joiner": "\u034f",
    "arabic letter mark": "\u061c",
    "mongolian vowel separator": "\u180e",
    "zero-width space": "\u200b",
    "zero-width joiner between letters": "\u200d",
    "left-to-right isolate": "\u2066",
    "pop directional isolate": "\u2069",
    "right-to-left override": "\u202e",
    "word joiner": "\u2060",
    "variation selector after a letter": "\ufe0f",
    "byte order mark": "\ufeff",
    "tag letter": "\U000e0041",
    "ideographic variation selector": "\U000e0100",
    "hangul filler": "\u3164",
    "hangul choseong filler": "\u115f",
    "hangul jungseong filler": "\u1160",
    "halfwidth hangul filler": "\uffa0",
    "musical symbol begin beam": "\U0001d173",
    "c1 control": "\x85",
}


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_runpod_prompt_loses_the_invisible_character(char: str) -> None:
    """An invisible character inside a harmless word does not reach the worker."""
    assert runpod_prompt(f"a friendly ca{char}t on a sofa") == "a friendly cat on a sofa"


def test_runpod_prompt_keeps_what_the_member_wrote() -> None:
    """Case, accents, other scripts, fullwidth and styled letters, newlines and emoji sequences reach the worker."""
    prompt = "Ｃａｆé 𝐛𝐨𝐥𝐝 кот\nline two 👩🏽‍💻 ❤️ 1️⃣ ❤️‍🔥"
    assert runpod_prompt(prompt) == prompt


def test_every_format_and_ignorable_character_is_invisible() -> None:
    """Every format control Python knows (bar the visible Arabic-style number signs) is removed from prompts."""
    visible_format = {0x600, 0x601, 0x602, 0x603, 0x604, 0x605, 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0x110BD, 0x110CD}
    left = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cf", "Cc", "Zl", "Zp")
        and code not in visible_format
        and chr(code) not in "\t\n"
        and visible_text(f"a{chr(code)}b") != "ab"
    ]
    assert left == []


def test_a_term_is_found_between_underscores_as_in_tag_prompts() -> None:
    """Prompts written as tags join words with underscores: "gore" is found in "gore_scene", "blood bath" in
    "blood_bath", and a fullwidth underscore separates as well."""
    assert find_denied_term("masterpiece, gore_scene", ["gore"]) == "gore"
    assert find_denied_term("a_blood_bath", ["blood bath"]) == "blood bath"
    assert find_denied_term("gore\uff3fscene", ["gore"]) == "gore"
