"""/jobs: a member's recent jobs, with their state and a link to each card."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import NO_PINGS, is_moderator, jump_url, reply, services
from cogs.render import jobs_embed

RECENT = 10


class History(commands.Cog):
    """The /jobs command."""

    @app_commands.command(name="jobs", description="Your recent jobs (moderators: another member's)")
    @app_commands.describe(member="Whose jobs (moderators only)")
    async def jobs(self, interaction: discord.Interaction[Any], member: discord.User | None = None) -> None:
        target = member or interaction.user
        if target.id != interaction.user.id and not is_moderator(interaction):
            await reply(interaction, "Only moderators can see another member's jobs.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = await services(interaction).store.user_recent(target.id, limit=RECENT)
        if interaction.guild_id is not None:
            # Private jobs and other servers' jobs are not shown here.
            jobs = [job for job in jobs if job.guild_id == interaction.guild_id and not job.extra.get("private")]
        links = [jump_url(job.guild_id, job.channel_id, job.card_message_id) for job in jobs]
        title = "Your recent jobs" if target.id == interaction.user.id else f"Recent jobs of {target.display_name}"
        await interaction.followup.send(embed=jobs_embed(title, jobs, links), ephemeral=True, allowed_mentions=NO_PINGS)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(History())
