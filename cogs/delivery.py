"""The Discord notifier: edits job cards as jobs move, and posts finished images as a new message that replaces
the card.

Everything goes through the channel REST API (not the interaction token, which dies after 15 minutes), so a job
that outlives its interaction, or a process restart, is still delivered. The one exception is a job asked for where
the bot is not in the channel (a member's own install of the app): its card is the interaction's answer, edited
through the interaction by the process that took it while the token lives (the token stays in that process's
memory, never in Redis or a log), and its images go to the member's DM, which any process can deliver.

Delivery is idempotent: result messages are sent with a nonce Discord enforces, and their ids are stored as soon as
they exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from cogs.common import DEFAULT_UPLOAD_LIMIT, NO_PINGS, job_link, owner_only, result_mentions
from cogs.i18n import public_locale, speaking, tr
from cogs.images import Upload, fit_uploads
from cogs.jobs_ui import CARD_NONCE, RESULT_NONCE, card_view, result_layout
from cogs.pacing import DiscordBudget, Pacer, Route
from cogs.render import card_embed, clip, result_text
from cogs.variations import vary_buttons
from jobs.image_metadata import job_infotexts
from jobs.labels import RESULT_CHANNEL_FIELD, RESULT_GUILD_FIELD, RESULT_SEEDS_FIELD, RESULT_THREAD_FIELD
from jobs.metrics import Metrics
from jobs.notifier import Delivery, DeliveryFailed, JobResult
from jobs.service import JobService
from jobs.tasks import BackgroundTasks
from jobs.text import N_, stored
from jobs.waiting import HealthCache, explain_wait
from storage.models import JobState, TrackedJob

if TYPE_CHECKING:
    from discord.ext import commands

log = logging.getLogger(__name__)

HTTP_CLIENT_ERRORS = 400
HTTP_SERVER_ERRORS = 500
RATE_LIMITED = 429
PAYLOAD_TOO_LARGE = 413
# After a 413 the images are re-encoded to half their total size (not under this) and posted again, this many times.
MAX_SHRINKS = 2
MIN_RETRY_UPLOAD_LIMIT = 1024 * 1024
# Edit state of a card is kept this long after its last edit (enough to spare identical edits of a quiet job).
DEFAULT_FORGET_CARD_AFTER_S = 600.0
# Discord's error text shown on the card, at most this long.
REFUSAL_TEXT_LIMIT = 300
# A closing notifier lets the card edits under way finish for this long: one waiting on Discord's rate limit (a
# 5 s window) may land after another process showed the outcome, and must then show the outcome again.
CLOSE_EDITS_S = 6.0
# Discord's answers for a thread that takes no messages or edits now: "Operation on an archived thread" (an edit in
# an archived thread, or a post in a locked and archived one) and "Thread is locked".
THREAD_ARCHIVED = 50083
THREAD_LOCKED = 160005
THREAD_CLOSED_CODES = frozenset({THREAD_ARCHIVED, THREAD_LOCKED})


@dataclass
class _CardState:
    last_edit: float = 0.0
    last_payload: str = ""
    # The newest state of the job, waiting for its turn with the pacer (only the newest is ever shown).
    newest: TrackedJob | None = None
    # Set when this process finishes the job: no progress edit may follow.
    closed: bool = False


@dataclass
class DiscordNotifier:
    """Implements `jobs.notifier.Notifier` for Discord."""

    bot: commands.Bot
    # Reads the job records and records the messages delivery posts (never the store itself).
    service: JobService
    health: HealthCache
    # At most one edit of a card per this many seconds (CARD_EDIT_INTERVAL_S).
    edit_interval_s: float
    # What this process may ask of Discord (DISCORD_CHANNEL_REQUESTS, DISCORD_CHANNEL_WINDOW_S,
    # DISCORD_REQUESTS_PER_S): every request of the notifier waits for its turn with the pacer.
    budget: DiscordBudget
    metrics: Metrics | None = None
    # Only the cards this process is editing or has just edited: a process that never delivers (a gateway) must
    # not keep one entry per job for ever.
    # A card not edited for this long is forgotten (a gateway never sees the job finish).
    forget_after_s: float = DEFAULT_FORGET_CARD_AFTER_S
    _cards: dict[str, _CardState] = field(default_factory=dict)
    # Cards that are an interaction's own answer (the bot is not in the channel), by job: edited through the
    # interaction's token until it expires or the job's outcome is shown. In memory only: the token is a secret.
    _interaction_cards: dict[str, discord.Interaction[Any]] = field(default_factory=dict)
    _pruned_at: float = 0.0
    _pacer: Pacer = field(init=False)
    _tasks: BackgroundTasks = field(default_factory=lambda: BackgroundTasks("discord-notifier"))

    def __post_init__(self) -> None:
        self._pacer = Pacer(self.budget, self.edit_interval_s)

    @property
    def cards_tracked(self) -> int:
        """How many cards this process holds edit state for."""
        return len(self._cards)

    async def close(self) -> None:
        """Let the edits under way finish and show the outcome again where one landed after it (`CLOSE_EDITS_S` in
        all), drop the progress edits still waiting for their turn, and cancel the rest (the final edits are the
        poller's)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_EDITS_S
        # The pacer keeps granting delivery turns meanwhile: a restore needs one after its edit landed.
        await self._pacer.settle(timeout_s=CLOSE_EDITS_S)
        await self._tasks.close(timeout_s=max(0.0, deadline - loop.time()))
        await self._pacer.close()

    def follow_interaction(self, jid: str, interaction: discord.Interaction[Any]) -> None:
        """Edit the job's card through `interaction` (whose answer it is) while its token lives."""
        self._interaction_cards[jid] = interaction

    def _card_key(self, job: TrackedJob) -> int | None:
        """What the card's edits are paced by: its channel, or the interaction it answers; None: no card here."""
        if job.channel_id is not None and job.card_message_id is not None:
            return job.channel_id
        interaction = self._interaction_cards.get(job.jid)
        return interaction.id if interaction is not None else None

    def _channel(self, job: TrackedJob) -> discord.PartialMessageable | None:
        if job.channel_id is None:
            return None
        return self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    # --- progress ----------------------------------------------------------------------------------------------

    async def job_updated(self, job: TrackedJob) -> None:
        """Show the job's newest state on its card when the pacer gives the card its turn: at most once per
        `edit_interval_s`, within the channel's budget, and only when what it shows changed. Never waits for
        Discord."""
        self._forget_idle_cards()
        key = self._card_key(job)
        if key is None:
            return
        state = self._cards.setdefault(job.jid, _CardState())
        if state.closed:
            return
        state.newest = job
        self._pacer.offer(job.jid, (Route.EDIT, key), partial(self._edit_card, job.jid, state))

    def _forget_idle_cards(self) -> None:
        """Drop the state of cards not edited for `forget_after_s`, checking at most once per edit interval.

        Such a card may be edited at once anyway; what it showed last (which spares an identical edit) is lost, so
        a job silent for that long may get one edit that changes nothing.
        """
        now = time.monotonic()
        if now - self._pruned_at < min(self.edit_interval_s, self.forget_after_s):
            return
        self._pruned_at = now
        for jid in [jid for jid, interaction in self._interaction_cards.items() if interaction.is_expired()]:
            # Its token is dead: the card can no longer be edited, and the DM carries the result.
            del self._interaction_cards[jid]
        cutoff = now - self.forget_after_s
        for jid in [jid for jid, state in self._cards.items() if state.last_edit <= cutoff]:
            if not self._pacer.holds(jid):
                del self._cards[jid]

    def message_turn(self, channel_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        """The turn of a message the cogs post in a channel (a job's card): a create in the channel's budget, in the
        order asked with the results, so a burst of cards neither overdraws Discord's bucket nor jumps the results."""
        return self._pacer.slot((Route.CREATE, channel_id))

    def posts_waiting(self, channel_id: int) -> int:
        """Messages waiting for their turn to be posted in the channel (cards and results)."""
        return self._pacer.queued((Route.CREATE, channel_id))

    async def refresh_card(self, jid: str) -> None:
        """Show the job's card again from its record (a cancel request and RunPod's answer to it changed it)."""
        record = await self.service.find(jid)
        if record is None:
            return
        if record.state.is_live:
            await self.job_updated(record)
        else:
            # Finished meanwhile: the record already holds the outcome and the cancel's answer.
            await self._show_final(record, self._final_embed(record, record.result_message_ids))

    async def _edit_card(self, jid: str, state: _CardState) -> bool:
        """The card's progress edit, in its turn; False when nothing was sent."""
        job, state.newest = state.newest, None
        if job is None or state.closed:
            return False
        reason = explain_wait(await self.health.get(job.endpoint_id)) if job.state is JobState.QUEUED else None
        embed = card_embed(job, wait_reason=reason)
        payload = repr(embed.to_dict())
        if payload == state.last_payload:
            return False
        if not await self._live(jid):
            # Finished meanwhile, here or in another process: the final edit has the last word.
            if self._cards.get(jid) is state and state.newest is None:
                del self._cards[jid]
            return False
        state.last_edit = time.monotonic()
        state.last_payload = payload
        await self._write_card(job, embed)
        if not state.closed:
            # After this edit's turn ends: showing the outcome again is a request of its own.
            self._tasks.spawn(self._restore_outcome(jid, state), name=f"card-restore-{jid}")
        return True

    async def _live(self, jid: str) -> bool:
        record = await self.service.find(jid)
        return record is not None and record.state.is_live

    async def _restore_outcome(self, jid: str, state: _CardState) -> None:
        """Show the outcome again if the job finished while a progress edit was on its way.

        Another process may have finished the job and shown its outcome on the card while this edit waited (for a
        rate limit, say); landing after it, this edit hid the outcome. A finisher records the outcome before it
        edits the card, so reading the record after this edit landed tells whether that can have happened.
        """
        record = await self.service.find(jid)
        if record is None or record.state.is_live or state.closed:
            return
        await self._show_final(record, self._final_embed(record, record.result_message_ids), state)

    async def _show_final(self, job: TrackedJob, embed: discord.Embed, state: _CardState | None = None) -> None:
        """A finished job's card, edited ahead of every progress edit; not again if this process showed it."""
        payload = repr(embed.to_dict())
        key = self._card_key(job)
        if key is None or (state is not None and state.last_payload == payload):
            return
        async with self._pacer.slot((Route.EDIT, key), card=job.jid):
            if state is not None:
                if state.last_payload == payload:
                    return
                state.last_payload = payload
            await self._write_card(job, embed)

    async def _write_card(self, job: TrackedJob, embed: discord.Embed) -> None:
        interaction = self._interaction_cards.get(job.jid)
        if interaction is not None and (job.channel_id is None or job.card_message_id is None):
            await self._write_interaction_card(job, interaction, embed)
            return
        channel = self._channel(job)
        if channel is None or job.card_message_id is None:
            return
        try:
            await channel.get_partial_message(job.card_message_id).edit(
                embed=embed, view=card_view(job), allowed_mentions=NO_PINGS
            )
        except discord.NotFound:
            log.info("job %s: its card was deleted; not editing it", job.jid)
        except discord.HTTPException as exc:
            if exc.code in THREAD_CLOSED_CODES:
                # An archived or locked thread: its card stays as it was; the result still comes (see _send_result).
                log.info("job %s: its thread is archived or locked; not editing its card (%s)", job.jid, exc.code)
            elif isinstance(exc, discord.Forbidden):
                log.warning("job %s: no longer allowed to edit its card", job.jid)
            else:
                raise

    async def _write_interaction_card(
        self, job: TrackedJob, interaction: discord.Interaction[Any], embed: discord.Embed
    ) -> None:
        try:
            await interaction.edit_original_response(embed=embed, view=card_view(job), allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            # 401 (50027) once the token's 15 minutes are over, 404 if the member dismissed the card: stop editing
            # it; the result still goes to the DM. (Discord's error names no token; the token itself is never logged.)
            self._interaction_cards.pop(job.jid, None)
            log.info("job %s: its card can no longer be edited (HTTP %s, error %s)", job.jid, exc.status, exc.code)

    # --- results -----------------------------------------------------------------------------------------------

    async def job_finished(self, job: TrackedJob, result: JobResult) -> Delivery:
        """Post the images (or show the reason on the card); raises `DeliveryFailed` (final when Discord refused
        this result for good) or an unexpected error, which the poller retries."""
        try:
            delivery = await self._deliver(job, result)
        except Exception:
            if self.metrics is not None:
                self.metrics.delivery_failures.inc()
            raise
        if self.metrics is not None:
            self.metrics.jobs_finished.labels(state=result.outcome.value).inc()
            if job.finished_at is not None:
                lag = (datetime.now(UTC) - job.finished_at).total_seconds()
                self.metrics.delivery_lag.observe(max(0.0, lag))
        return delivery

    async def _deliver(self, job: TrackedJob, result: JobResult) -> Delivery:
        card = self._cards.pop(job.jid, None)
        if card is not None:
            card.closed = True
        # A progress edit waiting for its turn is dropped; one on its way lands before the final one (the card's
        # final requests wait for it with the pacer).
        self._pacer.discard(job.jid)
        final = job.model_copy(update={"state": result.outcome, "outcome": result.outcome, "error": result.reason})
        message_ids = list(job.result_message_ids)
        if result.undelivered is not None:
            # Delivery gave up: record why before the card shows it, as for every outcome (see `_restore_outcome`).
            final = await self.service.record_undelivered(final, result.undelivered)
        elif result.outcome is JobState.COMPLETED and result.images and not message_ids:
            final = await self._post_result(final, result)
            message_ids = final.result_message_ids
        if message_ids and _result_replaces_card(final):
            await self._delete_card(final, card)
        else:
            await self._finish_card(final, message_ids, card)
        return Delivery(message_ids=message_ids)

    async def _post_result(self, job: TrackedJob, result: JobResult) -> TrackedJob:
        """Post the images and record where they are before anything else happens; the job as now recorded.
        Raises `DeliveryFailed` (final when Discord refused this result for good)."""
        limit = int(job.extra.get("upload_limit") or DEFAULT_UPLOAD_LIMIT)
        shrinks = 0
        while True:
            uploads = await fit_uploads(result.images, f"{job.jid}", limit, job_infotexts(job, result.images))
            try:
                message = await self._send_result(job, uploads)
                break
            except discord.HTTPException as exc:
                total = sum(len(upload.data) for upload in uploads)
                smaller = max(MIN_RETRY_UPLOAD_LIMIT, total // 2)
                if exc.status == PAYLOAD_TOO_LARGE and shrinks < MAX_SHRINKS and smaller < total:
                    # The upload limit we were told was wrong (a server lost its boost, a DM): a smaller payload
                    # may pass, the same one never will.
                    log.warning("job %s: %s bytes refused as too large; re-encoding under %s", job.jid, total, smaller)
                    limit, shrinks = smaller, shrinks + 1
                    continue
                raise _refusal(exc) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise DeliveryFailed(UNREACHABLE.format(error=type(exc).__name__)) from exc
        details = {
            RESULT_CHANNEL_FIELD: message.channel.id,
            RESULT_GUILD_FIELD: None if isinstance(message.channel, discord.DMChannel) else job.guild_id,
            RESULT_SEEDS_FIELD: [upload.seed for upload in uploads],
        }
        return await self.service.record_results(job, [message.id], details)

    async def _send_result(self, job: TrackedJob, uploads: list[Upload]) -> discord.Message:
        """The images as one gallery message at the bottom of the job's channel (not a reply: that would drag the card
        back into view), mentioning its owner alone; where the bot may not post, by direct message to the member."""
        text = result_text(
            job, [upload.seed for upload in uploads], reencoded=any(upload.reencoded for upload in uploads)
        )
        filenames = [upload.filename for upload in uploads]

        def layout(note: str = "") -> discord.ui.LayoutView:
            shown = f"{text}\n{note}" if note else text
            return result_layout(job, shown, filenames, vary_buttons(job, len(filenames), self.service.catalog))

        own_thread = await self._send_in_own_thread(job, uploads, layout)
        if own_thread is not None:
            return own_thread
        channel = self._channel(job)
        if channel is not None:
            try:
                # A message create: a bucket of its own, so it waits for no progress edit (nor for the card's).
                async with self._pacer.slot((Route.CREATE, channel.id)):
                    return await channel.send(
                        view=layout(),
                        files=_files(uploads),
                        allowed_mentions=result_mentions(job),
                        nonce=RESULT_NONCE.format(jid=job.jid),
                    )
            except discord.HTTPException as exc:
                if exc.code in THREAD_CLOSED_CODES:
                    moved = await self._send_past_closed_thread(job, uploads, layout)
                    if moved is not None:
                        return moved
                elif not isinstance(exc, discord.Forbidden | discord.NotFound):
                    raise
                log.warning("job %s: cannot post in its channel (%s); sending the images by DM", job.jid, exc)
        user = self.bot.get_user(job.user_id)
        if user is None:
            async with self._pacer.slot(None):
                user = await self.bot.fetch_user(job.user_id)
        dm = user.dm_channel
        if dm is None:
            async with self._pacer.slot(None):
                dm = await user.create_dm()
        # By DM the result speaks its member's language, as everything the bot sends a member alone.
        member_job = job.model_copy(update={"extra": {**job.extra, "private": True}})
        text = result_text(
            member_job, [upload.seed for upload in uploads], reencoded=any(upload.reencoded for upload in uploads)
        )
        # The same nonce as in the channel: an attempt that posted here and died before recording it is found again.
        async with self._pacer.slot((Route.CREATE, dm.id)):
            return await dm.send(
                view=result_layout(
                    member_job, text, filenames, vary_buttons(job, len(filenames), self.service.catalog)
                ),
                files=_files(uploads),
                allowed_mentions=owner_only(job.user_id),
                nonce=RESULT_NONCE.format(jid=job.jid),
            )

    async def _send_in_own_thread(
        self, job: TrackedJob, uploads: list[Upload], layout: Callable[[str], discord.ui.LayoutView]
    ) -> discord.Message | None:
        """A job whose card started a thread of its own posts its result there (the thread's id is the card's); None
        when it has none, or the thread is gone, locked or closed to the bot (the card's channel is next)."""
        if not job.extra.get(RESULT_THREAD_FIELD) or job.card_message_id is None:
            return None
        thread = self.bot.get_partial_messageable(job.card_message_id, guild_id=job.guild_id)
        try:
            async with self._pacer.slot((Route.CREATE, thread.id)):
                return await thread.send(
                    view=layout(""),
                    files=_files(uploads),
                    allowed_mentions=result_mentions(job),
                    nonce=RESULT_NONCE.format(jid=job.jid),
                )
        except discord.HTTPException as exc:
            if not (isinstance(exc, discord.Forbidden | discord.NotFound) or exc.code in THREAD_CLOSED_CODES):
                raise
            log.warning("job %s: cannot post in its own thread (%s); posting in its channel", job.jid, exc)
            return None

    async def _send_past_closed_thread(
        self, job: TrackedJob, uploads: list[Upload], layout: Callable[[str], discord.ui.LayoutView]
    ) -> discord.Message | None:
        """The job's thread was locked (and maybe archived) while the job ran: reopen it where the bot may and post
        there, or else post in the thread's parent channel, saying so with a link to the thread. None when neither
        works (the owner's DM is next)."""
        assert job.channel_id is not None
        try:
            async with self._pacer.slot(None):
                thread = await self.bot.fetch_channel(job.channel_id)
        except discord.HTTPException as exc:
            log.warning("job %s: cannot read its thread (%s)", job.jid, exc)
            return None
        if not isinstance(thread, discord.Thread):
            return None
        nonce = RESULT_NONCE.format(jid=job.jid)
        try:
            # Unarchiving a locked thread takes Manage Threads; Discord says no otherwise.
            async with self._pacer.slot(None):
                reopened = await thread.edit(archived=False)
            async with self._pacer.slot((Route.CREATE, reopened.id)):
                return await reopened.send(
                    view=layout(""), files=_files(uploads), allowed_mentions=result_mentions(job), nonce=nonce
                )
        except discord.HTTPException as exc:
            log.info("job %s: cannot reopen its thread (%s); posting in its parent channel", job.jid, exc)
        link = f"https://discord.com/channels/{job.guild_id}/{thread.id}"
        with speaking(public_locale(job.extra)):
            if thread.locked:
                note = tr("-# Posted here: the thread {link} was locked before these images were ready.", link=link)
            else:
                note = tr("-# Posted here: the thread {link} was archived before these images were ready.", link=link)
        parent = self.bot.get_partial_messageable(thread.parent_id, guild_id=job.guild_id)
        try:
            async with self._pacer.slot((Route.CREATE, parent.id)):
                return await parent.send(
                    view=layout(note), files=_files(uploads), allowed_mentions=result_mentions(job), nonce=nonce
                )
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("job %s: cannot post in its thread's parent channel either (%s)", job.jid, exc)
            return None

    @staticmethod
    def _final_embed(job: TrackedJob, message_ids: list[int]) -> discord.Embed:
        """The card of a finished job, with a link to its result."""
        embed = card_embed(job)
        link = job_link(job.model_copy(update={"result_message_ids": message_ids}))
        if message_ids and link:
            # A result sent by DM (the channel refused it) is linked there.
            with speaking(public_locale(job.extra)):
                embed.add_field(name=tr("Result"), value=link, inline=False)
        return embed

    async def _delete_card(self, job: TrackedJob, state: _CardState | None = None) -> None:
        """The result, now recorded, takes the card's place: a card already gone (an earlier attempt deleted it) is
        what we want, so this may run any number of times."""
        channel = self._channel(job)
        if channel is None or job.card_message_id is None:
            return
        try:
            async with self._pacer.slot((Route.DELETE, channel.id), card=job.jid):
                await channel.get_partial_message(job.card_message_id).delete()
        except discord.NotFound:
            pass
        except discord.Forbidden:
            # Bots may always delete their own messages; a channel that hides itself from the bot still says no.
            log.warning("job %s: not allowed to delete its card; showing the outcome on it", job.jid)
            await self._finish_card(job, job.result_message_ids, state)

    async def _finish_card(self, job: TrackedJob, message_ids: list[int], state: _CardState | None = None) -> None:
        embed = self._final_embed(job, message_ids)
        if job.card_message_id is None and job.jid in self._interaction_cards:
            # The interaction's own card: its outcome (with a link to the DM, or why it could not be sent) is its
            # last edit.
            await self._show_final(job, embed, state)
            self._interaction_cards.pop(job.jid, None)
            return
        if job.card_message_id is not None:
            await self._show_final(job, embed, state)
            return
        # No card (the process stopped before posting it): say what happened in a new message instead.
        channel = self._channel(job)
        if channel is None:
            return
        try:
            async with self._pacer.slot((Route.CREATE, channel.id), card=job.jid):
                card = await channel.send(
                    f"<@{job.user_id}>",
                    embed=embed,
                    view=card_view(job),
                    allowed_mentions=NO_PINGS,
                    nonce=CARD_NONCE.format(jid=job.jid),
                )
            if _shown(card) != _shown_embed(embed):
                # Discord answers a repeated nonce with the message it already has: the card a process posted just
                # before it died, unrecorded and still showing the job as it was then.
                async with self._pacer.slot((Route.EDIT, channel.id), card=job.jid):
                    await card.edit(embed=embed, view=card_view(job), allowed_mentions=NO_PINGS)
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("job %s: cannot post its outcome: %s", job.jid, exc)
            return
        await self.service.record_card(job.jid, card.id)


def _result_replaces_card(job: TrackedJob) -> bool:
    """The result sits in the card's channel, so the card has done its work. A result that went to the owner's DM
    (the channel refused it) leaves the card in place, with the outcome and a link."""
    where = job.extra.get(RESULT_CHANNEL_FIELD)
    # A result recorded before its channel was kept was posted in the card's channel.
    return where is None or where == job.channel_id


def _files(uploads: list[Upload]) -> list[discord.File]:
    # A File is consumed by the request that sends it: every attempt needs fresh ones.
    return [discord.File(io.BytesIO(upload.data), filename=upload.filename) for upload in uploads]


def _refusal(exc: discord.HTTPException) -> DeliveryFailed:
    """What Discord's error means for this result: a 4xx (but 429) is final for this payload, the rest may pass."""
    detail = exc.text or exc.response.reason or N_("no reason given")
    said = (SAID_WITH_CODE if exc.code else SAID).format(
        detail=clip(detail, REFUSAL_TEXT_LIMIT), status=exc.status, code=exc.code
    )
    if HTTP_CLIENT_ERRORS <= exc.status < HTTP_SERVER_ERRORS and exc.status != RATE_LIMITED:
        return DeliveryFailed(REFUSED.format(said=said), final=True)
    return DeliveryFailed(NOT_TAKEN.format(said=said))


# Why a result was not delivered, kept in the job's record as English and translated where it is shown (`render`).
UNREACHABLE = stored("Discord could not be reached ({error})")
REFUSED = stored("Discord refused to post the images: {said}")
NOT_TAKEN = stored("Discord did not take the images: {said}")
# What Discord said: its own words (or ours when it gave none), with its HTTP status and error code.
SAID = stored("{detail} (HTTP {status})")
SAID_WITH_CODE = stored("{detail} (HTTP {status}, error {code})")


def _shown_embed(embed: discord.Embed) -> tuple[str | None, list[tuple[str | None, str | None]]]:
    """What a member reads on a card: its title and fields."""
    return embed.title, [(item.name, item.value) for item in embed.fields]


def _shown(message: discord.Message) -> tuple[str | None, list[tuple[str | None, str | None]]] | None:
    return _shown_embed(message.embeds[0]) if message.embeds else None
