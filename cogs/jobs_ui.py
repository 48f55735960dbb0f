"""Job buttons and the actions behind them and behind /imagine: submit, cancel, re-roll, retry, upscale, delete.

Every button is a `DynamicItem` whose `custom_id` holds the job id (`job:cancel:<jid>`); all other state comes from
Redis, so buttons keep working after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord.ext import commands

from cogs.common import (
    DEFAULT_UPLOAD_LIMIT,
    JOB_ID,
    NO_PINGS,
    Services,
    bot_in_channel,
    guarded,
    job_link,
    jump_url,
    missing_channel_permissions,
    outside_private_thread,
    reply,
    server_of,
    services_of,
    worded,
)
from cogs.i18n import locales_of, public_locale, render, speaking, tr, trn
from cogs.image_buttons import ImageButton
from cogs.presses import earlier_press, press_of
from cogs.render import (
    GALLERY_ITEM_LIMIT,
    RETRYABLE,
    ROW_BUTTON_LIMIT,
    card_embed,
    clip,
    info_embed,
    made_from,
    shown_prompt,
    upscale_factor,
)
from jobs.access import Action, may, refusal
from jobs.labels import QUEUE_AT_SUBMIT_FIELD, RESULT_THREAD_FIELD, delivery_failure
from jobs.lineage import PARENT_MODEL_FIELD, Derivation, Parent, parent_of
from jobs.notifier import JobResult
from jobs.presets import ImageRequest, InvalidRequestError, ModelConfig, RequestOptions
from jobs.presses import EarlierPress, PressTicket
from jobs.service import (
    BeforeRun,
    JobNotFoundError,
    JobServiceError,
    NotAllowedError,
    Submission,
    SubmitFailedError,
)
from jobs.text import N_
from storage.models import JobState, Requester, TrackedJob

log = logging.getLogger(__name__)

# A Remix form left open this long is dropped by discord.py; the member clicks Remix again.
REMIX_MODAL_TIMEOUT_S = 900.0
REMIX_FORM = re.compile(rf"job:remix-form:(?P<jid>{JOB_ID})")
# Discord's component types of a submitted form's inputs (discord-api-docs, components reference).
TEXT_INPUT, LABEL = 4, 18
# Discord's nonce is at most 25 characters; with enforce_nonce a retried send returns the first message.
# Discord's limit on a thread's name.
THREAD_NAME_LIMIT = 100
CARD_NONCE = "card-{jid}"
RESULT_NONCE = "result-{jid}"


BUTTONS: dict[str, tuple[str, discord.ButtonStyle, str]] = {
    "cancel": (N_("Cancel"), discord.ButtonStyle.danger, "✖️"),
    "reroll": (N_("Re-roll"), discord.ButtonStyle.primary, "🎲"),
    "retry": (N_("Retry"), discord.ButtonStyle.primary, "🔁"),
    "redeliver": (N_("Deliver again"), discord.ButtonStyle.primary, "📨"),
    "delete": (N_("Delete"), discord.ButtonStyle.secondary, "🗑️"),
    "remix": (N_("Remix"), discord.ButtonStyle.secondary, "🎨"),
    "info": (N_("Info"), discord.ButtonStyle.secondary, "ℹ️"),
}
# The job's own buttons on its result, after the per-image ones.
RESULT_ACTIONS = ("reroll", "remix", "info", "delete")
# An upscale's result: its image is already alone and enlarged, so no U (another enlargement of an enlargement adds
# no detail and soon passes the bot's size bound) and no V (the drawing model cannot draw at the enlarged size; V of
# the original image is on its own result); Re-roll would enlarge the same image again, and Remix has no prompt to
# draw from on an upscaler. docs/architecture.md, "An upscale's result".
UPSCALE_RESULT_ACTIONS = ("info", "delete")
# Discord's limit for a text input's value (and max_length): discord.py ui/text_input.py, TextInput.max_length.
TEXT_INPUT_LIMIT = 4000


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=rf"job:(?P<action>[a-z]+):(?P<jid>{JOB_ID})"
):
    """Cancel, re-roll, retry or delete a job; the action and the job id live in the custom_id."""

    def __init__(self, action: str, jid: str) -> None:
        label, style, emoji = BUTTONS[action]
        # In the locale of the message it is built for (a card's or a result's is its server's: `speaking`).
        super().__init__(
            discord.ui.Button(label=render(label), style=style, emoji=emoji, custom_id=f"job:{action}:{jid}")
        )
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
        handler = {
            "cancel": cancel_job,
            "reroll": reroll_job,
            "retry": retry_job,
            "redeliver": deliver_again,
            "delete": delete_result,
            "remix": remix_job,
            "info": job_info,
        }[self.action]
        await guarded(interaction, lambda: handler(services_of(interaction.client), interaction, self.jid))


class UpscaleButton(ImageButton, letter="u"):
    """U1…Un: an upscale job of image n of the result it sits on (with an upscaler configured), else that image
    posted by itself at full resolution."""

    async def act(self, ctx: Services, interaction: discord.Interaction[Any]) -> None:
        await upscale_image(ctx, interaction, self.jid, self.index)


class RemixModal(discord.ui.Modal):
    """The job's prompt and negative prompt, prefilled, to edit and run as a new job."""

    def __init__(self, job: TrackedJob) -> None:
        super().__init__(title=tr("Remix"), timeout=REMIX_MODAL_TIMEOUT_S, custom_id=f"job:remix-form:{job.jid}")
        self.jid = job.jid
        self.prompt: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label=tr("Prompt"),
            style=discord.TextStyle.paragraph,
            default=str(job.request.get("prompt", ""))[:TEXT_INPUT_LIMIT],
            max_length=TEXT_INPUT_LIMIT,
            custom_id="prompt",
        )
        self.negative: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label=tr("Negative prompt"),
            style=discord.TextStyle.paragraph,
            # The member's own: the server adds its default negative prompt to the new job again.
            default=ImageRequest.from_dict(job.request).own_negative[:TEXT_INPUT_LIMIT] or None,
            max_length=TEXT_INPUT_LIMIT,
            required=False,
            custom_id="negative",
        )
        self.add_item(self.prompt)
        self.add_item(self.negative)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        """Nothing here: `JobActions.on_interaction` answers every Remix form from its custom_id, so a form opened
        before a restart is answered after it too (discord.py keeps this object only in the process that sent it)."""


