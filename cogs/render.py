"""Embeds for job cards, results, health and job lists, kept within Discord's limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import discord

from cogs.i18n import public_locale, render, speaking, tr, trn
from jobs.health import EndpointError
from jobs.labels import QUEUE_AT_SUBMIT_FIELD, RESULT_SEEDS_FIELD, delivery_failure, state_label
from jobs.lineage import PARENT_MODEL_FIELD, Derivation, Parent
from jobs.reasons import Reason
from jobs.service import CancelOutcome, CancelReport
from jobs.text import N_
from runpod_client.models import Health
from storage.models import JobState, TrackedJob

PROMPT_LIMIT = 1000
FIELD_LIMIT = 1024
TITLE_LIMIT = 256

STATE_COLOURS: dict[JobState, discord.Colour] = {
    JobState.SUBMITTING: discord.Colour.light_grey(),
    JobState.QUEUED: discord.Colour.gold(),
    JobState.RUNNING: discord.Colour.blurple(),
    JobState.COMPLETED: discord.Colour.green(),
    JobState.FAILED: discord.Colour.red(),
    JobState.CANCELLED: discord.Colour.dark_grey(),
    JobState.TIMED_OUT: discord.Colour.orange(),
    JobState.EXPIRED: discord.Colour.orange(),
    JobState.SUBMIT_UNKNOWN: discord.Colour.orange(),
}
RETRYABLE = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.EXPIRED, JobState.SUBMIT_UNKNOWN})


def clip(text: str, limit: int) -> str:
    """Cut text to `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_prompt(text: str, limit: int = PROMPT_LIMIT) -> str:
    """A prompt as embed text: markdown and mentions neutralised, length bounded."""
    return clip(discord.utils.escape_mentions(discord.utils.escape_markdown(text)), limit) or "\u200b"


def relative(moment: datetime | None) -> str:
    """Discord renders this live in every member's client ("2 minutes ago")."""
    return f"<t:{int(moment.timestamp())}:R>" if moment else "-"


def seconds(milliseconds: int | None) -> str:
    return "-" if milliseconds is None else tr("{seconds:.1f} s", seconds=milliseconds / 1000)


def dropped_images(job: TrackedJob) -> str | None:
    """What was left out when the worker returned more images than the model allows, or None."""
    returned, allowed = job.extra.get("images_returned"), job.extra.get("images_allowed")
    if not isinstance(returned, int) or not isinstance(allowed, int) or returned <= allowed:
        return None
    return tr(
        "{returned} images returned; the model allows {allowed}, so {dropped} were not posted.",
        returned=returned,
        allowed=allowed,
        dropped=returned - allowed,
    )


def card_embed(job: TrackedJob, *, wait_reason: str | None = None) -> discord.Embed:
    """The job card: what was asked, where the job is, and why it waits or how it ended; in the job's public locale
    (its server's at submit; a private job's, its member's)."""
    with speaking(public_locale(job.extra)):
        return _card_embed(job, wait_reason)


def _card_embed(job: TrackedJob, wait_reason: str | None) -> discord.Embed:
    state = job.final_state
    title = render(state_label(job))
    if state is JobState.RUNNING and job.progress:
        title = tr("Generating — step {progress}", progress=job.progress)
    if state is JobState.CANCELLED and job.cancel_requested_by:
        title = tr("Cancelled")
    undelivered = delivery_failure(job)
    embed = discord.Embed(title=title, description=shown_prompt(job.request.get("prompt", "")))
    embed.colour = discord.Colour.red() if undelivered else STATE_COLOURS.get(state, discord.Colour.default())
    request = job.request
    embed.add_field(name=tr("Model"), value=clip(job.model, FIELD_LIMIT))
    embed.add_field(name=tr("Size"), value=f"{request.get('width')}×{request.get('height')}")
    embed.add_field(name=tr("Steps"), value=str(request.get("steps", "-")))
    embed.add_field(name=tr("Seed"), value=str(request.get("seed", "-")))
    embed.add_field(name=tr("Images"), value=str(request.get("count", 1)))
    embed.add_field(name=tr("Requested by"), value=f"<@{job.user_id}>")
    sync_wait_s = job.extra.get("sync_wait_s")
    if state is JobState.SUBMITTING and isinstance(sync_wait_s, int | float):
        # Posted just before the /runsync goes out; RunPod holds its reply until the job ends or the wait does.
        embed.add_field(
            name=tr("Sent to RunPod"),
            value=tr(
                "As a fast job: the images come with RunPod's answer within {wait:g} s, or the bot follows "
                "the job until it finishes.",
                wait=sync_wait_s,
            ),
            inline=False,
        )
    if state is JobState.QUEUED:
        embed.add_field(name=tr("In the queue since"), value=relative(job.submitted_at or job.created_at))
        if wait_reason:
            embed.add_field(name=tr("Why the wait"), value=clip(render(wait_reason), FIELD_LIMIT), inline=False)
    elif state is JobState.RUNNING:
        embed.add_field(name=tr("Waited in the queue"), value=seconds(job.delay_time_ms))
        embed.add_field(name=tr("Started"), value=relative(job.started_at))
    elif state is JobState.COMPLETED:
        embed.add_field(
            name=tr("Queue / run"), value=f"{seconds(job.delay_time_ms)} / {seconds(job.execution_time_ms)}"
        )
        dropped = dropped_images(job)
        if dropped:
            embed.add_field(name=tr("Images not posted"), value=dropped, inline=False)
    if state in (JobState.QUEUED, JobState.RUNNING, JobState.SUBMITTING) and job.cancel_requested_by:
        embed.add_field(
            name=tr("Cancelling"),
            value=tr("requested by <@{user}>", user=str(job.cancel_requested_by)),
            inline=False,
        )
    if state is JobState.CANCELLED and job.cancel_requested_by:
        embed.add_field(name=tr("Cancelled by"), value=f"<@{job.cancel_requested_by}>", inline=False)
    note = cancel_note(job)
    if note is not None:
        embed.add_field(name=tr("Cancel"), value=clip(note, FIELD_LIMIT), inline=False)
    if state is not JobState.CANCELLED and state in RETRYABLE and job.error:
        embed.add_field(name=tr("Reason"), value=clip(render(job.error), FIELD_LIMIT), inline=False)
    if undelivered:
        name = tr("Reason") if state is JobState.COMPLETED else tr("Not delivered")
        embed.add_field(name=name, value=clip(render(undelivered), FIELD_LIMIT), inline=False)
    embed.set_footer(text=tr("job {jid}", jid=job.jid))
    return embed


def cancel_note(job: TrackedJob) -> str | None:
    """What RunPod answered to the cancel, when it was not a plain "cancelled" (that one the title says)."""
    report = CancelReport.of(job)
    if job.cancel_requested_by is None or report is None or report.outcome is CancelOutcome.ACCEPTED:
        return None
    by = f"<@{job.cancel_requested_by}>"
    if report.outcome is CancelOutcome.GONE:
        return tr(
            "{by} asked to cancel it, but RunPod no longer knows this job (it expired or was removed there): "
            "nothing is running or billed for it.",
            by=by,
        )
    if report.outcome is CancelOutcome.FINISHED:
        return tr(
            "{by} asked to cancel it, but it had already finished at RunPod ({state}) by then.",
            by=by,
            state=report.finished_as,
        )
    if report.outcome is CancelOutcome.UNSUPPORTED:
        return tr("{by} asked to cancel it. {reason}", by=by, reason=render(Reason.LOCAL_CANCEL.value))
    if job.final_state.is_live:
        return tr(
            "{by} asked to cancel it; RunPod refused the cancel ({detail}). "
            "The bot asks again each time it checks the job.",
            by=by,
            detail=render(report.detail or ""),
        )
    return tr(
        "{by} asked to cancel it; RunPod refused the first cancel ({detail}), and the bot asked again.",
        by=by,
        detail=render(report.detail or ""),
    )


# Discord's limits for a Components V2 message: 4000 characters across its text displays (discord.py ui/view.py,
# LayoutView.content_length), 40 components in all, nested ones included (ui/view.py, LayoutView._add_count), 10
# items in a media gallery (ui/media_gallery.py, MediaGallery.items) and 5 buttons in an action row
# (ui/action_row.py, ActionRow.__init__).
V2_TEXT_LIMIT = 4000
V2_COMPONENT_LIMIT = 40
GALLERY_ITEM_LIMIT = 10
ROW_BUTTON_LIMIT = 5
# The prompt shown on a result, at most this long once escaped (the parameters and notes fit in what is left).
RESULT_PROMPT_LIMIT = 1800
REENCODED_NOTE = N_("Re-encoded to fit this channel's upload limit.")
# How Info names the way a job was made from its parent.
DERIVATION_WORDS = {
    Derivation.REROLL: N_("Re-roll"),
    Derivation.RETRY: N_("Retry"),
    Derivation.REMIX: N_("Remix"),
    Derivation.VARIATION: N_("Variation"),
    Derivation.UPSCALE: N_("Upscale"),
}


def upscale_factor(job: TrackedJob) -> float | None:
    """The factor an upscale job enlarged its image by; None for a job that drew its images."""
    factor = job.request.get("upscale")
    return float(factor) if isinstance(factor, int | float) and not isinstance(factor, bool) else None


def result_text(job: TrackedJob, seeds: Sequence[int | None], *, reencoded: bool = False) -> str:
    """The text of a result: the owner's mention (which notifies them), the prompt, and the parameters that
    reproduce it (model, size, steps, guidance, seed; for an upscale, the upscaler, size and factor), with what a
    member should know about the images. In the job's public locale."""
    with speaking(public_locale(job.extra)):
        return _result_text(job, seeds, reencoded)


def _result_text(job: TrackedJob, seeds: Sequence[int | None], reencoded: bool) -> str:
    request = job.request
    prompt = shown_prompt(" ".join(str(request.get("prompt", "")).split()), RESULT_PROMPT_LIMIT)
    guidance = request.get("guidance")
    factor = upscale_factor(job)
    model = clip(discord.utils.escape_markdown(job.model), 100)
    size = f"{request.get('width')}×{request.get('height')}"
    if factor is not None:
        # An upscale: what enlarged it and how much; the drawing's parameters are on its parent's result and in Info.
        parameters = [model, size, tr("{factor:g}× upscale", factor=factor)]
    else:
        steps = request.get("steps")
        parameters = [
            model,
            size,
            trn("{n} steps", "{n} steps", steps) if isinstance(steps, int) else tr("{steps} steps", steps=steps),
            tr("guidance {guidance:g}", guidance=guidance)
            if isinstance(guidance, int | float)
            else tr("guidance {guidance}", guidance="-"),
            tr("seed {seed}", seed=seed_label(request, seeds)),
        ]
    lines = [f"<@{job.user_id}> **{prompt}**", "-# " + " · ".join(parameters)]
    dropped = dropped_images(job)
    if dropped:
        lines.append(f"-# {dropped}")
    if reencoded:
        lines.append(f"-# {render(REENCODED_NOTE)}")
    return clip("\n".join(lines), V2_TEXT_LIMIT)


def info_embed(job: TrackedJob, origin: str | None = None) -> discord.Embed:
    """Everything about a finished job, for Info: where it came from (`origin`, see `made_from`), every parameter,
    the seed of each image, the model (an upscale: the upscaler, its factor and the model that drew), the queue it
    met, its queue and GPU time as RunPod reported them (`delayTime`, `executionTime`), and its id."""
    request = job.request
    embed = discord.Embed(title=tr("Job info"), description=shown_prompt(request.get("prompt", "")))
    embed.colour = discord.Colour.blurple()
    if origin:
        embed.add_field(name=tr("Made from"), value=clip(origin, FIELD_LIMIT), inline=False)
    negative = request.get("negative_prompt")
    embed.add_field(
        name=tr("Negative prompt"), value=shown_prompt(negative, FIELD_LIMIT) if negative else "-", inline=False
    )
    factor = upscale_factor(job)
    if factor is None:
        embed.add_field(name=tr("Model"), value=clip(job.model, FIELD_LIMIT))
    else:
        # An upscale: what enlarged the image and by how much, then the drawing's own parameters.
        embed.add_field(name=tr("Upscaler"), value=clip(job.model, FIELD_LIMIT))
        embed.add_field(name=tr("Scale"), value=tr("{factor:g}×", factor=factor))
        drawn_with = job.extra.get(PARENT_MODEL_FIELD)
        embed.add_field(name=tr("Drawn with"), value=clip(str(drawn_with), FIELD_LIMIT) if drawn_with else "-")
    embed.add_field(name=tr("Size"), value=f"{request.get('width')}×{request.get('height')}")
    embed.add_field(name=tr("Steps"), value=str(request.get("steps", "-")))
    embed.add_field(name=tr("Guidance"), value=str(request.get("guidance", "-")))
    embed.add_field(name=tr("Images"), value=str(request.get("count", 1)))
    embed.add_field(name=tr("Seeds"), value=clip(image_seeds(job), FIELD_LIMIT), inline=False)
    queue = job.extra.get(QUEUE_AT_SUBMIT_FIELD)
    embed.add_field(
        name=tr("Queue at submit"),
        value=trn("{n} job waiting", "{n} jobs waiting", queue) if isinstance(queue, int) else tr("not known"),
    )
    embed.add_field(name=tr("Queue time"), value=seconds(job.delay_time_ms))
    embed.add_field(name=tr("GPU time"), value=seconds(job.execution_time_ms))
    embed.set_footer(text=tr("job {jid}", jid=job.jid))
    return embed


def made_from(parent: Parent, link: str | None) -> str:
    """Where a job came from, for its Info: "Variation of image 2 of job `…`", linked to the parent's result (or its
    card) while the parent is on record."""
    if link:
        job = tr("[job `{jid}`]({link})", jid=parent.jid, link=link)
    else:
        job = tr("job `{jid}` (no longer on record)", jid=parent.jid)
    how = render(DERIVATION_WORDS[parent.how])
    if parent.how in (Derivation.VARIATION, Derivation.UPSCALE) and parent.image is not None:
        return tr("{how} of image {index} of {job}", how=how, index=parent.image, job=job)
    return tr("{how} of {job}", how=how, job=job)


def image_seeds(job: TrackedJob) -> str:
    """The seed of each posted image as the worker reported it (one for a batch rendered from one seed)."""
    request = job.request
    recorded = job.extra.get(RESULT_SEEDS_FIELD)
    seeds: list[int | None] = list(recorded) if isinstance(recorded, list) else []
    if request.get("seed_scope") != "image" or not seeds:
        return seed_label(request, seeds)
    fallback = request.get("seed", "-")
    return "\n".join(
        tr("Image {index}: {seed}", index=index, seed=str(fallback if seed is None else seed))
        for index, seed in enumerate(seeds, start=1)
    )


def seed_label(request: Mapping[str, Any], seeds: Sequence[int | None]) -> str:
    """The seeds as they are true: one for a batch the worker renders from one seed, otherwise one per image."""
    known = [str(seed) for seed in seeds if seed is not None] or [str(request.get("seed", "-"))]
    if request.get("seed_scope") != "batch":
        return ", ".join(known)
    # Such workers may still label image i `seed + i` (worker-stable_diffusion_v1): only the first is the real one.
    if len(seeds) > 1:
        return tr("{seed} (one seed for the whole batch of {count})", seed=known[0], count=len(seeds))
    return known[0]


def health_embed(
    model: str,
    endpoint_id: str,
    health: Health | None,
    *,
    active_jobs: int,
    due_lag_ms: int,
    last_error: EndpointError | None,
    redis_ok: bool,
    wait_reason: str,
    unknown: str | None = None,
) -> discord.Embed:
    """One model's health for the operator: RunPod's workers and queue, and the bot's own view of every server.
    `unknown` says why there is no health to show when nothing failed (RunPod's local worker server)."""
    embed = _health_base(clip(f"{model} ({endpoint_id})", TITLE_LIMIT), health, unknown)
    if health is None:
        embed.description = (
            tr("Health: {unknown}.", unknown=render(unknown))
            if unknown
            else tr("RunPod did not answer /health for this endpoint.")
        )
    else:
        jobs = health.jobs
        embed.add_field(
            name=tr("RunPod jobs"),
            value=tr(
                "in queue {in_queue} · in progress {in_progress}\n"
                "completed {completed} · failed {failed} · retried {retried}",
                in_queue=jobs.in_queue,
                in_progress=jobs.in_progress,
                completed=jobs.completed,
                failed=jobs.failed,
                retried=jobs.retried,
            ),
            inline=False,
        )
        embed.add_field(name=tr("A new job would be"), value=clip(render(wait_reason), FIELD_LIMIT), inline=False)
    error_text = tr("none") if last_error is None else f"{clip(last_error.message, 900)} ({relative(last_error.at)})"
    embed.add_field(
        name=tr("The bot's view"),
        value=tr(
            "active jobs {active} · due lag {lag:.1f} s · Redis {redis}\nlast RunPod error: {error}",
            active=active_jobs,
            lag=due_lag_ms / 1000,
            redis=tr("reachable") if redis_ok else tr("UNREACHABLE"),
            error=error_text,
        ),
        inline=False,
    )
    embed.set_footer(text=tr("Operator view: every server's jobs."))
    return embed


def server_health_embed(
    model: str,
    health: Health | None,
    *,
    server_jobs: Sequence[TrackedJob] | None,
    wait_reason: str,
    unknown: str | None = None,
) -> discord.Embed:
    """One model's health for a server's moderators: the workers of the endpoint their server uses, and their own
    server's jobs (`None`: unknown, Redis did not answer). Other servers' jobs, RunPod's endpoint-wide job counts,
    the endpoint's id and RunPod's error texts are the operator's."""
    embed = _health_base(clip(model, TITLE_LIMIT), health, unknown)
    if health is None:
        embed.description = (
            tr("Health: {unknown}.", unknown=render(unknown))
            if unknown
            else tr("RunPod did not answer for this model just now.")
        )
    else:
        embed.add_field(name=tr("A new job would be"), value=clip(render(wait_reason), FIELD_LIMIT), inline=False)
    if server_jobs is None:
        mine = tr("unknown: the bot cannot read its job records just now")
    else:
        queued = sum(1 for job in server_jobs if job.state in (JobState.SUBMITTING, JobState.QUEUED))
        running = sum(1 for job in server_jobs if job.state is JobState.RUNNING)
        mine = tr(
            "{active} active (queued {queued} · running {running})",
            active=len(server_jobs),
            queued=queued,
            running=running,
        )
    embed.add_field(name=tr("This server's jobs"), value=mine, inline=False)
    embed.set_footer(text=tr("This server's view; the bot's operator sees every server."))
    return embed


def _health_base(title: str, health: Health | None, unknown: str | None = None) -> discord.Embed:
    """The title, a colour that says how the workers are, and the Workers field."""
    if health is None and unknown:
        colour = discord.Colour.light_grey()
    elif health is None:
        colour = discord.Colour.red()
    elif health.workers.unhealthy or health.workers.throttled:
        colour = discord.Colour.orange()
    else:
        colour = discord.Colour.green()
    embed = discord.Embed(title=title, colour=colour)
    if health is not None:
        workers = health.workers
        embed.add_field(
            name=tr("Workers"),
            value=tr(
                "idle {idle} · running {running} · initializing {initializing}\n"
                "ready {ready} · throttled {throttled} · unhealthy {unhealthy}",
                idle=workers.idle,
                running=workers.running,
                initializing=workers.initializing,
                ready=workers.ready,
                throttled=workers.throttled,
                unhealthy=workers.unhealthy,
            ),
            inline=False,
        )
    return embed


def jobs_embed(title: str, jobs: Sequence[TrackedJob], links: Sequence[str | None]) -> discord.Embed:
    """A member's recent jobs with their state and a link to each one's message."""
    embed = discord.Embed(title=clip(title, TITLE_LIMIT), colour=discord.Colour.blurple())
    if not jobs:
        embed.description = tr("No jobs in the last week.")
        return embed
    lines = []
    for job, link in zip(jobs, links, strict=True):
        prompt = clip(shown_prompt(str(job.request.get("prompt", "")), 60), 60)
        state = render(state_label(job))
        where = tr(" — [open]({link})", link=link) if link else ""
        lines.append(f"`{job.jid}` **{state}** {relative(job.created_at)}: {prompt}{where}")
    embed.description = clip("\n".join(lines), 4000)
    return embed
