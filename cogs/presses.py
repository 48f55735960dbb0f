"""Once per press, on Discord: which press an interaction is, and what a second press of it is told.

Discord clients do not debounce: a member who double-clicks V2, or submits the Remix form twice, sends two
interactions. Every button, menu or form that starts a job goes through `cogs.jobs_ui._card_flow`, which claims the
press with the core (`JobService.claim_press`) before anything else; the same press again, while the first is handled
or just after, is answered with where the first one's job is instead of starting a second. Slash and message
commands are not presses (each is a request of its own); buttons that start no job (Cancel, Delete, Info, Remix's
own button, which only opens the form) need no guard: a second press does nothing more than the first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import discord

from cogs.common import Services, dispatchable_components, job_link
from cogs.i18n import render, tr
from jobs.presses import EarlierPress, Press

# A job's form (`job:remix-form:<jid>`, cogs/jobs_ui.py) is named after its action: the submission has no title.
JOB_FORM = re.compile(r"job:(?P<action>[a-z]+)-form:.*")
# A press made outside a server (the bot's DM) is named with this in place of the server's id.
NO_GUILD = "dm"


def press_of(interaction: discord.Interaction[Any]) -> Press | None:
    """The press an interaction is: a button or a menu of a message, or a form submitted from one (its custom_id,
    and for a menu what was picked); None for anything else (a command), which is never refused as a double press."""
    if interaction.type not in (discord.InteractionType.component, discord.InteractionType.modal_submit):
        return None
    data = _data(interaction)
    custom_id = data.get("custom_id")
    if interaction.message is None or not isinstance(custom_id, str):
        return None
    values = data.get("values")
    button = custom_id + (":" + ",".join(map(str, values)) if isinstance(values, list) and values else "")
    return Press(
        guild=str(interaction.guild_id) if interaction.guild_id is not None else NO_GUILD,
        member=str(interaction.user.id),
        message=str(interaction.message.id),
        button=button,
    )


async def earlier_press(ctx: Services, interaction: discord.Interaction[Any], earlier: EarlierPress) -> str:
    """What the member reads when the press was made already: where its job is, or that it is starting."""
    done = _what_was_done(interaction)
    if earlier.jid is None:
        return tr(
            "You already {done} a moment ago: your job is starting, and the answer to that press links it.", done=done
        )
    job = await ctx.service.find(earlier.jid)
    where = (job_link(job) if job is not None else None) or tr("job `{jid}`", jid=earlier.jid)
    window_s = ctx.service.run_settings.press_window_ms / 1000
    return tr(
        "You already {done}: your job is {where}. Wait {window:g} s to start another.",
        done=done,
        where=where,
        window=window_s,
    )


def _what_was_done(interaction: discord.Interaction[Any]) -> str:
    """The press in words: "pressed **V2** on this result", "submitted the **Remix** form of this result", "picked
    **Image 2** on this message"."""
    message = interaction.message
    where = _which_message(message)
    data = _data(interaction)
    custom_id = str(data.get("custom_id", ""))
    if interaction.type is discord.InteractionType.modal_submit:
        match = JOB_FORM.fullmatch(custom_id)
        form = tr("the **{name}** form", name=render(match["action"].title())) if match else tr("that form")
        return tr("submitted {form} of {where}", form=form, where=where)
    found = (c for c in dispatchable_components(message.components if message else []) if c.custom_id == custom_id)
    component = next(found, None)
    values = data.get("values")
    if isinstance(values, list) and values:
        options = getattr(component, "options", [])
        picked = [str(option.label) for option in options if option.value in values] or list(map(str, values))
        return tr("picked **{picked}** on {where}", picked=", ".join(picked), where=where)
    label = getattr(component, "label", None)
    if label:
        return tr("pressed **{label}** on {where}", label=label, where=where)
    return tr("pressed that button on {where}", where=where)


def _which_message(message: discord.Message | None) -> str:
    """A result has images; a job card has its embed; anything else (the image picker) is a message."""
    if message is not None and message.attachments:
        return tr("this result")
    if message is not None and message.embeds:
        return tr("this card")
    return tr("this message")


def _data(interaction: discord.Interaction[Any]) -> Mapping[str, Any]:
    raw: Any = interaction.data
    return raw if isinstance(raw, dict) else {}