def form_values(components: Sequence[Any]) -> dict[str, str]:
    """The text inputs of a submitted form by custom_id, from the interaction's raw data (inputs in labels, type 18,
    or in the older action rows)."""
    values: dict[str, str] = {}
    for component in components:
        if not isinstance(component, dict):
            continue
        inputs = [component.get("component")] if component.get("type") == LABEL else component.get("components", [])
        for item in inputs or []:
            if isinstance(item, dict) and item.get("type") == TEXT_INPUT and "custom_id" in item:
                values[str(item["custom_id"])] = str(item.get("value") or "")
    return values


class JobActions(commands.Cog):
    """What the job buttons act with: registers them (they work on any card, after a restart too) and gives them
    the services of the bot it was added to."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(JobButton, UpscaleButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(JobButton, UpscaleButton)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Answer a submitted Remix form, whichever process (or process lifetime) showed it."""
        if interaction.type is not discord.InteractionType.modal_submit or not isinstance(interaction.data, dict):
            return
        match = REMIX_FORM.fullmatch(str(interaction.data.get("custom_id", "")))
        if match is None:
            return
        components = interaction.data.get("components")
        values = form_values(components if isinstance(components, list) else [])
        prompt, negative = values.get("prompt", ""), values.get("negative", "")
        await guarded(interaction, lambda: remix_submit(self.services, interaction, match["jid"], prompt, negative))


class CardRefusedError(JobServiceError):
    """Discord refused the job card, so the job was not sent to RunPod."""


def card_view(job: TrackedJob) -> discord.ui.View:
    """Cancel while the job lives; Retry when it failed in a way a retry can fix; Deliver again when its images
    were made but Discord refused them (a missing permission, say, that a moderator can grant)."""
    with speaking(public_locale(job.extra)):
        return _card_view(job)


def _card_view(job: TrackedJob) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    state = job.final_state
    if state.is_live:
        view.add_item(JobButton("cancel", job.jid))
    elif state in RETRYABLE:
        view.add_item(JobButton("retry", job.jid))
    elif state is JobState.COMPLETED and delivery_failure(job):
        view.add_item(JobButton("redeliver", job.jid))
    return view


def result_layout(
    job: TrackedJob,
    text: str,
    filenames: Sequence[str],
    vary: Sequence[discord.ui.Item[Any]] = (),
) -> discord.ui.LayoutView:
    """A result as one Components V2 message: its text, a gallery of its images (each an attachment of the message),
    then, as Midjourney lays them out, a row of U buttons, a row of V buttons (`vary`, from
    `cogs.variations.vary_buttons`; none for a model that takes no image) and the job's buttons. Rows hold at most
    5 buttons, so 10 images take two rows of each. An upscale's result has Info and Delete only
    (`UPSCALE_RESULT_ACTIONS`). The message may carry nothing else (no content, no embeds). Its buttons speak the
    job's public locale."""
    with speaking(public_locale(job.extra)):
        return _result_layout(job, text, filenames, vary)


