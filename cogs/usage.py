"""/usage: the GPU time a member, a server and the bot used, today and this month (UTC), and what it cost.

`/usage me`: a member's own sums (everywhere, and in the server they ask from) and the limits that apply to them.
`/usage server`: the server's sums, per model, and its top members: for its moderators (and the operator).
`/usage all`: every server's sums this month: for the operator. The core decides who sees what (`jobs/usage.py`);
every answer is ephemeral and pings nobody.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from cogs.common import NO_PINGS, Services, services_of
from cogs.i18n import render, tr, trn
from cogs.render import FIELD_LIMIT, clip
from jobs.prices import format_money
from jobs.usage import (
    BotUsage,
    Breakdown,
    MemberUsage,
    ServerUsage,
    Span,
    Sums,
    everything_refusal,
    is_outside_servers,
    server_refusal,
)

# The operator's view names at most this many servers (`runpod-bot usage` lists them all).
MAX_SERVERS_SHOWN = 20
MS_PER_S = 1000
S_PER_MIN = 60
S_PER_H = 3600


def duration(milliseconds: int) -> str:
    """GPU time as a person reads it: "4.2 s", "3 min 05 s", "2 h 07 min"."""
    total_s = milliseconds / MS_PER_S
    if total_s < S_PER_MIN:
        return tr("{seconds:.1f} s", seconds=total_s)
    whole = int(total_s)
    if whole < S_PER_H:
        return tr("{minutes} min {seconds} s", minutes=whole // S_PER_MIN, seconds=f"{whole % S_PER_MIN:02d}")
    return tr("{hours} h {minutes} min", hours=whole // S_PER_H, minutes=f"{whole % S_PER_H // S_PER_MIN:02d}")


def money(costs: Mapping[str, int]) -> str:
    return " + ".join(render(format_money(micros, currency)) for currency, micros in sorted(costs.items()))


def sums_line(sums: Sums) -> str:
    """ "12.3 s of GPU time, 3 jobs, 0.0061 USD (1.2 s in the queue)"."""
    if not sums.jobs:
        return tr("nothing yet")
    jobs = trn("{n} job", "{n} jobs", sums.jobs)
    parts = [tr("{duration} of GPU time", duration=duration(sums.gpu_ms)), jobs]
    if sums.costs:
        parts.append(money(sums.costs))
    return ", ".join(parts) + tr(" ({duration} in the queue)", duration=duration(sums.queue_ms))


def by_model(usage: Breakdown) -> str:
    lines = [f"**{name}**: {sums_line(sums)}" for name, sums in usage.models.items()]
    return clip("\n".join(lines), FIELD_LIMIT) if lines else tr("nothing yet")


def add_span(embed: discord.Embed, span: Span, month: str, here: Span | None = None) -> None:
    today, this_month = sums_line(span.today.total), sums_line(span.month.total)
    if here is not None:
        today += "\n" + tr("In this server: {sums}", sums=sums_line(here.today.total))
        this_month += "\n" + tr("In this server: {sums}", sums=sums_line(here.month.total))
    embed.add_field(name=tr("Today (UTC)"), value=clip(today, FIELD_LIMIT), inline=False)
    embed.add_field(
        name=tr("This month ({month}, UTC)", month=month), value=clip(this_month, FIELD_LIMIT), inline=False
    )


def limits_text(usage: MemberUsage) -> str:
    limits, state = usage.limits, usage.state
    lines = []
    if limits.user_active:
        lines.append(
            tr(
                "Jobs at once: {running} running of {limit} allowed",
                running=state.active_jobs,
                limit=limits.user_active,
            )
        )
    else:
        lines.append(tr("Jobs at once: {running} running, no limit", running=state.active_jobs))
    if limits.member_active:
        lines.append(tr("Your jobs at once in this server: {limit}", limit=limits.member_active))
    if limits.guild_active:
        lines.append(tr("This server's jobs at once, all members together: {limit}", limit=limits.guild_active))
    if limits.cooldown_ms:
        if state.cooldown_left_ms:
            wait = tr("{seconds:.0f} s left", seconds=state.cooldown_left_ms / MS_PER_S)
        else:
            wait = tr("ready now")
        lines.append(
            tr("Cooldown between jobs: {seconds:g} s ({wait})", seconds=limits.cooldown_ms / MS_PER_S, wait=wait)
        )
    if limits.member_cooldown_ms > limits.cooldown_ms:
        lines.append(
            tr("Cooldown between jobs in this server: {seconds:g} s", seconds=limits.member_cooldown_ms / MS_PER_S)
        )
    return "\n".join(lines)


def member_embed(usage: MemberUsage) -> discord.Embed:
    embed = discord.Embed(title=tr("Your GPU time"), colour=discord.Colour.blurple())
    add_span(embed, usage.everywhere, usage.periods.month_name, usage.here)
    embed.add_field(name=tr("Your limits"), value=limits_text(usage), inline=False)
    budgets = "\n".join(render(line) for line in usage.budgets) or tr("No GPU-time budget is set.")
    embed.add_field(name=tr("Budget"), value=clip(budgets, FIELD_LIMIT), inline=False)
    ends = int(usage.periods.day_ends.timestamp())
    embed.add_field(name=tr("A new day starts"), value=tr("<t:{ends}:R> (midnight UTC)", ends=str(ends)), inline=False)
    return embed


def ranking(lines: Iterable[str]) -> str:
    text = "\n".join(f"{place}. {line}" for place, line in enumerate(lines, start=1))
    return clip(text, FIELD_LIMIT) if text else tr("nobody yet")


def server_embed(usage: ServerUsage) -> discord.Embed:
    embed = discord.Embed(title=tr("GPU time in this server"), colour=discord.Colour.blurple())
    add_span(embed, usage.span, usage.periods.month_name)
    embed.add_field(name=tr("This month by model"), value=by_model(usage.span.month), inline=False)
    # Mentions show who, and ping nobody (the answer is sent with NO_PINGS).
    members = ranking(f"<@{ranked.id}>: {sums_line(ranked.usage.total)}" for ranked in usage.top)
    embed.add_field(name=tr("Top members this month"), value=members, inline=False)
    return embed


def server_name(client: discord.Client, guild_id: int) -> str:
    if is_outside_servers(guild_id):
        return tr("Outside any server (DMs, the command line)")
    guild = client.get_guild(guild_id)
    name = discord.utils.escape_markdown(guild.name) if guild is not None else tr("a server the bot has left")
    return f"{name} (`{guild_id}`)"


def bot_embed(usage: BotUsage, client: discord.Client) -> discord.Embed:
    embed = discord.Embed(
        title=tr("GPU time of every server, {month} (UTC)", month=usage.month),
        description=sums_line(usage.total.total),
        colour=discord.Colour.blurple(),
    )
    embed.add_field(name=tr("By model"), value=by_model(usage.total), inline=False)
    shown = usage.servers[:MAX_SERVERS_SHOWN]
    servers = ranking(f"{server_name(client, ranked.id)}: {sums_line(ranked.usage.total)}" for ranked in shown)
    if len(usage.servers) > len(shown):
        more = tr("…and {count} more: `runpod-bot usage`", count=len(usage.servers) - len(shown))
        servers = clip(servers, FIELD_LIMIT - 60) + "\n" + more
    embed.add_field(name=tr("Servers"), value=servers, inline=False)
    return embed


class Usage(commands.Cog):
    """The /usage commands."""

    # Everywhere (`/usage me` is the member's own); `/usage server` answers a moderator of a server that installed
    # the bot only, and says so elsewhere.
    usage = app_commands.Group(
        name="usage",
        description=locale_str("GPU time used, today and this month"),
        allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True),
    )

    def __init__(self, services: Services) -> None:
        self.services = services

    async def _send(self, interaction: discord.Interaction[Any], embed: discord.Embed) -> None:
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_PINGS)

    async def _refuse(self, interaction: discord.Interaction[Any], refusal: str) -> None:
        await interaction.response.send_message(render(refusal), ephemeral=True, allowed_mentions=NO_PINGS)

    @usage.command(name="me", description=locale_str("Your GPU time today and this month, and your limits"))
    async def me(self, interaction: discord.Interaction[Any]) -> None:
        actor = self.services.actor_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._send(interaction, member_embed(await self.services.service.usage.member(actor)))

    @usage.command(
        name="server", description=locale_str("This server's GPU time, by model and top members (moderators)")
    )
    async def server(self, interaction: discord.Interaction[Any]) -> None:
        actor = self.services.actor_of(interaction, "manage_guild")
        refused = server_refusal(actor)
        if refused is not None:
            await self._refuse(interaction, refused)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._send(interaction, server_embed(await self.services.service.usage.server(actor)))

    @usage.command(name="all", description=locale_str("Every server's GPU time this month (the bot's operator)"))
    async def everything(self, interaction: discord.Interaction[Any]) -> None:
        actor = self.services.actor_of(interaction)
        refused = everything_refusal(actor)
        if refused is not None:
            await self._refuse(interaction, refused)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        everything = await self.services.service.usage.everything(actor)
        await self._send(interaction, bot_embed(everything, interaction.client))


async def setup(bot: commands.Bot) -> None:
    """/usage, with the bot's services (a `TypeError` names what is missing)."""
    await bot.add_cog(Usage(services_of(bot)))
