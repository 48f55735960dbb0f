"""The app installed on a member's own account: /imagine where the bot is not in the channel (a server without the
bot, a group DM) answers through the interaction and sends the images by DM; what each command is synced for; the
operator's switch; and every server's jobs stay its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from runpod_emulator import Scenario
from tests.e2e.bot.conftest import (
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    Harness,
    answer_text,
    dm_results,
    final_message,
    results,
)
from tests.fakes.discord.views import InteractionView
from tests.plugins.emulator import fast_scenario
from tests.waiting import wait_until

# Every install kind (0 a server's, 1 a member's own) and every context (0 a server, 1 the bot's DM, 2 a group DM or
# a DM between others).
BOTH_INSTALLS = [0, 1]
EVERYWHERE = [0, 1, 2]
TOKEN_LIFETIME_S = 15 * 60


@pytest.fixture
def emulator_scenario() -> Scenario:
    # Long enough for a test to act (expire the token) between the card and the result.
    return fast_scenario(workers=4, execution_s=1.5, strict_limits=False)


@dataclass(frozen=True)
class Outside:
    """A server that did not install the bot, with a channel; `member` installed the app on their account."""

    guild_id: int
    channel_id: int
    member: int


async def outside_server(harness: Harness, member: int) -> Outside:
    """A server without the bot, owned by `member` (an Art Club member), who installed the app on their account."""
    guild = await harness.fake.create_guild("No Bot Club", owner_id=member, bot_installed=False)
    channel = await harness.fake.create_channel(guild["id"], "lounge")
    await harness.fake.install_app(member)
    return Outside(guild_id=guild["id"], channel_id=channel["id"], member=member)


async def card_title(harness: Harness, interaction_id: int) -> str:
    """The title of the card the member sees as the interaction's answer."""
    view = await harness.fake.interaction(interaction_id)
    message = final_message(view)
    return str(message["embeds"][0]["title"]) if message["embeds"] else ""


async def card_reads(harness: Harness, interaction_id: int, *words: str) -> None:
    """Wait until the interaction's card shows all of `words` (in its title or fields)."""

    async def check() -> bool:
        message = final_message(await harness.fake.interaction(interaction_id))
        shown = str(message["embeds"])
        return all(word in shown for word in words)

    await wait_until(check, timeout_s=20)


async def imagine(harness: Harness, channel_id: int, user_id: int, **options: Any) -> InteractionView:
    options.setdefault("prompt", "a lighthouse at dusk")
    return await harness.answered(await harness.fake.invoke_command(channel_id, user_id, "imagine", options))


async def synced(harness: Harness) -> dict[str, tuple[list[int] | None, list[int] | None]]:
    return {c["name"]: (c["integration_types"], c["contexts"]) for c in await harness.fake.commands()}


async def test_commands_are_synced_with_where_each_works(harness: Harness) -> None:
    """/imagine, /jobs, /usage and /cancel reach both install kinds everywhere; the moderators' commands only a
    server's install, never a group DM."""
    async with harness.running():
        commands = await synced(harness)
    for name in ("imagine", "jobs", "usage", "cancel"):
        assert commands[name] == (BOTH_INSTALLS, EVERYWHERE), name
    assert commands["health"] == ([0], [0, 1])
    assert commands["settings"] == ([0], [0])
    assert commands["denylist"] == ([0], [0])


async def test_user_installs_off_syncs_every_command_for_server_installs_only(harness: Harness) -> None:
    """USER_INSTALLS=false: no command reaches a member's own install or a group DM."""
    async with harness.running(user_installs=False):
        commands = await synced(harness)
    assert commands
    for name, (installs, contexts) in commands.items():
        assert installs == [0], name
        assert contexts is None or 2 not in contexts, name


async def test_imagine_in_a_server_without_the_bot_sends_the_images_by_dm(harness: Harness) -> None:
    """From a member's own install in a server without the bot: the first answer says the images come by DM, they
    arrive in the DM, and nothing is posted in the server's channel."""
    outside = await outside_server(harness, harness.alice)
    async with harness.running():
        answer = await imagine(harness, outside.channel_id, outside.member)
        assert "by direct message" in answer_text(answer)
        (result,) = await dm_results(harness, outside.member)
        await card_reads(harness, answer["id"], "Result")
    assert result["attachments"]
    assert await harness.fake.channel_messages(outside.channel_id) == []


async def test_imagine_in_a_group_dm_sends_the_images_by_dm(harness: Harness) -> None:
    """From a group DM the bot is not in: the card is the answer, the images come to the member's DM, nothing is
    posted in the group DM."""
    await harness.fake.install_app(harness.alice)
    group = await harness.fake.create_private_channel([harness.alice, harness.bob])
    async with harness.running():
        answer = await imagine(harness, group["id"], harness.alice)
        assert "by direct message" in answer_text(answer)
        (result,) = await dm_results(harness, harness.alice)
    assert result["attachments"]
    assert await harness.fake.channel_messages(group["id"]) == []