def _result_layout(
    job: TrackedJob,
    text: str,
    filenames: Sequence[str],
    vary: Sequence[discord.ui.Item[Any]],
) -> discord.ui.LayoutView:
    view = discord.ui.LayoutView(timeout=None)
    view.add_item(discord.ui.TextDisplay(text))
    gallery: discord.ui.MediaGallery[discord.ui.LayoutView] = discord.ui.MediaGallery()
    for filename in filenames[:GALLERY_ITEM_LIMIT]:
        gallery.add_item(media=f"attachment://{filename}")
    view.add_item(gallery)
    if upscale_factor(job) is not None:
        view.add_item(discord.ui.ActionRow(*(JobButton(action, job.jid) for action in UPSCALE_RESULT_ACTIONS)))
        return view
    shown = min(len(filenames), GALLERY_ITEM_LIMIT)
    upscale = [UpscaleButton(index, job.jid) for index in range(1, shown + 1)]
    for buttons in (upscale, list(vary)[:shown]):
        for first in range(0, len(buttons), ROW_BUTTON_LIMIT):
            view.add_item(discord.ui.ActionRow(*buttons[first : first + ROW_BUTTON_LIMIT]))
    view.add_item(discord.ui.ActionRow(*(JobButton(action, job.jid) for action in RESULT_ACTIONS)))
    return view


# Submits a job for the member who asked, given what the card flow decided: who asks and where (`Requester`), what
# the record keeps beside the request, and the card to post before `/run`.
SubmitWith = Callable[[Requester, dict[str, Any], BeforeRun], Awaitable[Submission]]


async def submit_flow(
    ctx: Services,
    interaction: discord.Interaction[Any],
    options: RequestOptions,
    model: str | None,
    *,
    private: bool = False,
    parent: Parent | None = None,
    carried: Mapping[str, Any] | None = None,
    thread: bool | None = None,
) -> None:
    """Everything /imagine, Re-roll, Retry, Remix and Vary do: check, defer, submit with a card, tell the member
    where it is; a job made from another names it (`parent`) and keeps what its record must carry over (`carried`).
    The core refuses a prompt its deny-lists forbid (`DeniedTermError`, worded by the error handler). `thread`: start
    a thread for the job from its card (None: as the server's `/settings thread` says)."""
    with ctx.in_flight.track():
        if not await _may_post_here(interaction, private):
            return
        try:
            # The server's default model, the models it offers and its default negative prompt (one Redis read, as
            # the press claim is, before the defer: a refusal is the first answer). The submit reads them again.
            rules = await ctx.service.server_rules(server_of(interaction))
            prepared = ctx.service.prepare(options, model, rules)
        except InvalidRequestError as exc:
            await reply(interaction, tr("That request can't be made: {reason}", reason=worded(exc)))
            return

        async def submit(requester: Requester, extra: dict[str, Any], before_run: BeforeRun) -> Submission:
            extra = {**extra, **(carried or {}), **(parent.as_extra() if parent is not None else {})}
            return await ctx.service.submit(
                prepared, requester, request_id=str(interaction.id), extra=extra, before_run=before_run
            )

        wanted = rules.thread_per_job if thread is None else thread
        plan = thread_plan(interaction, options.prompt, wanted=wanted, asked=thread is True, private=private)
        await _card_flow(ctx, interaction, prepared.model, submit, private=private, thread=plan)


@dataclass(frozen=True)
class ThreadPlan:
    """Whether a job's card starts a thread named `name` for the job, and what to tell the member (`note`) when a
    thread was asked for and cannot be."""

    start: bool
    name: str
    note: str | None = None


def thread_plan(
    interaction: discord.Interaction[Any], prompt: str, *, wanted: bool, asked: bool, private: bool
) -> ThreadPlan:
    """A thread per job, where Discord allows one: in a server's text or announcement channel, with Create Public
    Threads. Already in a thread (a forum post is one) the job stays there; elsewhere it runs in the channel, and a
    member who asked (`asked`) for a thread, or a server whose setting the bot cannot follow, is told why."""
    name = clip(" ".join(prompt.split()), THREAD_NAME_LIMIT) or "image"
    if not wanted:
        return ThreadPlan(False, name)
    channel = interaction.channel
    if private or interaction.guild_id is None:
        reason, tell = tr("a private job has no thread"), asked
    elif isinstance(channel, discord.Thread):
        reason, tell = tr("this is already a thread (or a forum post), so the job stays here"), asked
    elif not isinstance(channel, discord.TextChannel):
        reason, tell = tr("threads can't be started in this kind of channel"), asked
    elif not interaction.app_permissions.create_public_threads:
        reason, tell = tr("I'm missing the **Create Public Threads** permission in this channel"), True
    else:
        return ThreadPlan(True, name)
    return ThreadPlan(False, name, tr("No thread for this job: {reason}.", reason=reason) if tell else None)


