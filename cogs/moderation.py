"""/cancel for members and moderators; /health and /denylist for moderators."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import NO_PINGS, actor_of, guarded, is_moderator, is_operator, reply, require_moderator, services
from cogs.jobs_ui import cancel_job, job_choice_label
from cogs.render import health_embed, server_health_embed
from jobs.access import may
from jobs.presets import ModelConfig
from jobs.waiting import HEALTH_UNKNOWN_LOCAL, explain_wait
from runpod_client.errors import NotSupportedError
from runpod_client.models import Health
from storage.models import TrackedJob

log = logging.getLogger(__name__)

MAX_CHOICES = 25
ALL_MODELS = "*"


class HealthRefresh(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"health:refresh:(?P<model>.{1,80})"
):
    """Refreshes a /health answer; works after a restart like every other button."""

    def __init__(self, model: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Refresh", emoji="🔄", style=discord.ButtonStyle.secondary, custom_id=f"health:refresh:{model}"
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
            if not (is_moderator(interaction, "manage_guild") or is_operator(interaction)):
                await reply(interaction, "Only moderators can see the endpoint's health.")
                return
            await interaction.response.defer()
            embeds = await health_embeds(interaction, None if self.model == ALL_MODELS else self.model)
            await interaction.edit_original_response(embeds=embeds, view=health_view(self.model))

        await guarded(interaction, refresh)


def health_view(model: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(HealthRefresh(model))
    return view


async def health_embeds(interaction: discord.Interaction[Any], model_name: str | None) -> list[discord.Embed]:
    """The operator sees every server's view of the endpoints; a server's moderators see the workers of the
    endpoints their server uses and their own server's jobs (see the README)."""
    ctx = services(interaction)
    models = [ctx.catalog.get(model_name)] if model_name else list(ctx.catalog.models)[:10]
    healths = await asyncio.gather(
        *(ctx.clients[model.endpoint_id].health() for model in models), return_exceptions=True
    )
    answers = [None if isinstance(health, BaseException) else health for health in healths]
    unknown = [HEALTH_UNKNOWN_LOCAL if isinstance(health, NotSupportedError) else None for health in healths]
    if is_operator(interaction):
        return await _operator_embeds(interaction, models, answers, unknown)
    return await _server_embeds(interaction, models, answers, unknown)


async def _server_embeds(
    interaction: discord.Interaction[Any],
    models: list[ModelConfig],
    answers: list[Health | None],
    unknown: list[str | None],
) -> list[discord.Embed]:
    ctx = services(interaction)
    actor = actor_of(interaction, "manage_guild")
    mine: list[TrackedJob] | None = []
    if interaction.guild_id is not None:
        try:
            # The jobs this moderator may act on: their server's, not the private ones.
            mine = [job for job in await ctx.store.guild_active(interaction.guild_id) if may(actor, job)]
        except Exception:
            log.warning("health: this server's jobs could not be read", exc_info=True)
            mine = None
    return [
        server_health_embed(
            model.name,
            answer,
            server_jobs=None if mine is None else [job for job in mine if job.endpoint_id == model.endpoint_id],
            wait_reason=explain_wait(answer),
            unknown=why,
        )
        for model, answer, why in zip(models, answers, unknown, strict=True)
    ]


async def _operator_embeds(
    interaction: discord.Interaction[Any],
    models: list[ModelConfig],
    answers: list[Health | None],
    unknown: list[str | None],
) -> list[discord.Embed]:
    ctx = services(interaction)
    try:
        await ctx.store.redis.ping()
        redis_ok = True
    except Exception:
        redis_ok = False
    embeds = []
    for model, answer, why in zip(models, answers, unknown, strict=True):
        embeds.append(
            health_embed(
                model.name,
                model.endpoint_id,
                answer,
                active_jobs=await ctx.store.scheduled_count(model.endpoint_id) if redis_ok else 0,
                due_lag_ms=await ctx.store.due_lag_ms(model.endpoint_id) if redis_ok else 0,
                last_error=await ctx.store.endpoint_error(model.endpoint_id) if redis_ok else None,
                redis_ok=redis_ok,
                wait_reason=explain_wait(answer),
                unknown=why,
            )
        )
    return embeds


async def job_choices(interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
    """Your active jobs; a moderator (or the operator) sees the ones of this server they may cancel."""
    ctx = services(interaction)
    actor = actor_of(interaction)
    jobs: list[TrackedJob]
    if interaction.guild_id is not None and (actor.moderator or actor.operator):
        jobs = [job for job in await ctx.store.guild_active(interaction.guild_id) if may(actor, job)]
    else:
        jobs = await ctx.store.user_active(interaction.user.id)
    wanted = current.lower()
    return [
        app_commands.Choice(name=job_choice_label(job), value=job.jid)
        for job in jobs
        if wanted in job.jid or wanted in str(job.request.get("prompt", "")).lower()
    ][:MAX_CHOICES]


class Moderation(commands.Cog):
    """Cancelling jobs, the endpoint's health, and the prompt deny-list."""

    @app_commands.command(name="cancel", description="Cancel one of your jobs (moderators: this server's jobs)")
    @app_commands.describe(job="The job to cancel")
    @app_commands.autocomplete(job=job_choices)
    async def cancel(self, interaction: discord.Interaction[Any], job: str) -> None:
        await cancel_job(interaction, job.strip())

    @app_commands.command(name="health", description="Workers and queue of the image endpoints (moderators)")
    @app_commands.describe(model="One model (default: all)")
    @app_commands.default_permissions(manage_guild=True)
    @require_moderator("manage_guild", "see the endpoints' health", operators=True)
    async def health(self, interaction: discord.Interaction[Any], model: str | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        embeds = await health_embeds(interaction, model)
        await interaction.followup.send(embeds=embeds, view=health_view(model or ALL_MODELS), ephemeral=True)

    @health.autocomplete("model")
    async def health_model(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        names = services(interaction).catalog.names
        return [app_commands.Choice(name=name, value=name) for name in names if current.lower() in name.lower()][
            :MAX_CHOICES
        ]

    denylist = app_commands.Group(
        name="denylist",
        description="Terms refused in prompts on this server (moderators)",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @denylist.command(name="add", description="Refuse prompts containing a term")
    @require_moderator("manage_guild", "change the deny-list")
    async def denylist_add(self, interaction: discord.Interaction[Any], term: str) -> None:
        assert interaction.guild_id is not None
        try:
            added = await services(interaction).guilds.add_denied(interaction.guild_id, term)
        except ValueError as exc:
            await reply(interaction, f"Not added: {exc}.")
            return
        await reply(interaction, f"“{term.strip()}” is now refused." if added else "That term was already refused.")

    @denylist.command(name="remove", description="Allow a term again")
    @require_moderator("manage_guild", "change the deny-list")
    async def denylist_remove(self, interaction: discord.Interaction[Any], term: str) -> None:
        assert interaction.guild_id is not None
        removed = await services(interaction).guilds.remove_denied(interaction.guild_id, term)
        await reply(interaction, f"“{term.strip()}” is allowed again." if removed else "That term was not refused.")

    @denylist.command(name="show", description="List the refused terms")
    @require_moderator("manage_guild", "see the deny-list")
    async def denylist_show(self, interaction: discord.Interaction[Any]) -> None:
        assert interaction.guild_id is not None
        terms = await services(interaction).guilds.denylist(interaction.guild_id)
        text = ", ".join(f"“{term}”" for term in terms) if terms else "No terms are refused on this server."
        await interaction.response.send_message(text[:2000], ephemeral=True, allowed_mentions=NO_PINGS)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Moderation())