async def test_closed_dms_are_shown_on_the_card_while_the_token_lives(harness: Harness) -> None:
    """The member's DMs are closed: the job is recorded as not delivered, and the card says why."""
    outside = await outside_server(harness, harness.alice)
    await harness.fake.set_dms_open(harness.alice, False)
    async with harness.running():
        answer = await imagine(harness, outside.channel_id, outside.member)
        await card_reads(harness, answer["id"], "Not delivered", "50007")
    assert await harness.fake.channel_messages(outside.channel_id) == []


async def test_the_result_comes_by_dm_after_the_token_expired(harness: Harness) -> None:
    """The interaction's 15 minutes end before the job does: the card is no longer edited after Discord refuses the
    token once, and the images still come by DM, once."""
    outside = await outside_server(harness, harness.alice)
    async with harness.running():
        answer = await imagine(harness, outside.channel_id, outside.member)
        before = await card_title(harness, answer["id"])
        await harness.fake.advance_clock(TOKEN_LIFETIME_S + 60)
        results_in_dm = await dm_results(harness, outside.member)
        jid = str(results_in_dm[0]["components"]).split("job:")[1].split(":")[1].split("'")[0]
        await wait_until(lambda: _delivered(harness, jid), timeout_s=10)
    assert len(results_in_dm) == 1
    assert await card_title(harness, answer["id"]) == before
    # One edit met the dead token (401, 50027); none was tried after it.
    refused = [r for r in await harness.fake.requests(errors_only=True) if r["path"].startswith("/webhooks/")]
    assert [(r["status"], r["code"]) for r in refused] == [(401, 50027)]


async def _delivered(harness: Harness, jid: str) -> bool:
    job = await harness.redis_jobs(jid)
    return bool(job.result_message_ids)


async def test_user_installs_off_refuses_a_user_install_command_that_still_arrives(harness: Harness) -> None:
    """USER_INSTALLS=false, and a member's client still offers /imagine from their own install: refused in words,
    and no job starts."""
    outside = await outside_server(harness, harness.alice)
    async with harness.running(user_installs=False):
        await _offer_imagine_everywhere(harness)
        answer = await imagine(harness, outside.channel_id, outside.member)
    assert "turned off" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 0


async def _offer_imagine_everywhere(harness: Harness) -> None:
    """The command list as a member's client may still have it: /imagine for user installs too."""
    info = await harness.fake.info()
    commands = await harness.fake.commands()
    payload = []
    for command in commands:
        raw: dict[str, Any] = {
            "name": command["name"],
            "description": command["description"],
            "type": command["type"],
            "options": command["options"],
        }
        if command["name"] == "imagine":
            raw |= {"integration_types": BOTH_INSTALLS, "contexts": EVERYWHERE}
        payload.append(raw)
    url = f"{info['api_base_url']}/applications/{info['application_id']}/commands"
    async with harness.http.put(url, json=payload, headers={"Authorization": f"Bot {info['bot_token']}"}) as response:
        assert response.status == 200, await response.text()


async def test_a_user_install_job_is_not_the_servers_to_cancel(harness: Harness) -> None:
    """A member's job started through their own install in a server without the bot: that server's moderator cannot
    cancel it through the bot."""
    outside = await outside_server(harness, harness.bob)
    moderator = await harness.fake.create_member(
        outside.guild_id, "their-mod", permissions=MANAGE_MESSAGES | MANAGE_GUILD
    )
    await harness.fake.install_app(moderator["user_id"])
    async with harness.running():
        answer = await imagine(harness, outside.channel_id, outside.member)
        jid = str(final_message(answer)["embeds"][0]["footer"]["text"]).removeprefix("job ")
        refused = await harness.answered(
            await harness.fake.invoke_command(outside.channel_id, moderator["user_id"], "cancel", {"job": jid})
        )
    assert "only the member who started it can cancel it" in answer_text(refused)
    assert (await harness.redis_jobs(jid)).guild_id is None


async def test_member_limits_apply_through_a_user_install(harness: Harness) -> None:
    """The member's cooldown counts everywhere: a job in Art Club, then one from a group DM is refused for it."""
    await harness.fake.install_app(harness.alice)
    group = await harness.fake.create_private_channel([harness.alice, harness.bob])
    async with harness.running(user_cooldown_s=600):
        await harness.imagine(prompt="first, in the server")
        answer = await imagine(harness, group["id"], harness.alice, prompt="second, from a group DM")
    assert "submit again in" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 1