async def _may_post_here(interaction: discord.Interaction[Any], private: bool) -> bool:
    """Whether the bot can post the card and the images where the job was asked for; refused in words if not."""
    if private or interaction.guild_id is None or not bot_in_channel(interaction):
        # Where the bot is not in the channel, the card is the interaction's own answer and the images go by DM.
        return True
    if outside_private_thread(interaction):
        await reply(
            interaction,
            tr(
                "I can't post in this private thread: I'm not one of its members, so I can't see it. Add me to "
                "the thread (mention me in it, or use Add Members), or ask a server admin to give me the "
                "**Manage Threads** permission; or use /imagine in another channel, or with `private`."
            ),
        )
        return False
    missing = missing_channel_permissions(interaction)
    if not missing:
        return True
    await reply(
        interaction,
        tr(
            "I can't post images in this channel: I'm missing the {permissions} permission. Ask a server admin to "
            "grant it, or use another channel.",
            permissions=", ".join(f"**{name}**" for name in missing),
        ),
    )
    return False


async def _card_flow(
    ctx: Services,
    interaction: discord.Interaction[Any],
    model: ModelConfig,
    submit: SubmitWith,
    *,
    private: bool,
    thread: ThreadPlan | None = None,
) -> None:
    """Defer, then `submit` with the job card posted before `/run` (in the channel, or the member's DM for a private
    job), and answer the member with a link to the card. The interaction id is the request id, so a click or a
    command delivered twice sends one `/run`; a button, menu or form pressed twice by the member (two interactions)
    starts one job too: the second press is told where the first one's job is (`cogs.presses`)."""
    press = press_of(interaction)
    if press is None:
        await _submit_with_card(ctx, interaction, model, submit, private=private, ticket=None, thread=thread)
        return
    # One Redis call before the defer, as the access checks before it: the refusal must be the first answer.
    claim = await ctx.service.claim_press(press)
    if isinstance(claim, EarlierPress):
        await reply(interaction, await earlier_press(ctx, interaction, claim))
        return
    try:
        await _submit_with_card(ctx, interaction, model, submit, private=private, ticket=claim, thread=thread)
    finally:
        # Held a few seconds more when a job started; at once free when the press was refused (quota, cooldown,
        # deny-list), so the member can fix that and press again.
        await claim.end()


# A card waits for its turn in its channel (Discord lets a bot post about one message a second in one channel): once it
# has waited this long, the member is told why there is no card yet, instead of watching "thinking…" through a burst.
CARD_WAIT_NOTE_S = 3.0
# The note's first words in English, which the end-to-end tests, the benchmark and the chaos audit know it by.
CARD_WAIT_NOTE_START = "Your job's card is waiting for its turn"


class CardWaitNote:
    """Tells the member, through the interaction's own answer (a budget of its own, not the channel's), that their
    card waits its turn in a busy channel; `answer` then puts the final answer in the note's place. Owns its timer
    task (`start`): `stop` (or `answer`) ends it, and a failed edit is logged, never raised."""

    def __init__(self, ctx: Services, interaction: discord.Interaction[Any], channel_id: int) -> None:
        self._ctx = ctx
        self._interaction = interaction
        self._channel_id = channel_id
        self._shown = False
        self._sending = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """The card starts waiting for its turn."""
        if self._task is None:
            self._task = asyncio.create_task(self._show_later(), name="card-wait-note")

    async def _show_later(self) -> None:
        await asyncio.sleep(CARD_WAIT_NOTE_S)
        waiting = max(1, self._ctx.notifier.posts_waiting(self._channel_id))
        note = trn(
            "Your job's card is waiting for its turn in this channel: Discord lets a bot post about one message a "
            "second here, and {n} post is waiting. The job starts as soon as its card is up.",
            "Your job's card is waiting for its turn in this channel: Discord lets a bot post about one message a "
            "second here, and {n} posts are waiting. The job starts as soon as its card is up.",
            waiting,
        )
        self._sending = True
        try:
            await self._interaction.edit_original_response(content=note, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.warning("could not tell a member their card waits its turn (%s)", exc)
            return
        except Exception:
            # Only a note: whatever went wrong, the submit and its answer go on.
            log.exception("could not tell a member their card waits its turn")
            return
        self._shown = True

    def stop(self) -> None:
        """The card has its turn (or the submit ended): no note from now on. A note already on its way is let land
        (cut mid-request, it might land or not), and `answer` puts the answer in its place."""
        if self._task is not None and not self._task.done() and not self._sending:
            self._task.cancel()

    async def answer(self, text: str) -> None:
        """The final answer: in the note's place when the note was shown, else as any answer."""
        self.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._shown:
            try:
                await self._interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS)
                return
            except discord.HTTPException:
                log.warning("could not put the answer in place of the card's waiting note; sending it apart")
        await reply(self._interaction, text)


# The first answer where the bot is not in the channel (a member's own install used in a server without the bot, a
# group DM, a DM between others): the card is that answer, and the images come by DM.
BY_DM_NOTE = N_(
    "I'm not in this channel, so your images will come to you **by direct message** when they are ready. "
    "This card follows the job for 15 minutes."
)


