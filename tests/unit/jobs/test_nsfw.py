"""The default NSFW terms in every language the bot speaks: explicit prompts are found, everyday words are not."""

from __future__ import annotations

import pytest

from jobs.nsfw import nsfw_term

EXPLICIT = {
    "english": "a nude woman on a beach",
    "german": "eine nackte Frau am Strand",
    "spanish": "una mujer desnuda en la playa",
    "french": "une femme nue sur la plage",
    "brazilian portuguese": "uma mulher nua na praia",
    "japanese, katakana between kanji": "浜辺のヌード写真",
    "japanese, kanji run into the sentence": "浜辺で全裸の女性",
    "japanese, an english word in a japanese sentence": "浜辺のnude女性",
    "japanese, a katakana compound": "浜辺のセミヌード写真",
    "french, naked as a phrase": "une femme à poil sur la plage",
    "tags joined by underscores": "1girl, completely_nude, beach",
}


@pytest.mark.parametrize("prompt", EXPLICIT.values(), ids=EXPLICIT.keys())
def test_an_explicit_prompt_is_found_in_each_language(prompt: str) -> None:
    """A member writing in any language the bot speaks cannot pass an explicit prompt off as safe."""
    assert nsfw_term(prompt) is not None


EVERYDAY = {
    "english chicken breasts": "roast chicken breasts on a plate",
    "german chicken breast": "Hähnchenbrust mit Gemüse",
    "french bare wall": "un mur nu dans une vieille maison",
    "spanish gender word inside another": "un sexteto de jazz",
    "portuguese peeled potato": "batatas descascadas e um cachorro pelado",
    "japanese noodles": "ヌードルを食べる猫",
    "japanese yellow": "イエローの傘をさした少女",
    "japanese barefoot": "裸足で走る子供",
    "french long-haired cat": "un chat à poil long sur un canapé",
    "the grand teton": "Grand Teton mountains at sunrise",
    "the tetons in french": "les Tétons au lever du soleil",
}


@pytest.mark.parametrize("prompt", EVERYDAY.values(), ids=EVERYDAY.keys())
def test_everyday_words_are_not_nsfw(prompt: str) -> None:
    """Words that merely contain or resemble an NSFW term pass, in every language."""
    assert nsfw_term(prompt) is None


def test_a_servers_japanese_term_is_found_inside_a_sentence() -> None:
    """A server's own term in a script written without spaces is found where the member ran it into the text."""
    assert nsfw_term("夜の露天風呂の絵", server_terms=["露天風呂"]) == "露天風呂"
