"""/jobs: a member's recent jobs, with their state and a link to each one's message (its result, or its card)."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from cogs.common import NO_PINGS, Services, job_link, reply, services_of
from cogs.i18n import tr
from cogs.render import jobs_embed

RECENT = 10
# How many of a member's jobs are read to find the RECENT ones shown here (others may be another server's).
SCANNED = 50


class History(commands.Cog):
    """The /jobs command."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @app_commands.command(name="jobs", description=locale_str("Your recent jobs (moderators: another member's, here)"))
    # Everywhere; another member's jobs only for a moderator of a server that installed the bot (`server_of`).
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.describe(member=locale_str("Whose jobs (moderators only: their jobs in this server)"))
    async def jobs(self, interaction: discord.Interaction[Any], member: discord.User | None = None) -> None:
        target = member or interaction.user
        actor = self.services.actor_of(interaction)
        if target.id != actor.user_id and not (actor.moderator or actor.operator):
            await reply(
                interaction,
                tr("Only moderators can see another member's jobs. (A moderator sees those of their own server.)"),
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        # A moderator sees the member's jobs of this server, a member in a server theirs of that server (neither sees
        # private ones); the operator sees every server's.
        jobs = await self.services.service.recent_jobs(actor, target.id, RECENT, SCANNED)
        links = [job_link(job) for job in jobs]
        if target.id == interaction.user.id:
            title = tr("Your recent jobs")
        else:
            title = tr("Recent jobs of {member}", member=target.display_name)
        await interaction.followup.send(embed=jobs_embed(title, jobs, links), ephemeral=True, allowed_mentions=NO_PINGS)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(History(services_of(bot)))