def _age_restricted(channel: object) -> bool:
    """Whether Discord marks the channel age-restricted (a thread: its parent); a DM or a group DM never is, nor a
    channel Discord says nothing about."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


async def _submit_with_card(
    ctx: Services,
    interaction: discord.Interaction[Any],
    model: ModelConfig,
    submit: SubmitWith,
    *,
    private: bool,
    ticket: PressTicket | None,
    thread: ThreadPlan | None = None,
) -> None:
    # Everything from here may wait on Redis or RunPod: acknowledge within Discord's 3 seconds first.
    await interaction.response.defer(ephemeral=True, thinking=True)
    if not private and not bot_in_channel(interaction):
        await _submit_by_dm(ctx, interaction, model, submit, ticket=ticket)
        return
    channel: discord.abc.Messageable
    if private:
        try:
            channel = await interaction.user.create_dm()
        except discord.HTTPException:
            await reply(interaction, tr("I can't open a direct message with you. Try without `private`."))
            return
        upload_limit = DEFAULT_UPLOAD_LIMIT
    else:
        if interaction.channel is None or not isinstance(interaction.channel, discord.abc.Messageable):
            await reply(interaction, tr("I can't post in this kind of channel."))
            return
        channel = interaction.channel
        upload_limit = interaction.filesize_limit or DEFAULT_UPLOAD_LIMIT
    channel_id = getattr(channel, "id", interaction.channel_id)
    requester = Requester(
        user_id=interaction.user.id,
        guild_id=server_of(interaction),
        channel_id=channel_id,
        age_restricted=not private and _age_restricted(channel),
    )

    note = CardWaitNote(ctx, interaction, channel_id or 0)

    async def post_card(job: TrackedJob) -> None:
        try:
            # In turn with the channel's other posts: Discord allows a bot about one a second in a channel.
            note.start()
            async with ctx.notifier.message_turn(channel_id or 0):
                note.stop()
                card = await channel.send(
                    embed=card_embed(job),
                    view=card_view(job),
                    allowed_mentions=NO_PINGS,
                    nonce=CARD_NONCE.format(jid=job.jid),
                )
        except discord.Forbidden:
            if private:
                raise CardRefusedError(
                    tr("I can't send you direct messages (they are closed). Open them, or try without `private`.")
                ) from None
            raise CardRefusedError(tr("Discord didn't let me post the job card in this channel.")) from None
        except discord.DiscordServerError as exc:
            # Discord's own trouble (an outage, an overloaded node), not a mistake of ours: say so, not "error id".
            log.warning("job %s: Discord answered the card's post %s; not starting it", job.jid, exc.status)
            raise CardRefusedError(
                tr(
                    "Discord is having trouble right now (it answered the job card with {status} {reason}), so I "
                    "started nothing. Please try again in a moment.",
                    status=exc.status,
                    reason=exc.response.reason or tr("Server Error"),
                )
            ) from None
        await ctx.service.record_card(job.jid, card.id)
        if thread is not None and thread.start:
            try:
                # The card opens the thread (the thread's id is the card's); its result is posted there.
                await card.create_thread(name=thread.name)
            except discord.HTTPException as exc:
                log.warning("job %s: could not start its thread (%s); its result goes to the channel", job.jid, exc)
        if ticket is not None:
            # From here a second press of the same button is told where this job is.
            await ticket.started(job.jid)

    try:
        extra = {**_submit_extra(ctx, model, upload_limit, private), **locales_of(interaction)}
        if thread is not None and thread.start:
            extra[RESULT_THREAD_FIELD] = True
        submission = await submit(requester, extra, post_card)
    except SubmitFailedError as exc:
        # The card was posted before /run; it must not go on saying "Submitting…" once the job has ended.
        await _show_outcome(ctx, exc)
        raise
    finally:
        note.stop()
    job = submission.job
    if not submission.duplicate and not submission.result_in_hand:
        # The card was posted as "Submitting…"; show at once that RunPod has it, and why it waits. (A /runsync reply
        # that held the result is being delivered already: the card goes straight to the outcome.)
        try:
            await ctx.notifier.job_updated(job)
        except Exception:
            # Progress on the card is best effort (the poller edits it next); the job runs, and the member must
            # still hear where it is, not an error that invites a second, paid submit.
            log.warning("job %s: could not show on its card that RunPod has it", job.jid, exc_info=True)
    where = jump_url(interaction.guild_id if not private else None, job.channel_id, job.card_message_id)
    # Short: the card is where the job lives, and the result will mention the member when it is ready.
    if submission.duplicate:
        answer = tr("Already submitted — {link}", link=where) if where else tr("Already submitted.")
    else:
        answer = tr("Submitted — {link}", link=where) if where else tr("Submitted.")
    if thread is not None and thread.start:
        answer += tr(" Its result will be posted in the thread started from its card.")
    elif thread is not None and thread.note:
        answer += f"\n{thread.note}"
    await note.answer(answer)


async def _submit_by_dm(
    ctx: Services,
    interaction: discord.Interaction[Any],
    model: ModelConfig,
    submit: SubmitWith,
    *,
    ticket: PressTicket | None,
) -> None:
    """Where the bot is not in the channel: the card is the interaction's own (ephemeral) answer, edited through the
    interaction while its token lives (this process only: the token is never recorded), and the images go to the
    member's DM. The job belongs to no server unless the server installed the bot (`server_of`), so that server's
    settings and moderators have no say over it; the operator's defaults and the member's own limits apply."""
    requester = Requester(
        user_id=interaction.user.id,
        guild_id=server_of(interaction),
        # No channel of the bot's: delivery goes to the member's DM, from whichever process finishes the job.
        channel_id=None,
        age_restricted=_age_restricted(interaction.channel),
    )

    async def post_card(job: TrackedJob) -> None:
        try:
            await interaction.edit_original_response(
                content=render(BY_DM_NOTE), embed=card_embed(job), view=card_view(job), allowed_mentions=NO_PINGS
            )
        except discord.HTTPException:
            raise CardRefusedError(tr("Discord didn't let me show the job card here.")) from None
        ctx.notifier.follow_interaction(job.jid, interaction)
        if ticket is not None:
            await ticket.started(job.jid)

    try:
        submission = await submit(
            requester,
            {**_submit_extra(ctx, model, DEFAULT_UPLOAD_LIMIT, False), **locales_of(interaction, by_dm=True)},
            post_card,
        )
    except SubmitFailedError as exc:
        await _show_outcome(ctx, exc)
        raise
    if submission.duplicate:
        await reply(interaction, tr("Already submitted: your images will come to you by direct message."))
        return
    if not submission.result_in_hand:
        await ctx.notifier.job_updated(submission.job)


def _submit_extra(ctx: Services, model: ModelConfig, upload_limit: int, private: bool) -> dict[str, Any]:
    """What the job record keeps beside the request: how to deliver it, and the endpoint's queue as the bot last saw
    it (only when already known: a submit never waits for /health)."""
    extra: dict[str, Any] = {"upload_limit": upload_limit, "private": private}
    health = ctx.health.peek(model.endpoint_id)
    if health is not None:
        extra[QUEUE_AT_SUBMIT_FIELD] = health.jobs.in_queue
    return extra


async def _show_outcome(ctx: Services, failure: SubmitFailedError) -> None:
    """Show a failed submit's outcome on its card; if Discord will not have it now, a poller shows it when the job's
    delivery lease ends."""
    job = failure.job
    try:
        await ctx.notifier.job_finished(job, JobResult(job.final_state, reason=failure.reason))
        await ctx.service.outcome_shown(failure)
    except Exception:
        # The member still gets the reason in the command's answer.
        log.exception("job %s: could not show its outcome on the card; a poller will", job.jid)


async def _job_or_refuse(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> TrackedJob | None:
    job = await ctx.service.find(jid)
    if job is None:
        await reply(interaction, worded(JobNotFoundError(jid)))
    return job


# Re-roll and Retry follow the rule of every job action: a member's prompt is theirs to run again (and a moderator's
# of its server, or the operator's); anyone else can start their own job with /imagine.
OWN_JOB_HINT = N_(" To make images like these yourself, use /imagine with the same prompt (its seed is shown with it).")


async def _may_resubmit(ctx: Services, interaction: discord.Interaction[Any], job: TrackedJob, action: Action) -> bool:
    actor = ctx.actor_of(interaction)
    if may(actor, job):
        return True
    await reply(interaction, render(refusal(actor, job, action)) + render(OWN_JOB_HINT))
    return False


async def reroll_job(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """The same parameters with a new seed, as a new job of the member who clicked (the owner, a moderator of the
    job's server, or the operator)."""
    job = await _job_or_refuse(ctx, interaction, jid)
    if job is not None and await _may_resubmit(ctx, interaction, job, Action.REROLL):
        await _resubmit(ctx, interaction, job, Derivation.REROLL)


async def retry_job(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """The same parameters and seed again, for a job that failed, timed out or expired."""
    job = await _job_or_refuse(ctx, interaction, jid)
    if job is None or not await _may_resubmit(ctx, interaction, job, Action.RETRY):
        return
    if job.final_state not in RETRYABLE:
        await reply(interaction, tr("Only a failed, timed-out or expired job can be retried."))
        return
    await _resubmit(ctx, interaction, job, Derivation.RETRY)


async def _resubmit(ctx: Services, interaction: discord.Interaction[Any], job: TrackedJob, how: Derivation) -> None:
    """Submit a job's parameters again for the member who clicked (a Retry keeps the seed, a Re-roll draws a new
    one); a private job's buttons stay in the DM."""
    private = bool(job.extra.get("private")) and interaction.guild_id is None
    options = ImageRequest.from_dict(job.request).as_options(keep_seed=how is Derivation.RETRY)
    # An upscale asked again enlarges the same drawing: its record keeps naming the model that drew it.
    carried = {key: job.extra[key] for key in (PARENT_MODEL_FIELD,) if key in job.extra}
    await submit_flow(
        ctx, interaction, options, job.model, private=private, parent=Parent(job.jid, how), carried=carried
    )


async def deliver_again(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """Post again the images Discord refused (once its cause is fixed), fetched from RunPod again: no new GPU job."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    job = await ctx.service.deliver_again(jid, ctx.actor_of(interaction))
    try:
        # The card drops its "Not delivered" and its button, so nobody presses it twice.
        await ctx.notifier.refresh_card(jid)
    except Exception:
        log.exception("job %s: could not show on its card that it is delivered again", jid)
    await reply(
        interaction,
        tr(
            "Delivering job `{jid}` again: its images are fetched from RunPod once more (no new GPU job) and "
            "will replace its card. If RunPod no longer has them, the card will say so and offer Retry.",
            jid=job.jid,
        ),
    )


async def cancel_job(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """Cancel for the owner, a moderator of the job's server or the operator; the reply and the card say what RunPod
    answered."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        result = await ctx.service.cancel(jid, ctx.actor_of(interaction))
    except NotAllowedError as exc:
        await reply(interaction, worded(exc))
        return
    if result.first_request and result.was_live:
        try:
            await ctx.notifier.refresh_card(jid)
        except Exception:
            # The member still reads what happened in the reply; the poller edits the card next.
            log.exception("job %s: could not show the cancel on the card", jid)
    await reply(interaction, render(result.summary()))


async def result_access(
    ctx: Services, interaction: discord.Interaction[Any], jid: str, action: Action, hint: str = ""
) -> tuple[bool, TrackedJob | None]:
    """Whether the clicker may act on the result of job `jid` (its owner, a moderator of its server, the operator),
    with the job if still on record; refused in words (and `hint`) when not. A job no longer on record is judged by
    where its message is: a moderator of that server, or in a DM its recipient (the only one who can click)."""
    job = await ctx.service.find(jid)
    actor = ctx.actor_of(interaction)
    if job is None:
        if actor.moderator or actor.operator or interaction.guild_id is None:
            return True, None
        await reply(
            interaction,
            tr(
                "Job `{jid}` is no longer on record: only a moderator of this server can {action}.",
                jid=jid,
                action=render(action.value),
            ),
        )
        return False, None
    if may(actor, job):
        return True, job
    await reply(interaction, render(refusal(actor, job, action)) + render(hint))
    return False, job


async def delete_result(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """Delete a result message, for the job's owner, a moderator of its server or the operator."""
    allowed, _ = await result_access(ctx, interaction, jid, Action.DELETE)
    if not allowed:
        return
    if interaction.message is None:
        await reply(interaction, tr("That message is gone already."))
        return
    await interaction.response.defer(ephemeral=True)
    with contextlib.suppress(discord.NotFound):
        await interaction.message.delete()
    await reply(interaction, tr("Deleted."))


async def remix_job(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """Open the Remix form (prompt and negative prompt prefilled) for the owner, a moderator of the job's server or
    the operator; submitting it runs a new job like /imagine."""
    job = await _job_or_refuse(ctx, interaction, jid)
    if job is not None and await _may_resubmit(ctx, interaction, job, Action.REMIX):
        await interaction.response.send_modal(RemixModal(job))


async def remix_submit(
    ctx: Services, interaction: discord.Interaction[Any], jid: str, prompt: str, negative: str
) -> None:
    """The job's parameters with the edited prompts and a new seed, through the same submit as /imagine (quotas,
    cooldown and deny-lists included)."""
    job = await _job_or_refuse(ctx, interaction, jid)
    if job is None or not await _may_resubmit(ctx, interaction, job, Action.REMIX):
        return
    options = ImageRequest.from_dict(job.request).as_options(keep_seed=False)
    options = options.model_copy(update={"prompt": prompt, "negative_prompt": negative.strip() or None})
    private = bool(job.extra.get("private")) and interaction.guild_id is None
    await submit_flow(ctx, interaction, options, job.model, private=private, parent=Parent(job.jid, Derivation.REMIX))


async def job_info(ctx: Services, interaction: discord.Interaction[Any], jid: str) -> None:
    """Every parameter of the job, the seed of each image, its queue and GPU time and its id, to the clicker alone.
    Anyone who sees the result may read what made it."""
    job = await _job_or_refuse(ctx, interaction, jid)
    if job is None:
        return
    parent = parent_of(job)
    origin = None
    if parent is not None:
        parent_job = await ctx.service.find(parent.jid)
        origin = made_from(parent, job_link(parent_job) if parent_job is not None else None)
    await interaction.response.send_message(embed=info_embed(job, origin), ephemeral=True, allowed_mentions=NO_PINGS)


async def upscale_image(ctx: Services, interaction: discord.Interaction[Any], jid: str, index: int) -> None:
    """U<index>, for the job's owner, a moderator of its server or the operator: with an upscaler configured, a new
    job that enlarges image `index` of the result the button is on (the file as Discord holds it on that message);
    without one, that image posted as a message of its own, at full resolution."""
    allowed, job = await result_access(ctx, interaction, jid, Action.UPSCALE)
    if not allowed:
        return
    attachments = interaction.message.attachments if interaction.message is not None else []
    channel = interaction.channel
    if not 1 <= index <= len(attachments) or not isinstance(channel, discord.abc.Messageable):
        await reply(interaction, tr("Image {index} is no longer on that message.", index=index))
        return
    attachment = attachments[index - 1]
    upscaler = ctx.service.upscaler()
    if upscaler is not None:
        await _upscale_job(ctx, interaction, jid, job, index, attachment, upscaler)
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    data = await attachment.read()
    prompt = shown_prompt(" ".join(str((job.request if job else {}).get("prompt", "")).split()), 1000)
    view = discord.ui.LayoutView(timeout=None)
    # Posted where the button was pressed: a channel reads the job's public locale; a DM (a private job's result, or
    # one the channel refused that went to its member instead) the member's.
    in_dm = interaction.guild_id is None
    extra = {**job.extra, "private": job.extra.get("private") or in_dm} if job is not None else locales_of(interaction)
    with speaking(public_locale(extra)):
        if job is not None:
            heading = tr("Image {index} of <@{user}>'s **{prompt}**", index=index, user=str(job.user_id), prompt=prompt)
        else:
            heading = tr("Image {index} of **{prompt}**", index=index, prompt=prompt)
        size = tr("{width}×{height}, full size", width=attachment.width, height=attachment.height)
        view.add_item(discord.ui.TextDisplay(f"{heading}\n-# {size}"))
        delete = JobButton("delete", jid)
    view.add_item(discord.ui.MediaGallery(discord.MediaGalleryItem(f"attachment://{attachment.filename}")))
    view.add_item(discord.ui.ActionRow(delete))
    try:
        sent = await channel.send(
            view=view, file=discord.File(io.BytesIO(data), filename=attachment.filename), allowed_mentions=NO_PINGS
        )
    except discord.Forbidden:
        await reply(interaction, tr("Discord didn't let me post in this channel."))
        return
    await reply(interaction, tr("Image {index}, on its own: {link}", index=index, link=sent.jump_url))


async def _upscale_job(
    ctx: Services,
    interaction: discord.Interaction[Any],
    jid: str,
    job: TrackedJob | None,
    index: int,
    attachment: discord.Attachment,
    upscaler: ModelConfig,
) -> None:
    """An upscale job of image `index` of job `jid`, for the member who clicked, through the same card flow as any
    job (`JobService.submit_upscale`: quotas, cooldown, deny-lists, one `/run` per click)."""
    if job is None:
        await reply(
            interaction,
            tr(
                "Job `{jid}` is no longer on record, so image {index} cannot be upscaled (an upscale starts from the "
                "job's parameters). Allowed: upscaling the images of jobs still on record; this image stays as it is.",
                jid=jid,
                index=index,
            ),
        )
        return
    # A private job's upscale stays in the DM, as its Re-roll does.
    private = bool(job.extra.get("private")) and interaction.guild_id is None
    with ctx.in_flight.track():
        if not await _may_post_here(interaction, private):
            return

        async def submit(requester: Requester, extra: dict[str, Any], before_run: BeforeRun) -> Submission:
            return await ctx.service.submit_upscale(
                job,
                index,
                attachment.url,
                requester,
                actor=ctx.actor_of(interaction),
                upscaler=upscaler.name,
                request_id=str(interaction.id),
                extra=extra,
                before_run=before_run,
            )

        await _card_flow(ctx, interaction, upscaler, submit, private=private)


# An active job's state as /cancel's choices name it (in the member's language).
ACTIVE_STATE_WORDS = {
    JobState.SUBMITTING: N_("submitting"),
    JobState.QUEUED: N_("queued"),
    JobState.RUNNING: N_("running"),
}


def job_choice_label(job: TrackedJob) -> str:
    """/cancel's choice for a job: its state and its prompt, in Discord's 100 characters."""
    prompt = " ".join(str(job.request.get("prompt", "")).split())
    state = JobState(job.final_state)
    label = f"{tr(ACTIVE_STATE_WORDS[state]) if state in ACTIVE_STATE_WORDS else state.value.lower()} · {prompt}"
    return label[:97] + "…" if len(label) > 100 else label
