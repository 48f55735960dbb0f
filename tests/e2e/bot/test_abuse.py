"""Bad input and abuse through the real bot: every refusal is a clear ephemeral answer, nothing crashes, no
invalid request starts a paid job, hostile worker outputs end readably, secrets never leak, moderator actions are
refused to members in code, and quotas hold under a burst."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runpod_bot.logs import JobIdFilter, SecretRedactingFilter
from storage.models import JobState
from tests.e2e.bot.conftest import Harness, answer_text, cards, delivered, final_message, is_ephemeral, job_of, results
from tests.fakes.discord.views import MessageView

CONTROL = "".join(chr(code) for code in (0, 1, 7, 8, 11, 27, 127))
TRICKY_TEXT = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=CONTROL + "\u200b\u200d\ufeff\u202e abc", max_size=40),
    st.sampled_from(["", " ", "@everyone", "@here <@&1> <@1>", "**bold** `code` ||spoiler||", "🐉" * 50, "x" * 3000]),
)
OPTIONS = st.fixed_dictionaries(
    {"prompt": TRICKY_TEXT},
    optional={
        "negative": TRICKY_TEXT,
        "size": st.one_of(st.sampled_from(["1024x1024", "832x1216", "0x0", "99999x1", "big"]), st.text(max_size=12)),
        "steps": st.integers(-100, 1000),
        "guidance": st.floats(-100, 100, allow_nan=False),
        "seed": st.integers(-10, 2**34),
        "count": st.integers(-5, 10),
    },
)
HYPOTHESIS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@HYPOTHESIS
@given(options=OPTIONS)
async def test_any_imagine_options_get_a_clear_answer(harness: Harness, options: dict[str, Any]) -> None:
    """Whatever the options, the member gets an ephemeral answer, never an error id; refusals start nothing."""
    async with harness.running(user_cooldown_s=0, user_active_jobs=100, guild_active_jobs=1000):
        before = harness.emulator.counters.request_count("run")
        answer = await harness.imagine(**options)
        text = answer_text(answer)
        after = harness.emulator.counters.request_count("run")
    assert is_ephemeral(answer)
    assert text
    assert "error id" not in text
    assert "Traceback" not in text
    if text.startswith("Submitted"):
        assert after == before + 1
    else:
        assert after == before, text


HOSTILE_OUTPUTS = st.one_of(
    st.just({"images": ["iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"]}),  # truncated base64 PNG
    st.just({"image": "bm90IGFuIGltYWdl"}),  # "not an image"
    st.just({"image_url": "http://169.254.169.254/latest/meta-data"}),
    st.just({"image_url": "http://10.1.2.3/x.png"}),
    st.integers(20, 120).map(lambda depth: _nested(depth)),
    st.just({"status": "success_no_images", "images": []}),
    st.text(max_size=30),
)


def _nested(depth: int) -> Any:
    value: Any = "iVBORw0KGgo="
    for _ in range(depth):
        value = {"images": [value]}
    return value


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(output=HOSTILE_OUTPUTS)
async def test_hostile_worker_output_ends_with_a_readable_reason(harness: Harness, output: Any) -> None:
    """Broken, private-URL or absurdly nested outputs end the job FAILED with a reason on its card; the bot runs on."""
    harness.emulator.update_scenario(custom_output=output, execution_s=0.05)
    async with harness.running(allow_private_image_urls=False):
        answer = await harness.imagine(prompt="[emulator:custom] odd output")
        jid = await harness.jid_of(answer)

        def ended(found: list[MessageView]) -> bool:
            return any(job_of(card) == jid and card["embeds"][0]["title"] == "Failed" for card in cards(found))

        messages = await harness.wait_for_messages(ended)
        job = await harness.redis_jobs(jid)
    assert job.final_state is JobState.FAILED
    assert job.error
    assert "Traceback" not in job.error
    assert not [result for result in results(messages) if job_of(result) == jid]


async def test_no_secret_reaches_logs_messages_or_redis(harness: Harness) -> None:
    """A whole session (jobs done, failed, cancelled, health) leaves the token and the key in no log line, no
    Discord message or interaction answer, and no Redis value."""
    token, key = harness.fake.token, harness.emulator.api_key
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.addFilter(JobIdFilter())
    handler.addFilter(SecretRedactingFilter([token, key]))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        async with harness.running():
            await harness.imagine(prompt=f"innocent {key[:3]}")
            await harness.imagine(user_id=harness.bob, prompt="[emulator:fail-json] broken")
            await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.mod, "health"))
            await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.alice, "jobs"))
            await harness.wait_for_messages(lambda found: len(results(found)) == 1 and len(cards(found)) == 1)
            harness.emulator.script_faults("status", "server_error", "reset")
            await harness.imagine(prompt="after faults")
            await harness.wait_for_messages(lambda found: len(results(found)) == 2)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    logged = buffer.getvalue()
    assert "DEBUG" in logged  # the scan saw the verbose records too
    discord_side = repr(await harness.fake.channel_messages(harness.channel_id)) + repr(
        await harness.fake.interactions()
    )
    redis_side = []
    async for raw_key in harness.redis.scan_iter("*"):
        kind_raw = await harness.redis.type(raw_key)
        kind = kind_raw.decode() if isinstance(kind_raw, bytes) else str(kind_raw)
        if kind == "hash":
            redis_side.append(repr(await harness.redis.hgetall(raw_key)))
        elif kind == "string":
            redis_side.append(repr(await harness.redis.get(raw_key)))
        elif kind == "zset":
            redis_side.append(repr(await harness.redis.zrange(raw_key, 0, -1)))
        elif kind == "set":
            redis_side.append(repr(await harness.redis.smembers(raw_key)))
        redis_side.append(repr(raw_key))
    for secret in (token, key):
        assert secret not in logged
        assert secret not in discord_side
        assert secret not in " ".join(redis_side)


async def test_every_moderator_action_is_refused_to_a_member(harness: Harness) -> None:
    """/health, /denylist and another member's /jobs are refused to a plain member, by the bot's own checks."""
    async with harness.running():
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("health", {}),
            ("denylist add", {"term": "x"}),
            ("denylist remove", {"term": "x"}),
            ("denylist show", {}),
            ("jobs", {"member": harness.alice}),
        ]
        answers = [
            await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.bob, name, options))
            for name, options in attempts
        ]
        await harness.imagine()
        messages = await harness.wait_for_messages(delivered)
        (result,) = results(messages)
        delete = await harness.answered(
            await harness.fake.click_button(result["id"], f"job:delete:{job_of(result)}", harness.bob)
        )
        # A moderator's /health answer, clicked after the moderator lost the role: refused too.
        health = await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.mod, "health"))
        await harness.fake.set_member_roles(harness.guild_id, harness.mod, [])
        refresh = await harness.answered(
            await harness.fake.click_button(final_message(health)["id"], "health:refresh:*", harness.mod)
        )
    for answer in [*answers, delete, refresh]:
        assert is_ephemeral(answer)
        assert "Only moderators" in answer_text(answer) or "or a moderator" in answer_text(answer)
    assert not (await harness.fake.message(result["id"]))["deleted"]


async def test_fifty_concurrent_submits_respect_the_cooldown(harness: Harness) -> None:
    """Fifty /imagine at once from one member with a cooldown start exactly one job; the rest are told to wait."""
    async with harness.running(user_cooldown_s=60, user_active_jobs=10):
        interactions = await asyncio.gather(
            *(
                harness.fake.invoke_command(harness.channel_id, harness.alice, "imagine", {"prompt": f"burst {index}"})
                for index in range(50)
            )
        )
        answers = [await harness.answered(interaction) for interaction in interactions]
    texts = [answer_text(answer) for answer in answers]
    assert sum(text.startswith("Submitted") for text in texts) == 1
    assert sum("you can submit again in" in text for text in texts) == 49
    assert harness.emulator.counters.request_count("run") == 1


async def test_fifty_concurrent_submits_respect_the_quota(harness: Harness) -> None:
    """Fifty /imagine at once from one member with a quota of 3 start exactly three jobs."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running(user_cooldown_s=0, user_active_jobs=3):
        interactions = await asyncio.gather(
            *(
                harness.fake.invoke_command(harness.channel_id, harness.alice, "imagine", {"prompt": f"burst {index}"})
                for index in range(50)
            )
        )
        answers = [await harness.answered(interaction) for interaction in interactions]
    texts = [answer_text(answer) for answer in answers]
    assert sum(text.startswith("Submitted") for text in texts) == 3
    assert sum("(the limit is 3)" in text for text in texts) == 47
    assert harness.emulator.counters.request_count("run") == 3
