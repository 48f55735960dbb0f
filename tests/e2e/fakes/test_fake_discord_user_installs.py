"""User installs as unmodified discord.py sees them: a member's own install of the app reaches the bot in a guild it is
not in and in group DMs (their `context` and `authorizing_integration_owners`), the bot's channel routes there answer
as Discord's do, and a command reaches only the installs it was synced for."""

from __future__ import annotations

import discord
import pytest
from discord import app_commands

from tests.e2e.fakes.conftest import Place
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import ControlError, FakeDiscordDriver

MISSING_ACCESS = 50001


async def probe_for_user_installs(tiny: TinyBot) -> None:
    """/probe synced for both install kinds, in every context."""
    probe = tiny.tree.get_command("probe")
    assert isinstance(probe, app_commands.Command)
    probe.allowed_installs = app_commands.AppInstallationType(guild=True, user=True)
    probe.allowed_contexts = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True)
    await tiny.tree.sync()


async def outside_channel(driver: FakeDiscordDriver, place: Place) -> int:
    """#lounge of a guild that did not install the bot, owned by alice, who installed the app on her account."""
    guild = await driver.create_guild("No Bot Club", owner_id=place.member_id, bot_installed=False)
    channel = await driver.create_channel(guild["id"], "lounge")
    await driver.install_app(place.member_id)
    return channel["id"]


async def probe_in(
    driver: FakeDiscordDriver, tiny: TinyBot, channel_id: int, user_id: int
) -> tuple[discord.Interaction, object]:
    """/probe in the channel as the user; the interaction as discord.py built it, and the probe's outcome."""
    seen: list[discord.Interaction] = []

    async def keep(interaction: discord.Interaction) -> object:
        seen.append(interaction)
        await interaction.response.send_message("ok", ephemeral=True)
        return None

    tiny.probes.probe = keep
    await driver.invoke_command(channel_id, user_id, "probe")
    outcome = await tiny.probes.next()
    return seen[0], outcome


async def test_a_user_install_in_a_guild_without_the_bot_is_a_user_integration(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """In a guild without the bot the interaction has context 0 and only the member as its authorizing owner."""
    await probe_for_user_installs(tiny)
    channel_id = await outside_channel(driver, place)
    interaction, _ = await probe_in(driver, tiny, channel_id, place.member_id)
    assert interaction.context.guild
    assert interaction.is_user_integration()
    assert not interaction.is_guild_integration()
    assert interaction.guild_id is not None


async def test_the_bots_channel_routes_in_a_guild_without_it_answer_missing_access(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """The bot cannot post in a channel of a guild it is not in: 403 Missing Access, as on Discord."""
    channel_id = await outside_channel(driver, place)
    with pytest.raises(discord.Forbidden) as refused:
        await tiny.http.send_message(channel_id, params=discord.http.handle_message_parameters(content="hi"))
    assert refused.value.code == MISSING_ACCESS


async def test_a_group_dm_interaction_has_the_private_channel_context(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """/probe from a group DM the bot is not in: context 2, no guild, the channel a group DM."""
    await probe_for_user_installs(tiny)
    other = await driver.create_member(place.guild_id, "bob")
    await driver.install_app(place.member_id)
    group = await driver.create_private_channel([place.member_id, other["user_id"]])
    interaction, _ = await probe_in(driver, tiny, group["id"], place.member_id)
    assert interaction.context.private_channel
    assert interaction.guild_id is None
    assert isinstance(interaction.channel, discord.GroupChannel)
    assert interaction.is_user_integration()


async def test_a_command_synced_for_server_installs_only_does_not_reach_a_user_install(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """/probe without user installs in its integration_types is not offered in a guild without the bot."""
    channel_id = await outside_channel(driver, place)
    with pytest.raises(ControlError, match="not installed where"):
        await driver.invoke_command(channel_id, place.member_id, "probe")


async def test_the_synced_commands_show_their_install_kinds_and_contexts(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """What the bot synced is kept: /probe's integration_types and contexts."""
    await probe_for_user_installs(tiny)
    commands = {command["name"]: command for command in await driver.commands()}
    assert (commands["probe"]["integration_types"], commands["probe"]["contexts"]) == ([0, 1], [0, 1, 2])


async def test_the_bot_may_dm_a_user_who_installed_the_app_without_sharing_a_guild(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A user in no guild with the bot but with the app on their account gets the bot's DM."""
    guild = await driver.create_guild("No Bot Club", bot_installed=False)
    await driver.install_app(guild["owner_id"])
    user = await tiny.fetch_user(guild["owner_id"])
    message = await (await user.create_dm()).send("your images")
    assert message.content == "your images"
