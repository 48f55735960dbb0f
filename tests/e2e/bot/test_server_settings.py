"""A server's /settings through the real bot: its default model, the models it offers, its limits under the
operator's caps, a default negative prompt that reaches RunPod, whether results ping their owner, who may see and
change them, and their log; applied to the next job, after a restart and by another process's core."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from jobs.presets import RequestOptions
from jobs.service import QuotaExceededError
from runpod_bot.core import Role, build_core
from storage.models import Requester
from tests.e2e.bot.conftest import Harness, answer_text, buttons, delivered, final_message, results
from tests.fakes.discord.views import InteractionView


def two_models(directory: Path, harness: Harness) -> Path:
    """xl (sdxl, the bot's default) and flux, both on the emulator."""
    path = directory / "models.toml"
    endpoint = harness.emulator.endpoint_id
    path.write_text(
        f'[[models]]\nname = "xl"\nendpoint_id = "{endpoint}"\npreset = "sdxl"\ndefault = true\n\n'
        f'[[models]]\nname = "flux"\nendpoint_id = "{endpoint}"\npreset = "flux"\n'
    )
    return path


async def settings_answer(
    harness: Harness, command: str, user_id: int | None = None, channel_id: int | None = None, **options: Any
) -> InteractionView:
    interaction = await harness.fake.invoke_command(
        channel_id or harness.channel_id, user_id or harness.mod, f"settings {command}", options
    )
    return await harness.answered(interaction)


async def settings(
    harness: Harness, command: str, user_id: int | None = None, channel_id: int | None = None, **options: Any
) -> str:
    """A /settings subcommand (the moderator's, in #general, unless told); what they read."""
    return answer_text(await settings_answer(harness, command, user_id, channel_id, **options))


async def panel(harness: Harness, user_id: int | None = None, channel_id: int | None = None) -> str:
    """/settings show, as the member reads its panel."""
    answered = await settings_answer(harness, "show", user_id, channel_id)
    parts = [answer_text(answered)]
    response = answered["response"]
    for embed in (response["data"] or {}).get("embeds", []) if response is not None else []:
        parts += [str(embed.get("title") or ""), str(embed.get("description") or "")]
        parts += [f"{field['name']}: {field['value']}" for field in embed.get("fields", [])]
    return "\n".join(part for part in parts if part)


async def submitted_job_input(harness: Harness, answered: InteractionView) -> dict[str, Any]:
    """What RunPod received for the job an /imagine answer links."""
    job = await harness.redis_jobs(await harness.jid_of(answered))
    assert job.runpod_id is not None
    received = harness.emulator.engine.job(job.runpod_id)
    assert received is not None
    return dict(received.input)


async def test_default_model_is_used_when_imagine_names_none(harness: Harness, tmp_path: Path) -> None:
    """After /settings model flux, an /imagine without a model runs on flux, and the panel says it is the server's."""
    async with harness.running(models_file=two_models(tmp_path, harness)):
        changed = await settings(harness, "model", model="flux")
        answered = await harness.imagine(prompt="a red kite")
        shown = await panel(harness)
    assert "default model: xl → flux" in changed
    job = await harness.redis_jobs(await harness.jid_of(answered))
    assert job.model == "flux"
    assert "**flux** (this server's choice)" in shown


async def test_disallowed_model_is_refused_by_name_with_the_allowed_ones(harness: Harness, tmp_path: Path) -> None:
    """A model the server stopped offering is refused by name, naming the models it offers; nothing reaches RunPod."""
    async with harness.running(models_file=two_models(tmp_path, harness)):
        changed = await settings(harness, "models", model="flux", offered=False)
        answer = answer_text(await harness.imagine(prompt="a red kite", model="flux"))
    assert "flux no longer offered (offered: xl)" in changed
    assert "`model` flux is not offered on this server. Allowed: xl." in answer
    assert harness.emulator.counters.request_count("run") == 0


async def test_imagine_model_autocomplete_lists_only_the_offered_models(harness: Harness, tmp_path: Path) -> None:
    """/imagine's model choices are the models this server offers."""
    async with harness.running(models_file=two_models(tmp_path, harness)):
        before = await harness.fake.autocomplete_choices(
            harness.channel_id, harness.alice, "imagine", {"prompt": "x", "model": ""}, "model"
        )
        await settings(harness, "models", model="xl", offered=False)
        after = await harness.fake.autocomplete_choices(
            harness.channel_id, harness.alice, "imagine", {"prompt": "x", "model": ""}, "model"
        )
    assert [choice["value"] for choice in before] == ["xl", "flux"]
    assert [choice["value"] for choice in after] == ["flux"]


async def test_default_negative_prompt_reaches_runpod_after_the_members_own(harness: Harness) -> None:
    """The server's default negative prompt is added after the member's negative prompt in RunPod's input."""
    async with harness.running():
        changed = await settings(harness, "negative", text="blurry, watermark")
        answered = await harness.imagine(prompt="a red kite", negative="text")
        received = await submitted_job_input(harness, answered)
    assert "default negative prompt: “blurry, watermark”" in changed
    assert received["negative_prompt"] == "text, blurry, watermark"


async def test_reroll_adds_the_default_negative_prompt_once(harness: Harness) -> None:
    """A Re-roll of a job starts from the member's own negative prompt: the server's is in RunPod's input once."""
    async with harness.running():
        await settings(harness, "negative", text="blurry")
        await harness.imagine(prompt="a red kite", negative="text")
        (result,) = results(await harness.wait_for_messages(delivered))
        reroll = next(custom_id for custom_id in buttons(result) if custom_id.startswith("job:reroll:"))
        answered = await harness.answered(await harness.fake.click_button(result["id"], reroll, harness.alice))
        received = await submitted_job_input(harness, answered)
    assert received["negative_prompt"] == "text, blurry"


async def test_default_negative_prompt_with_a_denied_term_is_refused(harness: Harness) -> None:
    """A default negative prompt holding a deny-list term is refused, naming the term; nothing is set."""
    async with harness.running():
        await harness.answered(
            await harness.fake.invoke_command(harness.channel_id, harness.mod, "denylist add", {"term": "gore"})
        )
        refused = await settings(harness, "negative", text="no Gore please")
        shown = await panel(harness)
    assert refused.startswith("Not changed:")
    assert "“gore”" in refused
    assert "Allowed: a text without the deny-list's terms." in refused
    assert "Default negative prompt: none" in shown


async def test_a_limit_above_the_operators_cap_is_refused_naming_the_cap(harness: Harness) -> None:
    """Active jobs per member above USER_ACTIVE_JOBS is refused with the cap and the allowed range; nothing changes."""
    async with harness.running(user_active_jobs=3):
        refused = await settings(harness, "limits", member_jobs=5)
        shown = await panel(harness)
    assert "Not changed: Active jobs per member: 5 is above the bot's cap of 3. Allowed: 1 to 3." in refused
    assert "Active jobs per member: **3** (the bot's: at most 3)" in shown


async def test_a_cooldown_shorter_than_the_operators_is_refused(harness: Harness) -> None:
    """A server may lengthen the cooldown, never shorten it below USER_COOLDOWN_S: the refusal names the bot's."""
    async with harness.running(user_cooldown_s=10):
        refused = await settings(harness, "limits", cooldown=5)
    assert "shorter than the bot's cooldown of 10 s" in refused
    assert "Allowed: 10 to 86400 seconds." in refused


async def test_member_limit_applies_to_the_next_job(harness: Harness) -> None:
    """With one active job per member, a member's second job while the first waits is refused, saying the limit."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running():
        await settings(harness, "limits", member_jobs=1)
        first = answer_text(await harness.imagine(prompt="first"))
        second = answer_text(await harness.imagine(prompt="second"))
    assert first.startswith("Submitted"), first
    assert "1 job in progress in this server (it allows 1 per member)" in second
    assert harness.emulator.counters.request_count("run") == 1


async def test_server_cooldown_applies_to_the_next_job(harness: Harness) -> None:
    """A server's cooldown of a minute refuses the member's next job at once, saying how long to wait."""
    async with harness.running():
        await settings(harness, "limits", cooldown=60)
        await harness.imagine(prompt="first")
        second = answer_text(await harness.imagine(prompt="second"))
    assert "you can submit again in 60 s" in second or "you can submit again in 59 s" in second


async def test_a_lowered_operator_cap_wins_over_the_servers_setting(harness: Harness) -> None:
    """A server's 4 active jobs per member, after the operator lowers the cap to 2: 2 applies, and the panel says so."""
    async with harness.running(user_active_jobs=5):
        await settings(harness, "limits", member_jobs=4)
    async with harness.running(user_active_jobs=2):
        shown = await panel(harness)
    assert "Active jobs per member: **2** (this server chose 4; the bot's: at most 2)" in shown
    assert "above the bot's cap of 2, so 2 applies" in shown


async def test_settings_survive_a_restart(harness: Harness, tmp_path: Path) -> None:
    """Settings made before a restart apply to the first job after it."""
    models = two_models(tmp_path, harness)
    async with harness.running(models_file=models):
        await settings(harness, "model", model="flux")
        await settings(harness, "negative", text="blurry")
    async with harness.running(models_file=models):
        answered = await harness.imagine(prompt="a red kite")
        received = await submitted_job_input(harness, answered)
        job = await harness.redis_jobs(await harness.jid_of(answered))
    assert job.model == "flux"
    assert received["negative_prompt"] == "blurry"


async def test_settings_apply_in_another_process_on_the_same_redis(harness: Harness, tmp_path: Path) -> None:
    """A second core on the same Redis (as another bot process builds it) submits under the settings the first
    process's moderator just made: the server's model, its negative prompt, and its member limit."""
    harness.emulator.update_scenario(workers=0)
    models = two_models(tmp_path, harness)
    async with harness.running(models_file=models):
        await settings(harness, "model", model="flux")
        await settings(harness, "negative", text="blurry")
        await settings(harness, "limits", member_jobs=1)
        other = build_core(harness.settings.model_copy(update={"models_file": models}), harness.redis, harness.http)
        requester = Requester(user_id=harness.bob, guild_id=harness.guild_id, channel_id=harness.channel_id)
        submitted = await other.service.submit(RequestOptions(prompt="a red kite"), requester)
        with pytest.raises(QuotaExceededError) as refused:
            await other.service.submit(RequestOptions(prompt="another kite"), requester)
    assert submitted.job.model == "flux"
    assert submitted.request.negative_prompt == "blurry"
    assert (refused.value.scope, refused.value.limit) == ("member", 1)


async def test_results_do_not_ping_their_owner_when_mentions_are_off(harness: Harness) -> None:
    """With mentions off, a result delivered by a separate poller process names its owner and pings nobody."""
    async with harness.running(Role.GATEWAY):
        await settings(harness, "mentions", ping=False)
        await harness.imagine(prompt="a lantern")
        async with harness.running(Role.POLLER):
            (result,) = results(await harness.wait_for_messages(delivered))
    assert result["pings"]["users"] == []
    assert f"<@{harness.alice}>" in str(result["components"])


async def test_a_member_without_the_permission_is_refused(harness: Harness) -> None:
    """A member without Manage Server or the moderator role can neither see nor change the settings."""
    async with harness.running():
        shown = await settings(harness, "show", user_id=harness.alice)
        changed = await settings(harness, "model", user_id=harness.alice, model="default")
        log_answer = await settings(harness, "log")
    assert "Only moderators can see or change this server's settings" in shown
    assert "Only moderators can see or change this server's settings" in changed
    assert "No setting of this server has been changed yet." in log_answer


async def test_a_member_with_the_moderator_role_may_change_them(harness: Harness) -> None:
    """A member whose only standing is MODERATOR_ROLE_ID (no Manage Server) changes the settings."""
    role = await harness.fake.create_role(harness.guild_id, "helpers")
    helper = (await harness.fake.create_member(harness.guild_id, "helper", role_ids=[role["id"]]))["user_id"]
    async with harness.running(moderator_role_id=role["id"]):
        changed = await settings(harness, "mentions", user_id=helper, ping=False)
    assert set(changed.splitlines()) == {"Changed: results ping their owner: off."}


async def test_another_servers_moderator_cannot_see_or_change_these_settings(harness: Harness) -> None:
    """Bob owns another server: here he is refused; there, his changes stay in his server and this one's jobs do not
    get them."""
    other = await harness.other_guild(owner_id=harness.bob)
    async with harness.running():
        inside_show = await settings(harness, "show", user_id=harness.bob)
        inside_change = await settings(harness, "negative", user_id=harness.bob, text="bob's")
        outside = await settings(harness, "negative", user_id=harness.bob, channel_id=other.channel_id, text="bob's")
        theirs = await panel(harness, harness.bob, other.channel_id)
        ours = await panel(harness)
        answered = await harness.imagine(prompt="a red kite")
        received = await submitted_job_input(harness, answered)
    assert "Only moderators" in inside_show
    assert "Only moderators" in inside_change
    assert "Changed: default negative prompt: “bob's”" in outside
    assert "Default negative prompt: “bob's”" in theirs
    assert "Default negative prompt: none" in ours
    assert "negative_prompt" not in received or "bob's" not in received["negative_prompt"]


# Every /settings change (the command and its options), as another server's moderator would try it.
EVERY_CHANGE: list[tuple[str, dict[str, Any]]] = [
    ("model", {"model": "default"}),
    ("models", {"model": "default", "offered": True}),
    ("limits", {"member_jobs": 1, "server_jobs": 2, "cooldown": 30}),
    ("budget", {"member_daily": 120}),
    ("negative", {"text": "bob's"}),
    ("mentions", {"ping": False}),
    ("thread", {"on": True}),
    ("nsfw mode", {"mode": "never"}),
    ("nsfw add", {"term": "spicy"}),
    ("nsfw remove", {"term": "spicy"}),
    ("reset", {"setting": "all"}),
]


async def test_no_settings_change_reaches_this_server_from_another_servers_moderator(harness: Harness) -> None:
    """Each /settings change by another server's owner is refused here and, made in his server, changes only his."""
    other = await harness.other_guild(owner_id=harness.bob)
    async with harness.running(member_daily_gpu_s=600):
        ours_before = await panel(harness)
        inside = {
            command: await settings(harness, command, harness.bob, **options) for command, options in EVERY_CHANGE
        }
        outside = {
            command: await settings(harness, command, harness.bob, other.channel_id, **options)
            for command, options in EVERY_CHANGE
        }
        ours_after = await panel(harness)
        our_log = await settings(harness, "log")
        their_log = final_message(await settings_answer(harness, "log", harness.bob, other.channel_id))
    refused = "Only moderators can see or change this server's settings"
    assert {command: refused in answer for command, answer in inside.items()} == dict.fromkeys(inside, True)
    # In his own server each is his to make ("models" found the model offered already: nothing to change).
    assert [command for command, answer in outside.items() if not answer.startswith("Changed: ")] == ["models"]
    assert "default is already offered on this server." in outside["models"]
    # The log too: a change that leaked and was then reset by the leaked "reset" would leave the panel as it was.
    assert ours_after == ours_before
    assert "No setting of this server has been changed yet." in our_log
    their_changes = their_log["embeds"][0]["description"]
    assert "results ping their owner: off" in their_changes
    assert "NSFW term “spicy” added" in their_changes


async def test_changes_are_logged_with_who_and_when(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """/settings log lists each change, newest first, with who made it and when; the bot's log has them too."""
    caplog.set_level(logging.INFO, logger="jobs.server_settings")
    async with harness.running():
        await settings(harness, "mentions", ping=False)
        await settings(harness, "limits", server_jobs=4)
        await harness.answered(
            await harness.fake.invoke_command(harness.channel_id, harness.mod, "denylist add", {"term": "gore"})
        )
        answered = await settings_answer(harness, "log")
    lines = final_message(answered)["embeds"][0]["description"].splitlines()
    assert [line.split(f"<@{harness.mod}>: ", 1)[-1] for line in lines] == [
        "deny-list: “gore” refused",
        "limits: active jobs for the server 20 → 4",
        "results ping their owner: off",
    ]
    assert all(line.startswith("<t:") and f"<@{harness.mod}>" in line for line in lines)
    assert f"server {harness.guild_id}: settings changed by user {harness.mod}: results ping their owner: off" in (
        caplog.text
    )


async def test_reset_puts_a_section_back_to_the_bots(harness: Harness, tmp_path: Path) -> None:
    """/settings reset models offers every model again; the default model the server chose stays."""
    async with harness.running(models_file=two_models(tmp_path, harness)):
        await settings(harness, "model", model="flux")
        await settings(harness, "models", model="xl", offered=False)
        reset = await settings(harness, "reset", setting="models")
        shown = await panel(harness)
    assert "Changed: reset: models to the bot's." in reset
    assert "Models offered: xl, flux (all of the bot's)" in shown
    assert "Default model: **flux** (this server's choice)" in shown


async def test_the_panel_shows_budgets_and_nsfw_rules_and_reset_puts_them_back(harness: Harness) -> None:
    """/settings show lists the server's budget under the operator's cap and its NSFW rules; reset puts each back."""
    async with harness.running(member_daily_gpu_s=600):
        await settings(harness, "budget", member_daily=120)
        await settings(harness, "nsfw mode", mode="never")
        await settings(harness, "nsfw add", term="spicy")
        chosen = await panel(harness)
        await settings(harness, "reset", setting="budget")
        await settings(harness, "reset", setting="nsfw")
        reset = await panel(harness)
    assert "GPU budget per member per day: **120 s** (this server chose 120 s; the bot's: at most 600 s)" in chosen
    assert "GPU budget for the server per month: **no budget** (the bot's: none)" in chosen
    assert "NSFW prompts: **never (in no channel)**" in chosen
    assert "this server's own: “spicy”" in chosen
    assert "GPU budget per member per day: **600 s** (the bot's: at most 600 s)" in reset
    assert "NSFW prompts: **only in age-restricted channels**" in reset
    assert "this server's own: none" in reset
