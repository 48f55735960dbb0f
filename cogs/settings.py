"""/settings: a server's own settings for image jobs, shown and changed by its moderators.

Subcommands rather than a panel of selects and forms: each change is one command whose options Discord checks and
completes itself (whole numbers within range, the models by autocomplete, a choice of sections), which reads the same
in every client and in the README, leaves nothing half-set between two interactions, and needs no state of its own;
a select could list only 25 models. `/settings show` is the panel: every setting, what applies and the operator's cap.
The core decides (`jobs.server_settings`); this cog only checks who asks and words the answers (a refused change,
`SettingRefusedError`, by the bot's one error handler: `cogs.common.explain`).
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from cogs.common import NO_PINGS, Services, reply, services_of
from cogs.i18n import render, tr, trn
from jobs.nsfw import DEFAULT_NSFW_TERMS, NsfwMode
from jobs.server_settings import (
    LOG_SHOWN,
    MAX_MEMBER_DAILY_GPU_S,
    MAX_NSFW_TERM_CHARS,
    MAX_SERVER_COOLDOWN_S,
    MAX_SERVER_JOBS,
    MAX_SERVER_MONTHLY_GPU_S,
    Outcome,
    Section,
    ServerRules,
    ServerSettingsService,
    SettingRefusedError,
    SettingsView,
    jobs_words,
    seconds_words,
)
from jobs.text import N_

log = logging.getLogger(__name__)

MAX_CHOICES = 25
# Discord's limits for an embed field's value and description (discord.md).
FIELD_LIMIT = 1024
DESCRIPTION_LIMIT = 4096
WHAT = N_("see or change this server's settings")


class ServerSettingsCog(commands.Cog, name="Settings"):
    """`/settings show|model|models|limits|budget|negative|mentions|nsfw|reset|log`, for Manage Server or the moderator
    role."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def core(self) -> ServerSettingsService:
        return self.services.service.server_settings

    settings = app_commands.Group(
        name="settings",
        description=locale_str("This server's settings for image jobs (moderators)"),
        guild_only=True,
        # A server's own settings: only where the server installed the bot.
        allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
        allowed_contexts=app_commands.AppCommandContext(guild=True),
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def _guild(self, interaction: discord.Interaction[Any]) -> int:
        """The server whose settings the member may see and change: the one they ask from, if they moderate it."""
        self.services.require_moderator(interaction, "manage_guild", WHAT, operators=True)
        if interaction.guild_id is None:  # pragma: no cover - guild_only: Discord offers it in servers only
            raise SettingRefusedError("settings belong to a server", "/settings in that server")
        return interaction.guild_id

    async def _change(self, interaction: discord.Interaction[Any], outcome: Outcome) -> None:
        what = render(outcome.what)
        text = tr("Changed: {what}.", what=what) if outcome.changed else what
        await reply(interaction, text)

    @settings.command(name="show", description=locale_str("Every setting of this server, and the bot's caps"))
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        guild_id = self._guild(interaction)
        view = await self.core.view(guild_id)
        terms = await self.services.prompt_rules.server_terms(guild_id)
        name = interaction.guild.name if interaction.guild is not None else tr("this server")
        await interaction.response.send_message(
            embed=settings_embed(name, view, len(terms)), ephemeral=True, allowed_mentions=NO_PINGS
        )

    @settings.command(name="model", description=locale_str("The model /imagine uses when none is named"))
    @app_commands.describe(
        model=locale_str("One of the models this server offers (leave it out: the bot's default again)")
    )
    async def model(self, interaction: discord.Interaction[Any], model: str | None = None) -> None:
        guild_id = self._guild(interaction)
        await self._change(interaction, await self.core.set_default_model(guild_id, interaction.user.id, model))

    @model.autocomplete("model")
    async def offered_models(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        rules = await self.core.rules(interaction.guild_id)
        return _model_choices(self.services, rules.allowed_models, current)

    @settings.command(name="models", description=locale_str("Offer a model on this server, or stop offering it"))
    @app_commands.describe(
        model=locale_str("One of the bot's models"), offered=locale_str("Whether members of this server may use it")
    )
    async def models(self, interaction: discord.Interaction[Any], model: str, offered: bool) -> None:
        guild_id = self._guild(interaction)
        await self._change(interaction, await self.core.allow_model(guild_id, interaction.user.id, model, offered))

    @models.autocomplete("model")
    async def every_model(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        rules = await self.core.rules(interaction.guild_id)
        wanted = current.lower()
        return [
            app_commands.Choice(
                name=tr("{model} (offered)", model=model.name)
                if model.name in rules.allowed_models
                else tr("{model} (not offered)", model=model.name),
                value=model.name,
            )
            for model in self.services.catalog.drawing_models
            if wanted in model.name.lower() or wanted in model.description.lower()
        ][:MAX_CHOICES]

    @settings.command(
        name="limits", description=locale_str("Active jobs per member and for the server, and the cooldown")
    )
    @app_commands.describe(
        member_jobs=locale_str("Unfinished jobs one member may have here (at most the bot's cap)"),
        server_jobs=locale_str("Unfinished jobs this server may have (at most the bot's cap)"),
        cooldown=locale_str("Seconds between two jobs of one member here (at least the bot's)"),
    )
    async def limits(
        self,
        interaction: discord.Interaction[Any],
        member_jobs: app_commands.Range[int, 1, MAX_SERVER_JOBS] | None = None,
        server_jobs: app_commands.Range[int, 1, MAX_SERVER_JOBS] | None = None,
        cooldown: app_commands.Range[float, 0, MAX_SERVER_COOLDOWN_S] | None = None,
    ) -> None:
        guild_id = self._guild(interaction)
        outcome = await self.core.set_limits(
            guild_id, interaction.user.id, member_jobs=member_jobs, server_jobs=server_jobs, cooldown_s=cooldown
        )
        await self._change(interaction, outcome)

    @settings.command(
        name="budget", description=locale_str("GPU seconds per member per day, and for the server per month")
    )
    @app_commands.describe(
        member_daily=locale_str(
            "GPU seconds one member may use per UTC day to start jobs here (at most the bot's cap)"
        ),
        server_monthly=locale_str("GPU seconds this server may use per UTC month (at most the bot's cap)"),
    )
    async def budget(
        self,
        interaction: discord.Interaction[Any],
        member_daily: app_commands.Range[int, 1, MAX_MEMBER_DAILY_GPU_S] | None = None,
        server_monthly: app_commands.Range[int, 1, MAX_SERVER_MONTHLY_GPU_S] | None = None,
    ) -> None:
        guild_id = self._guild(interaction)
        outcome = await self.core.set_budget(
            guild_id, interaction.user.id, member_daily_s=member_daily, server_monthly_s=server_monthly
        )
        await self._change(interaction, outcome)

    @settings.command(name="negative", description=locale_str("A negative prompt added to every job of this server"))
    @app_commands.describe(text=locale_str("Added after each member's own negative prompt (leave it out: none)"))
    async def negative(self, interaction: discord.Interaction[Any], text: str | None = None) -> None:
        guild_id = self._guild(interaction)
        await self._change(interaction, await self.core.set_negative(guild_id, interaction.user.id, text))

    @settings.command(name="mentions", description=locale_str("Whether a result pings the member who asked for it"))
    @app_commands.describe(ping=locale_str("On: the result notifies its owner. Off: it names them without a ping"))
    async def mentions(self, interaction: discord.Interaction[Any], ping: bool) -> None:
        guild_id = self._guild(interaction)
        await self._change(interaction, await self.core.set_mentions(guild_id, interaction.user.id, ping))

    @settings.command(name="thread", description=locale_str("Whether each job gets a thread of its own by default"))
    @app_commands.describe(
        on=locale_str("On: a thread named after the prompt holds each job's result (/imagine thread: decides)")
    )
    async def thread(self, interaction: discord.Interaction[Any], on: bool) -> None:
        guild_id = self._guild(interaction)
        await self._change(interaction, await self.core.set_thread_per_job(guild_id, interaction.user.id, on))

    # Not named `nsfw`: discord.py would take the attribute for the group's own age-restricted flag.
    nsfw_rules = app_commands.Group(
        name="nsfw",
        description=locale_str("Where NSFW prompts are allowed, and this server's NSFW terms"),
        parent=settings,
    )

    @nsfw_rules.command(name="mode", description=locale_str("Where this server allows NSFW prompts"))
    @app_commands.describe(
        mode=locale_str("age-restricted: only in age-restricted channels (the default). never: nowhere")
    )
    @app_commands.choices(
        mode=[app_commands.Choice(name=locale_str(mode.value), value=mode.value) for mode in NsfwMode]
    )
    async def nsfw_mode(self, interaction: discord.Interaction[Any], mode: app_commands.Choice[str]) -> None:
        guild_id = self._guild(interaction)
        outcome = await self.core.set_nsfw_mode(guild_id, interaction.user.id, NsfwMode(mode.value))
        await self._change(interaction, outcome)

    @nsfw_rules.command(
        name="add", description=locale_str("Make a term NSFW on this server, besides the bot's own NSFW terms")
    )
    @app_commands.describe(
        term=locale_str("A word or words; matched like the deny-list (any case, look-alike letters)")
    )
    async def nsfw_add(
        self, interaction: discord.Interaction[Any], term: app_commands.Range[str, 1, MAX_NSFW_TERM_CHARS]
    ) -> None:
        guild_id = self._guild(interaction)
        await self._change(interaction, await self.core.nsfw_term(guild_id, interaction.user.id, term, True))

    @nsfw_rules.command(name="remove", description=locale_str("Remove one of this server's own NSFW terms"))
    @app_commands.describe(term=locale_str("The term, however it is spelled"))
    async def nsfw_remove(self, interaction: discord.Interaction[Any], term: str) -> None:
        guild_id = self._guild(interaction)
        await self._change(interaction, await self.core.nsfw_term(guild_id, interaction.user.id, term, False))

    @settings.command(name="reset", description=locale_str("Put a setting, or all of them, back to the bot's"))
    @app_commands.describe(setting=locale_str("What to put back"))
    @app_commands.choices(
        setting=[app_commands.Choice(name=locale_str(section.value), value=section.name.lower()) for section in Section]
    )
    async def reset(self, interaction: discord.Interaction[Any], setting: app_commands.Choice[str]) -> None:
        guild_id = self._guild(interaction)
        section = Section[setting.value.upper()]
        await self._change(interaction, await self.core.reset(guild_id, interaction.user.id, section))

    @settings.command(name="log", description=locale_str("Who changed this server's settings, and when"))
    async def history(self, interaction: discord.Interaction[Any]) -> None:
        guild_id = self._guild(interaction)
        changes = await self.core.history(guild_id, LOG_SHOWN)
        if not changes:
            await reply(interaction, tr("No setting of this server has been changed yet."))
            return
        lines = [f"<t:{int(change.at.timestamp())}:f> <@{change.user_id}>: {render(change.what)}" for change in changes]
        embed = discord.Embed(
            title=tr("Latest {count} changes, newest first", count=len(lines)), description=_fit(lines)
        )
        await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_PINGS)


def _model_choices(ctx: Services, names: tuple[str, ...], current: str) -> list[app_commands.Choice[str]]:
    wanted = current.lower()
    models = [ctx.catalog.get(name) for name in names]
    return [
        app_commands.Choice(name=_label(model.name, model.description), value=model.name)
        for model in models
        if wanted in model.name.lower() or wanted in model.description.lower()
    ][:MAX_CHOICES]


def _label(name: str, description: str) -> str:
    return (f"{name} — {description}" if description else name)[:100]


def _budget_cap(cap_ms: int) -> str:
    return tr("at most {seconds} s", seconds=cap_ms // 1000) if cap_ms else tr("none")


def _limit_line(effective: str, chosen: str | None, cap: str) -> str:
    if chosen is None:
        return tr("**{effective}** (the bot's: {cap})", effective=effective, cap=cap)
    return tr(
        "**{effective}** (this server chose {chosen}; the bot's: {cap})", effective=effective, chosen=chosen, cap=cap
    )


def settings_embed(server: str, view: SettingsView, denied_terms: int) -> discord.Embed:
    """The panel: every setting, what applies now, and the operator's cap it stays within."""
    settings, rules, caps = view.settings, view.rules, view.caps
    embed = discord.Embed(title=tr("Settings of {server}", server=server)[:256])
    if rules.notes:
        embed.description = _fit([f"⚠️ {render(note)}" for note in rules.notes])
    chosen_default = tr("this server's choice") if settings.default_model is not None else tr("the bot's default")
    embed.add_field(name=tr("Default model"), value=f"**{rules.default_model}** ({chosen_default})", inline=False)
    embed.add_field(name=tr("Models offered"), value=_models_line(rules)[:FIELD_LIMIT], inline=False)
    member = None if settings.member_active_jobs is None else str(settings.member_active_jobs)
    server_chosen = None if settings.server_active_jobs is None else str(settings.server_active_jobs)
    embed.add_field(
        name=tr("Active jobs per member"),
        value=_limit_line(
            render(jobs_words(rules.member_jobs)),
            member,
            tr("at most {limit}", limit=render(jobs_words(caps.user_active))),
        ),
        inline=False,
    )
    embed.add_field(
        name=tr("Active jobs for the server"),
        value=_limit_line(
            render(jobs_words(rules.server_jobs)),
            server_chosen,
            tr("at most {limit}", limit=render(jobs_words(caps.guild_active))),
        ),
        inline=False,
    )
    cooldown = None if settings.cooldown_s is None else tr("{seconds:g} s", seconds=settings.cooldown_s)
    embed.add_field(
        name=tr("Cooldown"),
        value=_limit_line(
            tr("{seconds:g} s", seconds=rules.cooldown_s),
            cooldown,
            tr("at least {seconds:g} s", seconds=caps.cooldown_ms / 1000),
        ),
        inline=False,
    )
    member_budget = (
        None if settings.member_daily_gpu_s is None else tr("{seconds} s", seconds=settings.member_daily_gpu_s)
    )
    embed.add_field(
        name=tr("GPU budget per member per day"),
        value=_limit_line(
            render(seconds_words(rules.member_budget_s)), member_budget, _budget_cap(caps.member_daily_gpu_ms)
        ),
        inline=False,
    )
    server_budget = (
        None if settings.server_monthly_gpu_s is None else tr("{seconds} s", seconds=settings.server_monthly_gpu_s)
    )
    embed.add_field(
        name=tr("GPU budget for the server per month"),
        value=_limit_line(
            render(seconds_words(rules.server_budget_s)), server_budget, _budget_cap(caps.guild_monthly_gpu_ms)
        ),
        inline=False,
    )
    negative = f"“{settings.negative_prompt}”" if settings.negative_prompt else tr("none")
    embed.add_field(
        name=tr("Default negative prompt"),
        value=tr(
            "{negative} (added after each member's own; at most {limit} characters)",
            negative=negative,
            limit=view.negative_max,
        )[:FIELD_LIMIT],
        inline=False,
    )
    embed.add_field(
        name=tr("Results ping their owner"),
        value=tr("yes") if rules.mention_owner else tr("no (they name them)"),
        inline=False,
    )
    embed.add_field(
        name=tr("A thread per job"),
        value=tr("yes (unless /imagine says `thread: False`)")
        if rules.thread_per_job
        else tr("no (unless /imagine says `thread: True`)"),
        inline=False,
    )
    nsfw = settings.nsfw
    if nsfw.mode is NsfwMode.AGE_RESTRICTED:
        where = tr("only in age-restricted channels")
    else:
        where = tr("never (in no channel)")
    own = ", ".join(f"“{term}”" for term in nsfw.terms) or tr("none")
    embed.add_field(
        name=tr("NSFW prompts"),
        value=tr(
            "**{where}**; checked against the bot's {count} NSFW terms and this server's own: {own}",
            where=where,
            count=len(DEFAULT_NSFW_TERMS),
            own=own,
        )[:FIELD_LIMIT],
        inline=False,
    )
    embed.add_field(
        name=tr("Deny-list"),
        value=trn(
            "{n} term(s) of this server (`/denylist show`), and the bot's own everywhere",
            "{n} term(s) of this server (`/denylist show`), and the bot's own everywhere",
            denied_terms,
        ),
        inline=False,
    )
    embed.set_footer(
        text=tr(
            "Change with /settings model, models, limits, budget, negative, mentions, thread, nsfw or reset; "
            "/settings log"
        )
    )
    return embed


def _models_line(rules: ServerRules) -> str:
    offered = ", ".join(rules.allowed_models)
    if rules.restricted:
        return tr("{models} (chosen by this server)", models=offered)
    return tr("{models} (all of the bot's)", models=offered)


def _fit(lines: list[str]) -> str:
    """As many whole lines as an embed's description holds."""
    kept: list[str] = []
    size = 0
    for line in lines:
        size += len(line) + 1
        if size > DESCRIPTION_LIMIT:
            break
        kept.append(line)
    return "\n".join(kept)


async def setup(bot: commands.Bot) -> None:
    """/settings, with the bot's services (a `TypeError` names what is missing)."""
    await bot.add_cog(ServerSettingsCog(services_of(bot)))
