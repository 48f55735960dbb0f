"""Job buttons and the actions behind them and behind /imagine: submit, cancel, re-roll, retry, delete.

Every button is a `DynamicItem` whose `custom_id` holds the job id (`job:cancel:<jid>`); all other state comes from
Redis, so buttons keep working after a restart.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from typing import Any

import discord
from discord.ext import commands

from cogs.common import (
    DEFAULT_UPLOAD_LIMIT,
    NO_PINGS,
    Services,
    guarded,
    jump_url,
    loaded_cog,
    missing_channel_permissions,
    reply,
)
from cogs.render import GALLERY_ITEM_LIMIT, RETRYABLE, card_embed
from jobs.access import Action, may, refusal
from jobs.notifier import JobResult, Notifier
from jobs.presets import ImageRequest, InvalidRequestError, RequestOptions
from jobs.service import JobNotFoundError, JobServiceError, NotAllowedError, SubmitFailedError
from storage.models import JobState, Requester, TrackedJob

log = logging.getLogger(__name__)

JOB_ID = r"[0-9a-f]{8,32}"
# Discord's nonce is at most 25 characters; with enforce_nonce a retried send returns the first message.
CARD_NONCE = "card-{jid}"
RESULT_NONCE = "result-{jid}"


BUTTONS: dict[str, tuple[str, discord.ButtonStyle, str]] = {
    "cancel": ("Cancel", discord.ButtonStyle.danger, "✖️"),
    "reroll": ("Re-roll", discord.ButtonStyle.primary, "🎲"),
    "retry": ("Retry", discord.ButtonStyle.primary, "🔁"),
    "delete": ("Delete", discord.ButtonStyle.secondary, "🗑️"),
}


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=rf"job:(?P<action>[a-z]+):(?P<jid>{JOB_ID})"
):
    """Cancel, re-roll, retry or delete a job; the action and the job id live in the custom_id."""

    def __init__(self, action: str, jid: str) -> None:
        label, style, emoji = BUTTONS[action]
        super().__init__(discord.ui.Button(label=label, style=style, emoji=emoji, custom_id=f"job:{action}:{jid}"))
        self.action = action
        self.jid = jid

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        action = match["action"]
        if action not in BUTTONS:
            raise ValueError(f"unknown job action {action!r}")
        return cls(action, match["jid"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = {"cancel": cancel_job, "reroll": reroll_job, "retry": retry_job, "delete": delete_result}[self.action]
        await guarded(interaction, lambda: handler(loaded_cog(interaction, JobActions).services, interaction, self.jid))


class JobActions(commands.Cog):
    """What the job buttons act with: registers them (they work on any card, after a restart too) and gives them
    the services of the bot it was added to."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(JobButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(JobButton)


class CardRefusedError(JobServiceError):
    """Discord refused the job card, so the job was not sent to RunPod."""


def card_view(job: TrackedJob) -> discord.ui.View:
    """Cancel while the job lives; Retry when it failed in a way a retry can fix."""
    view = discord.ui.View(timeout=None)
    state = job.final_state
    if state.is_live:
        view.add_item(JobButton("cancel", job.jid))
    elif state in RETRYABLE:
        view.add_item(JobButton("retry", job.jid))
    return view


def result_layout(job: TrackedJob, text: str, filenames: Sequence[str]) -> discord.ui.LayoutView:
    """A result as one Components V2 message: its text, a gallery of its images (each an attachment of the message),
    and the job's buttons. The message may carry nothing else (no content, no embeds)."""
    view = discord.ui.LayoutView(timeout=None)
    view.add_item(discord.ui.TextDisplay(text))
    gallery: discord.ui.MediaGallery[discord.ui.LayoutView] = discord.ui.MediaGallery()
    for filename in filenames[:GALLERY_ITEM_LIMIT]:
        gallery.add_item(media=f"attachment://{filename}")
    view.add_item(gallery)
    view.add_item(discord.ui.ActionRow(JobButton("reroll", job.jid), JobButton("delete", job.jid)))
    return view


