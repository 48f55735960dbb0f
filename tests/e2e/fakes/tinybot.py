"""A tiny slash-command bot on the unmodified discord.py client, used to prove the fake Discord behaves like Discord.

`/probe` runs whatever coroutine the test installed and reports its result or the exception discord.py raised,
so each test can exercise one rule from inside a real interaction.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

Probe = Callable[[discord.Interaction], Awaitable[object]]

SIZES = ("512x512", "768x768", "1024x1024", "1024x768", "768x1024")


@dataclass
class Outcome:
    """What a probe did: its return value, or the exception discord.py raised."""

    value: object = None
    error: BaseException | None = None


class Probes:
    """The coroutine `/probe` runs next, and the outcomes of the probes run so far."""

    def __init__(self) -> None:
        self.probe: Probe | None = None
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()

    async def run(self, interaction: discord.Interaction) -> None:
        assert self.probe is not None, "install a probe before invoking /probe"
        try:
            value = await self.probe(interaction)
        except Exception as exc:
            self._outcomes.put_nowait(Outcome(error=exc))
        else:
            self._outcomes.put_nowait(Outcome(value=value))

    async def next(self, *, within: float = 5.0) -> Outcome:
        return await asyncio.wait_for(self._outcomes.get(), within)


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"job:cancel:(?P<id>[0-9a-z]+)"
):
    """The job card's Cancel button: the job id lives in the custom_id, so it works after a restart."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"job:cancel:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(match["id"])

    async def callback(self, interaction: discord.Interaction) -> Any:
        if isinstance(interaction.client, TinyBot):
            interaction.client.clicks.append(interaction)
        await interaction.response.edit_message(content=f"job {self.job_id} cancelled", view=None)


class SizeMenu(discord.ui.Select[discord.ui.View]):
    def __init__(self) -> None:
        super().__init__(custom_id="menu:size", options=[discord.SelectOption(label=size) for size in SIZES[:3]])

    async def callback(self, interaction: discord.Interaction) -> Any:
        await interaction.response.send_message(f"chose {', '.join(self.values)}", ephemeral=True)


def install_commands(tree: app_commands.CommandTree[Any], probes: Probes) -> None:
    """The tiny bot's slash commands."""

    @tree.command(description="Repeat a text")
    async def echo(interaction: discord.Interaction, text: str, count: int = 1, loud: bool = False) -> None:
        await interaction.response.send_message(f"{text!r} {count!r} {loud!r}")

    @tree.command(description="Think, then answer")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("done thinking")

    @tree.command(description="Answer, then add a followup")
    async def twice(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("first")
        await interaction.followup.send("second")

    @tree.command(description="A reply only the caller sees")
    async def secret(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("for your eyes only", ephemeral=True)

    @tree.command(description="Post a job card with a Cancel button")
    async def card(interaction: discord.Interaction, job: str) -> None:
        view = discord.ui.View(timeout=None)
        view.add_item(CancelButton(job))
        await interaction.response.send_message(f"job {job} queued", view=view)

    @tree.command(description="Pick an image size")
    async def pick(interaction: discord.Interaction, size: str) -> None:
        await interaction.response.send_message(f"size {size}")

    @pick.autocomplete("size")
    async def pick_size(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=size, value=size) for size in SIZES if size.startswith(current)]

    @tree.command(description="Offer a size menu")
    async def menu(interaction: discord.Interaction) -> None:
        view = discord.ui.View(timeout=60)
        view.add_item(SizeMenu())
        await interaction.response.send_message("pick a size", view=view)

    @tree.command(description="Run the test's probe")
    async def probe(interaction: discord.Interaction) -> None:
        await probes.run(interaction)


def tiny_intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    return intents


class TinyBot(commands.Bot):
    """The tiny bot: syncs its commands on start, counts its resumes and keeps the Cancel clicks it handled."""

    def __init__(self, *, sync: bool = True, dev_guild_id: int | None = None) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=tiny_intents(), guild_ready_timeout=0.05)
        self.probes = Probes()
        self.clicks: list[discord.Interaction] = []
        self.sync_commands = sync
        self.dev_guild_id = dev_guild_id
        self.resumed = asyncio.Event()

    async def setup_hook(self) -> None:
        install_commands(self.tree, self.probes)
        self.add_dynamic_items(CancelButton)
        if self.dev_guild_id is not None:
            # What the real bot does with DEV_GUILD_ID: the global commands, copied to one guild and synced there.
            guild = discord.Object(id=self.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        elif self.sync_commands:
            await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py waits 5 s before every IDENTIFY but the first; the fake has no identify rate limit.
        return None

    async def on_resumed(self) -> None:
        self.resumed.set()


class TinyShardedBot(commands.AutoShardedBot):
    """The tiny bot's commands on an AutoShardedBot, which asks `GET /gateway/bot` for its shard count."""

    def __init__(self) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=tiny_intents(), guild_ready_timeout=0.05)
        self.probes = Probes()

    async def setup_hook(self) -> None:
        install_commands(self.tree, self.probes)
        await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None