async def test_a_servers_settings_do_not_apply_where_it_has_not_installed_the_bot(harness: Harness) -> None:
    """Settings a server kept from when it had the bot (a default negative prompt) do not apply to a job asked there
    through a member's own install: the operator's defaults do."""
    outside = await outside_server(harness, harness.alice)
    async with harness.running() as bot:
        await bot.services.service.server_settings.set_negative(outside.guild_id, outside.member, "blurry, kept")
        answer = await imagine(harness, outside.channel_id, outside.member)
        jid = str(final_message(answer)["embeds"][0]["footer"]["text"]).removeprefix("job ")
        job = await harness.redis_jobs(jid)
    assert "kept" not in str(job.request.get("negative_prompt") or "")


async def test_a_server_that_installed_the_bot_gets_the_card_in_its_channel(harness: Harness) -> None:
    """A member with the app on their account, in a server that installed the bot too: the card is posted in the
    channel as always (the server's install carries the command)."""
    await harness.fake.install_app(harness.alice)
    async with harness.running():
        answer = await harness.imagine()
    assert "by direct message" not in answer_text(answer)
    assert answer_text(answer).startswith("Submitted")


async def test_a_restart_before_the_result_still_sends_it_by_dm(harness: Harness) -> None:
    """The bot that took the command stops before the job ends: the next process sends the images by DM, and the
    job was sent to RunPod once."""
    outside = await outside_server(harness, harness.alice)
    async with harness.running():
        await imagine(harness, outside.channel_id, outside.member)
    async with harness.running():
        (result,) = await dm_results(harness, outside.member)
    assert result["attachments"]
    assert harness.emulator.counters.request_count("run") == 1


async def test_an_nsfw_prompt_from_a_group_dm_is_refused(harness: Harness) -> None:
    """A group DM is never age-restricted: an NSFW prompt from there is refused in words, nothing runs."""
    await harness.fake.install_app(harness.alice)
    group = await harness.fake.create_private_channel([harness.alice, harness.bob])
    async with harness.running():
        answer = await imagine(harness, group["id"], harness.alice, prompt="a nude portrait in oils")
    assert "only in age-restricted channels" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 0


async def test_an_nsfw_prompt_in_an_age_restricted_channel_without_the_bot_is_submitted(harness: Harness) -> None:
    """Discord marks the channel of a server without the bot age-restricted (the interaction's channel says so): the
    operator's rule allows the prompt there."""
    outside = await outside_server(harness, harness.alice)
    channel = await harness.fake.create_channel(outside.guild_id, "after-dark", nsfw=True)
    async with harness.running():
        answer = await imagine(harness, channel["id"], outside.member, prompt="a nude portrait in oils")
    assert "by direct message" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 1


async def test_a_servers_moderator_cannot_list_a_members_jobs_there_without_the_bot(harness: Harness) -> None:
    """In a server without the bot, its moderator (with the app on their own account) cannot list another member's
    jobs through it."""
    outside = await outside_server(harness, harness.bob)
    moderator = await harness.fake.create_member(
        outside.guild_id, "their-mod", permissions=MANAGE_MESSAGES | MANAGE_GUILD
    )
    await harness.fake.install_app(moderator["user_id"])
    async with harness.running():
        await imagine(harness, outside.channel_id, outside.member)
        refused = await harness.answered(
            await harness.fake.invoke_command(
                outside.channel_id, moderator["user_id"], "jobs", {"member": outside.member}
            )
        )
    assert "Only moderators can see another member's jobs" in answer_text(refused)


async def test_the_cards_cancel_button_in_a_group_dm_cancels_and_the_card_says_so(harness: Harness) -> None:
    """Cancel on the card (the interaction's answer in a group DM) cancels the job; the card, edited through the
    interaction, shows it."""
    await harness.fake.install_app(harness.alice)
    group = await harness.fake.create_private_channel([harness.alice, harness.bob])
    async with harness.running():
        answer = await imagine(harness, group["id"], harness.alice)
        card = final_message(answer)
        jid = str(card["embeds"][0]["footer"]["text"]).removeprefix("job ")
        await harness.answered(await harness.fake.click_button(card["id"], f"job:cancel:{jid}", harness.alice))
        await card_reads(harness, answer["id"], "Cancelled")
    dm = await harness.fake.dm_channel(harness.alice)
    assert dm is None or results(await harness.fake.channel_messages(dm["id"])) == []


async def test_a_private_job_from_a_group_dm_puts_card_and_images_in_the_dm(harness: Harness) -> None:
    """`private` from a group DM: the card is posted in the member's DM with the bot, and the images follow there."""
    await harness.fake.install_app(harness.alice)
    group = await harness.fake.create_private_channel([harness.alice, harness.bob])
    async with harness.running():
        answer = await imagine(harness, group["id"], harness.alice, private=True)
        (result,) = await dm_results(harness, harness.alice)
    assert answer_text(answer).startswith("Submitted")
    assert result["attachments"]
    assert await harness.fake.channel_messages(group["id"]) == []
