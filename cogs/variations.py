"""Variations: a new job that starts from an image, with a new seed and the model's default strength.

Three ways in, one core (`start_variation`):
- **V1…Vn** (`VaryButton`, custom_id `job:v<n>:<jid>`) on a job's result: image n of that message, the job's prompt
  and parameters. The result gallery (`cogs.jobs_ui.result_layout`) shows them below U1…Un, from
  `vary_buttons(job, image_count, catalog)`. Like every button on a result, they are for the job's owner, a
  moderator of its server and the operator.
- **"Vary this image"**, a message context menu, on any message with an image: the bot's result (its job's prompt),
  or a member's own picture (the prompt is asked for in a form). A message with several images first asks which one
  (`PickImage`, an ephemeral select whose custom_id names the message, so it works after a restart).
- `/imagine image:` is the same job started from an upload; it needs no code here (`cogs/imagine.py`).

Through the message command, anyone who can see an image may vary it (it becomes their own job). Every variation
obeys the quotas, cooldown and deny-lists of `/imagine`, since it goes through the same `submit_flow` and
`JobService.submit`, which fetches and checks the image before `/run`; one made from a job names it as its parent
(`jobs.lineage`: the job and the image).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import JOB_ID, Services, dispatchable_components, guarded, reply, services_of
from cogs.i18n import tr
from cogs.image_buttons import MAX_IMAGE_BUTTONS, ImageButton
from cogs.jobs_ui import result_access, submit_flow
from jobs.access import Action
from jobs.lineage import Derivation, Parent
from jobs.presets import ImageRequest, InvalidRequestError, ModelCatalog, ModelConfig, RequestOptions
from jobs.server_settings import ServerRules
from jobs.service import JobServiceError
from jobs.text import N_
from storage.models import TrackedJob

log = logging.getLogger(__name__)

# Discord: a message command's name is 1-32 characters (discord-api-docs application-commands.mdx).
VARY_MENU_NAME = "Vary this image"
# Discord's longest text input (discord-api-docs components reference.mdx, "Text Input": max_length 1-4000).
TEXT_INPUT_MAX = 4000
# How long the prompt form of a member's own picture waits for its answer (Discord keeps a form open 15 minutes).
PROMPT_FORM_TIMEOUT_S = 15 * 60.0
# A job's buttons carry its id as `job:<action>:<jid>` (cogs/jobs_ui.py, the gallery's U and V buttons).
JOB_CUSTOM_ID = re.compile(rf"job:[a-z0-9-]+:(?P<jid>{JOB_ID})")
PROMPT_INPUT_ID = "prompt"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# The V buttons are the job's owner's (and its server's moderators'); anyone who sees the image may still start a
# variation of their own from it.
VARY_IT_YOURSELF = N_(" To vary it as a job of your own, use *Vary this image* in the message's Apps menu.")


class NoImageModelError(JobServiceError):
    """No configured model starts from an image."""

    def __init__(self) -> None:
        super().__init__(tr("None of this bot's models can start from an image, so images cannot be varied here."))


@dataclass(frozen=True)
class VariationSource:
    """The image a variation starts from: its link, its number on its message (1-based), and the bot's job that
    made it (None: a member's own picture, or a job no longer on record)."""

    url: str
    index: int
    job: TrackedJob | None = None


class VaryButton(ImageButton, letter="v"):
    """V<n>: vary image n of the result message the button is on (the job's prompt, a new seed)."""

    async def act(self, ctx: Services, interaction: discord.Interaction[Any]) -> None:
        await vary_result(ctx, interaction, self.jid, self.index)


def vary_buttons(job: TrackedJob, image_count: int, catalog: ModelCatalog) -> list[VaryButton]:
    """V1…Vn for a job's result of `image_count` images (at most 10); none when the job's model cannot start from
    an image (a button that could only refuse is not shown). Put them in action rows of at most 5."""
    try:
        model = catalog.get(job.model)
    except InvalidRequestError:
        return []
    if model.image_input is None:
        return []
    return [VaryButton(index, job.jid) for index in range(1, min(image_count, MAX_IMAGE_BUTTONS) + 1)]


class PickImage(
    discord.ui.DynamicItem[discord.ui.Select[discord.ui.View]],
    template=r"vary:pick:(?P<channel>[0-9]{1,20}):(?P<message>[0-9]{1,20})",
):
    """Which image of a message with several to vary: the message is named in the custom_id, read again on use."""

    def __init__(self, channel_id: int, message_id: int, count: int = 1) -> None:
        options = [discord.SelectOption(label=tr("Image {index}", index=n), value=str(n)) for n in range(1, count + 1)]
        super().__init__(
            discord.ui.Select(
                custom_id=f"vary:pick:{channel_id}:{message_id}",
                placeholder=tr("Which image to vary?"),
                options=options or [discord.SelectOption(label=tr("Image {index}", index=1), value="1")],
            )
        )
        self.channel_id = channel_id
        self.message_id = message_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> PickImage:
        return cls(int(match["channel"]), int(match["message"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        values = self.item.values
        index = int(values[0]) if values else 1
        await guarded(interaction, lambda: self._vary(services_of(interaction.client), interaction, index))

    async def _vary(self, ctx: Services, interaction: discord.Interaction[Any], index: int) -> None:
        channel = interaction.client.get_partial_messageable(self.channel_id, guild_id=interaction.guild_id)
        try:
            message = await channel.fetch_message(self.message_id)
        except discord.NotFound:
            await reply(interaction, tr("That message is gone, so its images cannot be varied."))
            return
        await vary_message_image(ctx, interaction, message, index)


class PromptForm(discord.ui.Modal):
    """The prompt for a variation of an image the bot did not make (or whose job is no longer on record)."""

    def __init__(self, ctx: Services, source: VariationSource, model: ModelConfig) -> None:
        super().__init__(title=tr("Vary this image"), timeout=PROMPT_FORM_TIMEOUT_S)
        self.ctx = ctx
        self.source = source
        self.model = model
        self.prompt: discord.ui.TextInput[PromptForm] = discord.ui.TextInput(
            label=tr("Prompt"),
            custom_id=PROMPT_INPUT_ID,
            style=discord.TextStyle.paragraph,
            placeholder=tr("What the new image should show"),
            max_length=min(TEXT_INPUT_MAX, model.limits.prompt_max),
        )
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        options = member_image_options(self.prompt.value, self.source.url, self.model)
        await guarded(interaction, lambda: submit_flow(self.ctx, interaction, options, self.model.name))


class Variations(commands.Cog):
    """The "Vary this image" message command and the V buttons (registered here, so they work after a restart)."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.menu = app_commands.ContextMenu(name=VARY_MENU_NAME, callback=self.vary_this_image)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(VaryButton, PickImage)
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.remove_dynamic_items(VaryButton, PickImage)

    async def vary_this_image(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """A variation of the message's image; with several, the member picks one first."""
        images = image_attachments(message.attachments)
        if not images:
            await reply(
                interaction, tr("That message has no image to vary. Allowed: a message with a PNG, JPEG, WebP or GIF.")
            )
            return
        if len(images) == 1:
            await vary_message_image(self.services, interaction, message, 1)
            return
        view = discord.ui.View(timeout=None)
        view.add_item(PickImage(message.channel.id, message.id, len(images)))
        await interaction.response.send_message(
            tr("That message has {count} images: which one should I vary?", count=len(images)),
            view=view,
            ephemeral=True,
        )


def image_attachments(attachments: Sequence[discord.Attachment]) -> list[discord.Attachment]:
    """A message's images in their order (a result's attachment n is its image n)."""
    return [
        attachment
        for attachment in attachments
        if (attachment.content_type or "").startswith("image/")
        or attachment.filename.lower().endswith(IMAGE_EXTENSIONS)
    ]


async def vary_result(ctx: Services, interaction: discord.Interaction[Any], jid: str, index: int) -> None:
    """V<index>: image `index` of the result message the button is on, varied with job `jid`'s prompt, for the job's
    owner, a moderator of its server or the operator (like every button on a result)."""
    allowed, job = await result_access(ctx, interaction, jid, Action.VARY, VARY_IT_YOURSELF)
    if not allowed:
        return
    images = image_attachments(interaction.message.attachments) if interaction.message is not None else []
    if not 1 <= index <= len(images):
        await reply(interaction, tr("Image {index} is no longer on this message, so it cannot be varied.", index=index))
        return
    await start_variation(ctx, interaction, VariationSource(images[index - 1].url, index, job))


async def vary_message_image(
    ctx: Services, interaction: discord.Interaction[Any], message: discord.Message, index: int
) -> None:
    """Image `index` of `message`: with the prompt of the bot's job when the message is one of its results."""
    images = image_attachments(message.attachments)
    if not 1 <= index <= len(images):
        await reply(
            interaction, tr("That message has no image {index} (it has {count}).", index=index, count=len(images))
        )
        return
    job = await result_job(ctx, interaction, message)
    await start_variation(ctx, interaction, VariationSource(images[index - 1].url, index, job))


async def result_job(
    ctx: Services, interaction: discord.Interaction[Any], message: discord.Message
) -> TrackedJob | None:
    """The bot's job whose result `message` is: posted by this bot, naming the job in its buttons, and recorded as
    that job's result message. None for anything else (a member's picture, a result whose record has expired)."""
    me = interaction.client.user
    if me is None or message.author.id != me.id:
        return None
    for jid in dict.fromkeys(_job_ids(message.components)):
        job = await ctx.service.find(jid)
        if job is not None and message.id in job.result_message_ids:
            return job
    return None


def _job_ids(components: Sequence[Any]) -> list[str]:
    """The job ids in a message's custom_ids, searched through rows, containers and sections alike."""
    matches = (JOB_CUSTOM_ID.fullmatch(component.custom_id) for component in dispatchable_components(components))
    return [match["jid"] for match in matches if match is not None]


async def start_variation(ctx: Services, interaction: discord.Interaction[Any], source: VariationSource) -> None:
    """What V<n>, the context menu and its picker all do: a new job of the member who asked, starting from
    `source`. From a job: its model, prompt and parameters with a new seed; otherwise the prompt is asked for."""
    job = source.job
    if job is None:
        model = image_model(ctx.catalog, await ctx.service.server_rules(interaction.guild_id))
        await interaction.response.send_modal(PromptForm(ctx, source, model))
        return
    model_config = ctx.catalog.get(job.model)
    options = job_variation_options(ImageRequest.from_dict(job.request), source.url, model_config)
    # A private job's variations stay in the DM, as its Re-roll does.
    private = bool(job.extra.get("private")) and interaction.guild_id is None
    parent = Parent(job.jid, Derivation.VARIATION, source.index)
    await submit_flow(ctx, interaction, options, job.model, private=private, parent=parent)


def job_variation_options(parent: ImageRequest, url: str, model: ModelConfig) -> RequestOptions:
    """The parent job's parameters from `url`, with a new seed and the model's default strength."""
    return RequestOptions(
        prompt=parent.prompt,
        negative_prompt=parent.own_negative or None,
        size=str(parent.size),
        steps=parent.steps,
        guidance=parent.guidance,
        count=_count(model, parent.count),
        source_image_url=url,
    )


def member_image_options(prompt: str, url: str, model: ModelConfig) -> RequestOptions:
    """A member's picture with their prompt, on the model's defaults."""
    return RequestOptions(prompt=prompt, source_image_url=url, count=_count(model, None))


def _count(model: ModelConfig, wanted: int | None) -> int | None:
    """A worker that draws one image from a source (worker-sdxl's refiner) gets 1; others what was asked."""
    spec = model.image_input
    return 1 if spec is not None and spec.single_image else wanted


def image_model(catalog: ModelCatalog, rules: ServerRules | None = None) -> ModelConfig:
    """The model a member's picture is varied with: the default model (the server's, with `rules`) when it takes an
    image, else the first that does among the models offered (the server's, else all)."""
    default = catalog.get(rules.default_model) if rules is not None else catalog.default
    if default.image_input is not None:
        return default
    offered = [name for name in catalog.image_models if rules is None or name in rules.allowed_models]
    if not offered:
        # None offered here: the first of the bot's, which the submit refuses by name with the models offered.
        offered = catalog.image_models
    if not offered:
        raise NoImageModelError()
    return catalog.get(offered[0])


async def setup(bot: commands.Bot) -> None:
    """The variations cog, with the bot's services."""
    await bot.add_cog(Variations(bot, services_of(bot)))