async def submit_flow(
    ctx: Services,
    interaction: discord.Interaction[Any],
    options: RequestOptions,
    model: str | None,
    *,
    private: bool = False,
) -> None:
    """Everything /imagine, Re-roll and Retry do: check, defer, submit with a card, tell the member where it is.
    The core refuses a prompt its deny-lists forbid (`DeniedTermError`, worded by the error handler)."""
    with ctx.in_flight.track():
        await _submit_flow(ctx, interaction, options, model, private=private)


async def _submit_flow(
    ctx: Services, interaction: discord.Interaction[Any], options: RequestOptions, model: str | None, *, private: bool
) -> None:
    if not private and interaction.guild_id is not None:
        missing = missing_channel_permissions(interaction)
        if missing:
            await reply(
                interaction,
                "I can't post images in this channel: I'm missing the "
                + ", ".join(f"**{name}**" for name in missing)
                + " permission. Ask a server admin to grant it, or use another channel.",
            )
            return
    try:
        prepared = ctx.service.prepare(options, model)
    except InvalidRequestError as exc:
        await reply(interaction, f"That request can't be made: {exc}")
        return
    # Everything from here may wait on Redis or RunPod: acknowledge within Discord's 3 seconds first.
    await interaction.response.defer(ephemeral=True, thinking=True)
    channel: discord.abc.Messageable
    if private:
        try:
            channel = await interaction.user.create_dm()
        except discord.HTTPException:
            await reply(interaction, "I can't open a direct message with you. Try without `private`.")
            return
        upload_limit = DEFAULT_UPLOAD_LIMIT
    else:
        if interaction.channel is None or not isinstance(interaction.channel, discord.abc.Messageable):
            await reply(interaction, "I can't post in this kind of channel.")
            return
        channel = interaction.channel
        upload_limit = interaction.filesize_limit or DEFAULT_UPLOAD_LIMIT
    channel_id = getattr(channel, "id", interaction.channel_id)
    requester = Requester(user_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=channel_id)

    async def post_card(job: TrackedJob) -> None:
        try:
            card = await channel.send(
                embed=card_embed(job),
                view=card_view(job),
                allowed_mentions=NO_PINGS,
                nonce=CARD_NONCE.format(jid=job.jid),
            )
        except discord.Forbidden:
            if private:
                raise CardRefusedError(
                    "I can't send you direct messages (they are closed). Open them, or try without `private`."
                ) from None
            raise CardRefusedError("Discord didn't let me post the job card in this channel.") from None
        await ctx.service.record_card(job.jid, card.id)

    try:
        submission = await ctx.service.submit(
            prepared,
            requester,
            request_id=str(interaction.id),
            extra={"upload_limit": upload_limit, "private": private},
            before_run=post_card,
        )
    except SubmitFailedError as exc:
        # The card was posted before /run; it must not go on saying "Submitting…" once the job has ended.
        await _show_outcome(ctx.notifier, exc)
        raise
    job = submission.job
    if not submission.duplicate and not submission.result_in_hand:
        # The card was posted as "Submitting…"; show at once that RunPod has it, and why it waits. (A /runsync reply
        # that held the result is being delivered already: the card goes straight to the outcome.)
        await ctx.notifier.job_updated(job)
    where = jump_url(interaction.guild_id if not private else None, job.channel_id, job.card_message_id)
    # Short: the card is where the job lives, and the result will mention the member when it is ready.
    verb = "Already submitted" if submission.duplicate else "Submitted"
    await reply(interaction, f"{verb} — {where}" if where else f"{verb}.")


async def _show_outcome(notifier: Notifier, failure: SubmitFailedError) -> None:
    job = failure.job
    try:
        await notifier.job_finished(job, JobResult(job.final_state, reason=failure.reason))
    except Exception:
        # The member still gets the reason in the command's answer.
        log.exception("job %s: could not show its outcome on the card", job.jid)


