"""The prompt deny-list through the real bot: disguised terms are refused before anything is paid for, invisible
characters never reach the worker, and a moderator's list holds each term once, in the moderator's own words."""

from __future__ import annotations

from typing import Any

from tests.e2e.bot.conftest import Harness, answer_text

# "blood bath" in bold maths letters, Cyrillic look-alikes, a combining accent, a soft hyphen, a bidi isolate,
# odd and doubled spaces, a fullwidth letter, a combining grapheme joiner and a tag character.
DISGUISED = "a \U0001d41b\U0001d425\u043e\u0301od\u00ad \u2066\u00a0 \uff42\u0430\u034fth\U000e0041 scene"


async def denylist(harness: Harness, command: str, **options: Any) -> str:
    """Run a /denylist subcommand as the moderator and return the answer."""
    interaction = await harness.fake.invoke_command(harness.channel_id, harness.mod, f"denylist {command}", options)
    return answer_text(await harness.answered(interaction))


async def test_disguised_term_is_refused_and_nothing_is_sent(harness: Harness) -> None:
    """A prompt hiding a listed term behind several disguises is refused with the term named; no job starts."""
    async with harness.running():
        assert "now refused" in await denylist(harness, "add", term="Blood Bath")
        answer = answer_text(await harness.imagine(prompt=DISGUISED))
    assert "doesn't allow the term “Blood Bath”" in answer
    assert harness.emulator.counters.request_count("run") == 0


async def test_operator_term_is_matched_across_odd_spacing(harness: Harness) -> None:
    """A PROMPT_DENYLIST term refuses its words separated by an ideographic space, named as the operator wrote it."""
    async with harness.running(prompt_denylist="Blood Bath"):
        answer = answer_text(await harness.imagine(prompt="a blood\u3000bath at dawn"))
    assert "“Blood Bath”" in answer
    assert harness.emulator.counters.request_count("run") == 0


async def test_soft_hyphen_is_removed_before_the_prompt_reaches_runpod(harness: Harness) -> None:
    """A harmless word with a soft hyphen in it is generated, and the worker gets the word without it."""
    async with harness.running():
        answered = await harness.imagine(prompt="a friendly ca\u00adt on a sofa")
        answer = answer_text(answered)
        assert answer.startswith("Submitted"), answer
        job = await harness.redis_jobs(await harness.jid_of(answered))
    assert job.runpod_id is not None
    received = harness.emulator.engine.job(job.runpod_id)
    assert received is not None
    assert received.input["prompt"] == "a friendly cat on a sofa"


async def test_another_spelling_of_a_listed_term_is_not_added_twice(harness: Harness) -> None:
    """Adding a term again in capitals, fullwidth or look-alike letters is a duplicate; the list shows it once, as
    first written, and removing any spelling removes it."""
    async with harness.running():
        assert "now refused" in await denylist(harness, "add", term="Gore")
        assert "already refused" in await denylist(harness, "add", term="\uff27\uff2f\uff32\uff25")
        assert "already refused" in await denylist(harness, "add", term="g\u043er\u0435")
        shown = await denylist(harness, "show")
        removed = await denylist(harness, "remove", term="GORE")
        after = await denylist(harness, "show")
    # The answer is read from both the interaction response and its message: the same text, twice.
    assert set(shown.splitlines()) == {"“Gore”"}
    assert "allowed again" in removed
    assert set(after.splitlines()) == {"No terms are refused on this server."}


async def test_term_of_invisible_characters_is_not_added(harness: Harness) -> None:
    """A term with nothing visible in it is refused with what a term needs, and later prompts still go through."""
    async with harness.running():
        refusal = await denylist(harness, "add", term="\u200b\u00ad")
        answer = answer_text(await harness.imagine(prompt="a lighthouse at dusk"))
    assert refusal.startswith("Not added:")
    assert "visible" in refusal
    assert answer.startswith("Submitted"), answer
