"""The NSFW rules: where NSFW prompts may go, and the terms that make a prompt NSFW (a worker's own NSFW failure is
worded in `jobs.reasons`).

Discord's rule is that adult content belongs in age-restricted channels (the channel's `nsfw` flag). The core knows
no Discord: the front end says whether the place a job's result will be shown is age-restricted
(`Requester.age_restricted`), and the server's settings say what it allows (`NsfwMode`):
- `age-restricted` (the default): NSFW prompts only where the result is shown in an age-restricted channel;
- `never`: no NSFW prompt in any channel of the server.
There is no "everywhere": the bot would then post adult images where Discord does not allow them.
Direct messages are not age-restricted (Discord has no such flag for them), so a job started in a DM, or a private
one (its result goes by DM), takes no NSFW prompt. The command line is the operator's own terminal and is not checked.

A prompt is NSFW when its positive text holds one of the default terms below or one of the server's own NSFW terms,
matched like the deny-list (`jobs.prompt_filter`: whole words, normal form, look-alike letters). The member's negative
prompt is not checked: naming NSFW there keeps it out of the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from jobs.prompt_filter import find_denied_term
from jobs.text import N_, stored

# The templates of this module's texts for members (`jobs.text.stored`), registered when the module is
# imported, so any process recognises them in a kept text and translates them.
YOUR_PROMPT_HOLDS_AN_NSFW = stored(
    "Your prompt holds “{term}”, an NSFW term: NSFW prompts are allowed only in age-restricted channels of "
    "a server, and this is not one (direct messages and private results, which go by direct message, are "
    "not age-restricted either). Use an age-restricted channel without `private` (ask a moderator which "
    "channels are age-restricted), or rephrase."
)
YOUR_PROMPT_HOLDS_AN_NSFW_2 = stored(
    "Your prompt holds “{term}”, an NSFW term, and this server allows no NSFW prompts in any channel (its "
    "moderators chose so in /settings). Please rephrase."
)

# The default NSFW terms, shipped with the bot: explicit words for nudity and sex in English and in each language the
# bot speaks, each as a whole word (so "analysis" or "Sussex" never match; in Japanese, as a katakana run or anywhere
# in kanji and hiragana, `jobs.prompt_filter`). Words with an everyday meaning too are left out or kept only in
# phrases: "breasts" of a chicken, "Moby Dick", "cum laude", paint "stripper"; French "nu", a bare wall; Portuguese
# "pelado", hairless or peeled; Japanese "裸", in 裸足 (barefoot), and "エロ", in イエロー (yellow). Each server adds
# its own (`/settings nsfw add`).
ENGLISH_NSFW_TERMS: tuple[str, ...] = (
    "nsfw",
    "nude",
    "nudes",
    "nudity",
    "naked",
    "topless",
    "bottomless",
    "undressed",
    "unclothed",
    "lingerie",
    "nipple",
    "nipples",
    "areola",
    "areolae",
    "bare breasts",
    "exposed breasts",
    "boobs",
    "tits",
    "titties",
    "genitals",
    "genitalia",
    "penis",
    "vagina",
    "vulva",
    "pussy",
    "erection",
    "sex",
    "sexual",
    "sexy",
    "intercourse",
    "porn",
    "porno",
    "pornographic",
    "pornography",
    "hentai",
    "ecchi",
    "erotic",
    "erotica",
    "xxx",
    "fetish",
    "bdsm",
    "bondage",
    "orgasm",
    "orgy",
    "masturbation",
    "masturbating",
    "blowjob",
    "handjob",
    "creampie",
    "gangbang",
    "threesome",
    "striptease",
    "onlyfans",
    "r34",
    "r18",
    "rule 34",
)
GERMAN_NSFW_TERMS = (
    "nackt",
    "nackte",
    "nackten",
    "nackter",
    "nacktes",
    "nacktheit",
    "oben ohne",
    "nippel",
    "titten",
    "geschlechtsverkehr",
    "geschlechtsteile",
    "erotik",
    "erotisch",
    "erotische",
    "pornografie",
    "pornografisch",
    "unzensiert",
)
SPANISH_NSFW_TERMS = (
    "desnudo",
    "desnuda",
    "desnudos",
    "desnudas",
    "desnudez",
    "en topless",
    "pezón",
    "pezones",
    "tetas",
    "sexo",
    "erótico",
    "erótica",
    "pornografía",
    "pornográfico",
    "genitales",
)
FRENCH_NSFW_TERMS = (
    "nue",
    "nues",
    "femme nue",
    "homme nu",
    "seins nus",
    "nudité",
    # Not "à poil" alone ("un chat à poil long": long-haired) nor "téton" (the Grand Teton, the Tetons).
    "femme à poil",
    "homme à poil",
    "nichons",
    "sexe",
    "sexuel",
    "sexuelle",
    "érotique",
    "pornographie",
    "pornographique",
)
PORTUGUESE_NSFW_TERMS = (
    "nua",
    "nuas",
    "nudez",
    "seios nus",
    "mamilo",
    "mamilos",
    "pornografia",
    "pornográfico",
    "genitais",
)
JAPANESE_NSFW_TERMS = (
    "ヌード",
    # A katakana term is a whole katakana run (not "ヌードル", noodle), so its compounds are terms of their own.
    "セミヌード",
    "フルヌード",
    "オールヌード",
    "ヘアヌード",
    "ヌードモデル",
    "ヌード写真",
    "全裸",
    "裸体",
    "半裸",
    "セックス",
    "セックスシーン",
    "アナルセックス",
    "ポルノ",
    "ポルノビデオ",
    "乳首",
    "性器",
    "陰部",
    "巨乳",
    "おっぱい",
    "エッチな",
    "成人向け",
    "18禁",
    "無修正",
)
DEFAULT_NSFW_TERMS: tuple[str, ...] = (
    *ENGLISH_NSFW_TERMS,
    *GERMAN_NSFW_TERMS,
    *SPANISH_NSFW_TERMS,
    *FRENCH_NSFW_TERMS,
    *PORTUGUESE_NSFW_TERMS,
    *JAPANESE_NSFW_TERMS,
)


class NsfwMode(StrEnum):
    """Where a server allows NSFW prompts."""

    # Also the names of `/settings nsfw mode`'s choices, translated where they are shown.
    AGE_RESTRICTED = N_("age-restricted")
    NEVER = N_("never")


def nsfw_term(prompt: str, server_terms: Sequence[str] = ()) -> str | None:
    """The first NSFW term (the server's own first, as written in its list) that the prompt holds; None if none."""
    return find_denied_term(prompt, (*server_terms, *DEFAULT_NSFW_TERMS))


def nsfw_refusal(term: str, mode: NsfwMode) -> str:
    """Why an NSFW prompt was refused: the term, the rule, and where such prompts are allowed."""
    if mode is NsfwMode.NEVER:
        return YOUR_PROMPT_HOLDS_AN_NSFW_2.format(term=term)
    return YOUR_PROMPT_HOLDS_AN_NSFW.format(term=term)
