"""/cancel for members and moderators; /health and /denylist for moderators."""

from __future__ import annotations

import logging
import re
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from cogs.common import NO_PINGS, Services, guarded, reply, services_of
from cogs.i18n import render, tr
from cogs.jobs_ui import cancel_job, job_choice_label
from cogs.render import health_embed, server_health_embed
from jobs.health import ModelHealth
from jobs.text import N_, stored
from jobs.waiting import explain_wait
from storage.models import TrackedJob

log = logging.getLogger(__name__)

MAX_CHOICES = 25
ALL_MODELS = "*"
# /health shows at most this many models (Discord allows 10 embeds in a message).
MAX_HEALTH_MODELS = 10


# A deny-list change as the server's settings log keeps it (English, translated where `/settings log` shows it).
DENYLIST_ADDED = stored("deny-list: “{term}” refused")
DENYLIST_REMOVED = stored("deny-list: “{term}” allowed again")


class HealthRefresh(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"health:refresh:(?P<model>.{1,80})"
):
    """Refreshes a /health answer; works after a restart like every other button."""

    def __init__(self, model: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=tr("Refresh"),
                emoji="🔄",
                style=discord.ButtonStyle.secondary,
                custom_id=f"health:refresh:{model}",
            )
        )
        self.model = model

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> HealthRefresh:
        return cls(match["model"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        async def refresh() -> None:
            ctx = services_of(interaction.client)
            if not (ctx.is_moderator(interaction, "manage_guild") or ctx.is_operator(interaction)):
                await reply(interaction, tr("Only moderators can see the endpoint's health."))
                return
            await interaction.response.defer()
            embeds = await health_embeds(ctx, interaction, None if self.model == ALL_MODELS else self.model)
            await interaction.edit_original_response(embeds=embeds, view=health_view(self.model))

        await guarded(interaction, refresh)


def health_view(model: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(HealthRefresh(model))
    return view


async def health_embeds(
    ctx: Services, interaction: discord.Interaction[Any], model_name: str | None
) -> list[discord.Embed]:
    """The operator sees every server's view of the endpoints; a server's moderators see the workers of the
    endpoints their server uses and their own server's jobs (see the README)."""
    models = [ctx.catalog.get(model_name)] if model_name else list(ctx.catalog.models)[:MAX_HEALTH_MODELS]
    rows = await ctx.service.endpoint_health(models)
    if ctx.is_operator(interaction):
        return await _operator_embeds(ctx, rows)
    return await _server_embeds(ctx, interaction, rows)


async def _server_embeds(
    ctx: Services, interaction: discord.Interaction[Any], rows: list[ModelHealth]
) -> list[discord.Embed]:
    mine: list[TrackedJob] | None
    try:
        # The jobs this moderator may act on: their server's, not the private ones.
        mine = await ctx.service.server_jobs(ctx.actor_of(interaction, "manage_guild"))
    except Exception:
        log.warning("health: this server's jobs could not be read", exc_info=True)
        mine = None
    return [
        server_health_embed(
            row.model,
            row.health,
            server_jobs=None if mine is None else [job for job in mine if job.endpoint_id == row.endpoint_id],
            wait_reason=explain_wait(row.health),
            unknown=row.unknown,
        )
        for row in rows
    ]


async def _operator_embeds(ctx: Services, rows: list[ModelHealth]) -> list[discord.Embed]:
    tracked = await ctx.service.tracking([row.endpoint_id for row in rows])
    embeds = []
    for row in rows:
        endpoint = tracked.endpoints.get(row.endpoint_id)
        embeds.append(
            health_embed(
                row.model,
                row.endpoint_id,
                row.health,
                active_jobs=endpoint.active_jobs if endpoint else 0,
                due_lag_ms=endpoint.due_lag_ms if endpoint else 0,
                last_error=endpoint.last_error if endpoint else None,
                redis_ok=tracked.redis_ok,
                wait_reason=explain_wait(row.health),
                unknown=row.unknown,
            )
        )
    return embeds


class Moderation(commands.Cog):
    """Cancelling jobs, the endpoint's health, and the prompt deny-list."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(HealthRefresh)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(HealthRefresh)

    @app_commands.command(
        name="cancel", description=locale_str("Cancel one of your jobs (moderators: this server's jobs)")
    )
    # Everywhere for the member's own jobs; another member's only for a moderator of a server that installed the bot.
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.describe(job=locale_str("The job to cancel"))
    async def cancel(self, interaction: discord.Interaction[Any], job: str) -> None:
        await cancel_job(self.services, interaction, job.strip())

    @cancel.autocomplete("job")
    async def job_choices(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        """Your active jobs; a moderator (or the operator) sees the ones of this server they may cancel."""
        jobs = await self.services.service.jobs_to_cancel(self.services.actor_of(interaction))
        wanted = current.lower()
        return [
            app_commands.Choice(name=job_choice_label(job), value=job.jid)
            for job in jobs
            if wanted in job.jid or wanted in str(job.request.get("prompt", "")).lower()
        ][:MAX_CHOICES]

    @app_commands.command(
        name="health", description=locale_str("Workers and queue of the image endpoints (moderators)")
    )
    @app_commands.describe(model=locale_str("One model (default: all)"))
    @app_commands.default_permissions(manage_guild=True)
    # A moderator's command: a server's install only (a member's own install gives no server to moderate); the
    # operator may use it in the bot's DM.
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def health(self, interaction: discord.Interaction[Any], model: str | None = None) -> None:
        self.services.require_moderator(interaction, "manage_guild", N_("see the endpoints' health"), operators=True)
        await interaction.response.defer(ephemeral=True, thinking=True)
        embeds = await health_embeds(self.services, interaction, model)
        await interaction.followup.send(embeds=embeds, view=health_view(model or ALL_MODELS), ephemeral=True)

    @health.autocomplete("model")
    async def health_model(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        names = self.services.catalog.names
        return [app_commands.Choice(name=name, value=name) for name in names if current.lower() in name.lower()][
            :MAX_CHOICES
        ]

    denylist = app_commands.Group(
        name="denylist",
        description=locale_str("Terms refused in prompts on this server (moderators)"),
        guild_only=True,
        # A server's own list: only where the server installed the bot.
        allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
        allowed_contexts=app_commands.AppCommandContext(guild=True),
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @denylist.command(name="add", description=locale_str("Refuse prompts containing a term"))
    async def denylist_add(self, interaction: discord.Interaction[Any], term: str) -> None:
        self.services.require_moderator(interaction, "manage_guild", N_("change the deny-list"))
        assert interaction.guild_id is not None
        try:
            added = await self.services.prompt_rules.refuse(interaction.guild_id, term)
        except ValueError as exc:
            await reply(interaction, tr("Not added: {reason}.", reason=render(str(exc))))
            return
        if added:
            # The deny-list stays /denylist; its changes go to the one log of the server's settings (/settings log).
            await self._log(interaction, DENYLIST_ADDED.format(term=term.strip()))
        if added:
            await reply(interaction, tr("“{term}” is now refused.", term=term.strip()))
        else:
            await reply(interaction, tr("That term was already refused."))

    @denylist.command(name="remove", description=locale_str("Allow a term again"))
    async def denylist_remove(self, interaction: discord.Interaction[Any], term: str) -> None:
        self.services.require_moderator(interaction, "manage_guild", N_("change the deny-list"))
        assert interaction.guild_id is not None
        removed = await self.services.prompt_rules.allow(interaction.guild_id, term)
        if removed:
            await self._log(interaction, DENYLIST_REMOVED.format(term=term.strip()))
        if removed:
            await reply(interaction, tr("“{term}” is allowed again.", term=term.strip()))
        else:
            await reply(interaction, tr("That term was not refused."))

    async def _log(self, interaction: discord.Interaction[Any], what: str) -> None:
        assert interaction.guild_id is not None
        await self.services.service.server_settings.record(interaction.guild_id, interaction.user.id, what)

    @denylist.command(name="show", description=locale_str("List the refused terms"))
    async def denylist_show(self, interaction: discord.Interaction[Any]) -> None:
        self.services.require_moderator(interaction, "manage_guild", N_("see the deny-list"))
        assert interaction.guild_id is not None
        terms = await self.services.prompt_rules.server_terms(interaction.guild_id)
        text = ", ".join(f"“{term}”" for term in terms) if terms else tr("No terms are refused on this server.")
        await interaction.response.send_message(text[:2000], ephemeral=True, allowed_mentions=NO_PINGS)


async def setup(bot: commands.Bot) -> None:
    """/cancel, /health and /denylist, with the bot's services (a `TypeError` names what is missing)."""
    await bot.add_cog(Moderation(bot, services_of(bot)))