async def _job_or_refuse(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> TrackedJob | None:
    job = await ctx.service.find(jid)
    if job is None:
        await reply(interaction, str(JobNotFoundError(jid)))
    return job


# Re-roll and Retry follow the rule of every job action: a member's prompt is theirs to run again (and a moderator's
# of its server, or the operator's); anyone else can start their own job with /imagine.
OWN_JOB_HINT = " To make images like these yourself, use /imagine with the same prompt (its seed is shown with it)."


async def _may_resubmit(ctx: Services, interaction: discord.Interaction[Any], job: TrackedJob, action: Action) -> bool:
    actor = ctx.actor_of(interaction)
    if may(actor, job):
        return True
    await reply(interaction, refusal(actor, job, action) + OWN_JOB_HINT)
    return False


async def reroll_job(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """The same parameters with a new seed, as a new job of the member who clicked (the owner, a moderator of the
    job's server, or the operator)."""
    job = await _job_or_refuse(ctx, interaction, jid)
    if job is not None and await _may_resubmit(ctx, interaction, job, Action.REROLL):
        await _resubmit(ctx, interaction, job, keep_seed=False)


async def retry_job(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """The same parameters and seed again, for a job that failed, timed out or expired."""
    job = await _job_or_refuse(ctx, interaction, jid)
    if job is None or not await _may_resubmit(ctx, interaction, job, Action.RETRY):
        return
    if job.final_state not in RETRYABLE:
        await reply(interaction, "Only a failed, timed-out or expired job can be retried.")
        return
    await _resubmit(ctx, interaction, job, keep_seed=True)


async def _resubmit(ctx: Services, interaction: discord.Interaction[Any], job: TrackedJob, *, keep_seed: bool) -> None:
    """Submit a job's parameters again for the member who clicked; a private job's buttons stay in the DM."""
    private = bool(job.extra.get("private")) and interaction.guild_id is None
    options = ImageRequest.from_dict(job.request).as_options(keep_seed=keep_seed)
    await submit_flow(ctx, interaction, options, job.model, private=private)


async def cancel_job(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """Cancel for the owner, a moderator of the job's server or the operator; the reply and the card say what RunPod
    answered."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        result = await ctx.service.cancel(jid, ctx.actor_of(interaction))
    except NotAllowedError as exc:
        await reply(interaction, str(exc))
        return
    if result.first_request and result.was_live:
        try:
            await ctx.notifier.refresh_card(jid)
        except Exception:
            # The member still reads what happened in the reply; the poller edits the card next.
            log.exception("job %s: could not show the cancel on the card", jid)
    await reply(interaction, result.summary())


async def delete_result(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """Delete a result message, for the job's owner, a moderator of its server or the operator."""
    job = await ctx.service.find(jid)
    actor = ctx.actor_of(interaction)
    if job is None:
        # The record has expired: the message is judged by where it is. In a DM only its recipient can click.
        if not (actor.moderator or actor.operator or interaction.guild_id is None):
            await reply(
                interaction,
                f"Job `{jid}` is no longer on record: only a moderator of this server can delete its images.",
            )
            return
    elif not may(actor, job):
        await reply(interaction, refusal(actor, job, Action.DELETE))
        return
    if interaction.message is None:
        await reply(interaction, "That message is gone already.")
        return
    await interaction.response.defer(ephemeral=True)
    with contextlib.suppress(discord.NotFound):
        await interaction.message.delete()
    await reply(interaction, "Deleted.")


def job_choice_label(job: TrackedJob) -> str:
    prompt = " ".join(str(job.request.get("prompt", "")).split())
    state = JobState(job.final_state).value.lower()
    label = f"{state} · {prompt}"
    return label[:97] + "…" if len(label) > 100 else label
