"""What a member sees when a job finishes: one message per job, at the bottom of the channel."""

from __future__ import annotations

from pathlib import Path

from jobs.presets import MAX_IMAGES_PER_JOB
from tests.e2e.bot.conftest import Harness, answer_text, buttons, cards, delivered, job_of, results, shown
from tests.waiting import wait_until

COMPONENTS_V2 = 1 << 15
MENTION_EVERYONE = 1 << 17


async def test_the_result_replaces_the_card_as_a_new_message_at_the_bottom(harness: Harness) -> None:
    """After the job, the channel holds its result alone: a new message (not a reply), and the card is gone."""
    async with harness.running():
        answer = await harness.imagine(prompt="a red fox in snow", count=2)
        jid = await harness.jid_of(answer)
        messages = await harness.wait_for_messages(delivered)
        everything = await harness.fake.channel_messages(harness.channel_id, include_deleted=True)
    (result,) = messages
    assert job_of(result) == jid
    assert result["message_reference"] is None
    assert len(result["attachments"]) == 2
    (card,) = [message for message in everything if message["deleted"]]
    assert job_of(card) == jid
    assert card["id"] < result["id"]


async def test_the_acknowledgement_is_short_and_links_the_card_without_the_job_id(harness: Harness) -> None:
    """The member's ephemeral answer to /imagine is one short line with a link, no hex job id."""
    async with harness.running():
        answer = await harness.imagine(prompt="a quiet harbour")
        jid = await harness.jid_of(answer)
        text = answer_text(answer)
    assert text.startswith("Submitted — https://discord.com/channels/")
    assert jid not in text
    assert len(text) < 120


async def test_a_delivery_retried_after_the_result_was_recorded_posts_nothing_twice_and_still_removes_the_card(
    harness: Harness,
) -> None:
    """The card's removal fails once after the result was posted and recorded: the retry posts nothing, removes it."""
    async with harness.running():
        harness.emulator.update_scenario(workers=0)
        answer = await harness.imagine(prompt="a stubborn card")
        jid = await harness.jid_of(answer)
        card_id = (await harness.redis_jobs(jid)).card_message_id
        await harness.fake.inject_error(
            status=500, message="injected outage", method="DELETE", path=rf"/messages/{card_id}$", count=1
        )
        harness.emulator.update_scenario(workers=2)

        async def committed() -> bool:
            return (await harness.redis_jobs(jid)).state.value == "DELIVERED"

        await wait_until(committed, timeout_s=15)
        messages = await harness.messages()
        deletes = [
            request
            for request in await harness.fake.requests()
            if request["method"] == "DELETE" and request["path"].endswith(f"/messages/{card_id}")
        ]
    assert [request["status"] for request in deletes][:2] == [500, 204]
    assert cards(messages) == []
    (result,) = results(messages)
    assert job_of(result) == jid
    assert (await harness.redis_jobs(jid)).result_message_ids == [result["id"]]


async def test_a_failed_job_keeps_its_card_with_the_outcome(harness: Harness) -> None:
    """A job that fails has its card as its one message, showing the failure."""
    async with harness.running():
        await harness.imagine(prompt="a doomed picture [emulator:fail-plain]")
        messages = await harness.wait_for_messages(
            lambda found: bool(cards(found)) and cards(found)[0]["embeds"][0]["title"] == "Failed"
        )
    assert results(messages) == []
    assert len(messages) == 1


async def test_the_result_notifies_its_owner_and_nobody_else(harness: Harness) -> None:
    """The result pings its owner alone, and says so in allowed_mentions (that user only, nothing parsed)."""
    async with harness.running():
        await harness.imagine(prompt="a lantern")
        (result,) = results(await harness.wait_for_messages(delivered))
    assert result["pings"]["users"] == [harness.alice]
    assert (result["pings"]["roles"], result["pings"]["everyone"]) == ([], False)
    allowed = result["allowed_mentions"]
    assert allowed is not None
    assert [int(user) for user in allowed.get("users", [])] == [harness.alice]
    assert not allowed.get("parse")
    assert not allowed.get("roles")


async def test_mentions_in_a_prompt_ping_nobody_but_the_owner(harness: Harness) -> None:
    """A prompt naming another member, a role and @everyone notifies only the job's owner with its result."""
    role = await harness.fake.create_role(harness.guild_id, "artists", mentionable=True)
    prompt = f"@everyone @here <@{harness.bob}> <@&{role['id']}> <@!{harness.mod}> a parade"
    # The bot may mention everyone here, so only allowed_mentions can keep @everyone quiet.
    granted = (await harness.fake.channel(harness.channel_id))["bot_permissions"]
    await harness.fake.set_bot_permissions(harness.channel_id, granted | MENTION_EVERYONE)
    async with harness.running():
        await harness.imagine(prompt=prompt)
        (result,) = results(await harness.wait_for_messages(delivered))
    assert result["pings"]["users"] == [harness.alice]
    assert result["pings"]["roles"] == []
    assert result["pings"]["everyone"] is False


async def test_the_result_is_one_gallery_message_with_the_prompt_and_its_parameters(harness: Harness) -> None:
    """One Components V2 message: the owner and the prompt (markdown shown as typed), model, size, steps,
    guidance and seed, every image in one gallery of its own attachments, and the job's buttons."""
    async with harness.running():
        await harness.imagine(prompt="a *bold* fox_in_snow", count=2, seed=42, steps=12, guidance=6.5)
        (result,) = results(await harness.wait_for_messages(delivered))
    jid = job_of(result)
    assert result["flags"] & COMPONENTS_V2
    assert (result["content"], result["embeds"]) == ("", [])
    names = [attachment["filename"] for attachment in result["attachments"]]
    assert len(names) == 2
    assert shown(result).splitlines() == [
        f"<@{harness.alice}> **a \\*bold\\* fox\\_in\\_snow**",
        "-# default · 1024×1024 · 12 steps · guidance 6.5 · seed 42 (one seed for the whole batch of 2)",
        f"gallery: {names[0]} (1024x1024) | {names[1]} (1024x1024)",
        "[U1] [U2]",
        "[V1] [V2]",
        "[Re-roll] [Remix] [Info] [Delete]",
    ]
    assert buttons(result)[-4:] == [f"job:reroll:{jid}", f"job:remix:{jid}", f"job:info:{jid}", f"job:delete:{jid}"]


async def test_a_model_with_the_most_images_a_message_holds_posts_them_all_in_one_gallery(
    harness: Harness, tmp_path: Path
) -> None:
    """A model allowing 10 images per job, and a worker returning 10: one message, ten gallery items, accepted by
    Discord's checks of Components V2 limits."""
    models = tmp_path / "models.toml"
    models.write_text(
        f'[[models]]\nname = "many"\nendpoint_id = "{harness.emulator.endpoint_id}"\npreset = "a1111"\n'
        f"limits = {{ max_count = {MAX_IMAGES_PER_JOB} }}\n"
    )
    harness.emulator.update_scenario(images=MAX_IMAGES_PER_JOB, image_size=64)
    async with harness.running(models_file=models):
        await harness.imagine(prompt="a crowd of foxes [emulator:a1111]", count=4)
        (result,) = results(await harness.wait_for_messages(delivered))
        errors = await harness.fake.requests(errors_only=True)
    assert len(result["attachments"]) == MAX_IMAGES_PER_JOB
    gallery = next(line for line in shown(result).splitlines() if line.startswith("gallery: "))
    assert gallery.count("|") == MAX_IMAGES_PER_JOB - 1
    assert errors == []
