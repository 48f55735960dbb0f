"""/imagine: generate images from a prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from cogs.common import Services, reply, server_of, services_of
from cogs.i18n import tr
from cogs.jobs_ui import JobActions, submit_flow
from jobs.presets import MAX_SEED, InvalidRequestError, ModelCatalog, RequestOptions

MAX_CHOICES = 25


class Imagine(commands.Cog):
    """The /imagine command."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @app_commands.command(name="imagine", description=locale_str("Generate images from a prompt"))
    # Everywhere, from a server's install or the member's own (docs/user-installs.md): where the bot is not in the
    # channel, the result comes by DM.
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.describe(
        prompt=locale_str("What to draw"),
        negative=locale_str("What to keep out of the image"),
        model=locale_str("Which model (default: the server's default model)"),
        size=locale_str("Width×height, from the model's sizes"),
        steps=locale_str("Diffusion steps (more is slower, often finer)"),
        guidance=locale_str("How closely to follow the prompt"),
        seed=locale_str("Same seed and parameters give the same image"),
        count=locale_str("How many images (1–4)"),
        image=locale_str("An image to start from (only some models take one)"),
        strength=locale_str("How far to depart from the image: 0 keeps it, 1 redraws it (default: the model's)"),
        private=locale_str("Send the job and the images to you by direct message"),
        thread=locale_str(
            "Start a thread for this job, named after the prompt (default: the server's /settings thread)"
        ),
    )
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        negative: str | None = None,
        model: str | None = None,
        size: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        count: app_commands.Range[int, 1, 4] | None = None,
        image: discord.Attachment | None = None,
        strength: float | None = None,
        private: bool = False,
        thread: bool | None = None,
    ) -> None:
        refused = drawing_model_refusal(self.services.catalog, model)
        if refused is not None:
            # Named with the models this server offers, not all of the bot's.
            offered = (await self.services.service.server_rules(server_of(interaction))).allowed_models
            await reply(interaction, drawing_model_refusal(self.services.catalog, model, offered) or refused)
            return
        options = RequestOptions(
            prompt=prompt,
            negative_prompt=negative,
            size=size,
            steps=steps,
            guidance=guidance,
            seed=seed,
            count=count,
            # Discord's CDN link of the upload: fetched and checked before /run (JobService.submit), after the defer.
            source_image_url=image.url if image is not None else None,
            strength=strength,
        )
        await submit_flow(self.services, interaction, options, model, private=private, thread=thread)

    @imagine.autocomplete("model")
    async def model_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        catalog = self.services.catalog
        wanted = current.lower()
        # The models this server offers (its /settings), drawing ones only: upscalers enlarge a result's image (its U
        # buttons) and draw nothing from a prompt.
        offered = (await self.services.service.server_rules(server_of(interaction))).allowed_models
        return [
            app_commands.Choice(name=_label(model.name, model.description), value=model.name)
            for model in catalog.drawing_models
            if model.name in offered and (wanted in model.name.lower() or wanted in model.description.lower())
        ][:MAX_CHOICES]

    @imagine.autocomplete("size")
    async def size_choices(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
        catalog = self.services.catalog
        chosen = getattr(interaction.namespace, "model", None)
        default = (await self.services.service.server_rules(server_of(interaction))).default_model
        try:
            model = catalog.get(chosen or default)
        except InvalidRequestError:
            model = catalog.get(default)
        return [app_commands.Choice(name=size, value=size) for size in model.sizes if current in size][:MAX_CHOICES]


def drawing_model_refusal(catalog: ModelCatalog, name: str | None, offered: Sequence[str] | None = None) -> str | None:
    """Why /imagine cannot draw with the model named (an upscaler, or none of that name), with the models it can
    (`offered`: the server's; None: all that draw); None when it can. An upscaler would otherwise refuse for want of
    an image, or with one, enlarge it instead."""
    drawing = ", ".join(catalog.drawing_names if offered is None else offered)
    try:
        model = catalog.get(name)
    except InvalidRequestError:
        return tr(
            "That request can't be made: `model` {name} is not configured. Allowed: {allowed}.",
            name=repr(name),
            allowed=drawing,
        )
    if not model.is_upscaler:
        return None
    return tr(
        "That request can't be made: `model` {name} is an upscaler: it enlarges an image of a result (its U "
        "buttons) and draws nothing from a prompt. Allowed: {allowed}.",
        name=model.name,
        allowed=drawing,
    )


def _label(name: str, description: str) -> str:
    label = f"{name} — {description}" if description else name
    return label[:100]


async def setup(bot: commands.Bot) -> None:
    """/imagine and the job buttons, with the bot's services (a `TypeError` names what is missing)."""
    services = services_of(bot)
    await bot.add_cog(JobActions(bot, services))
    await bot.add_cog(Imagine(services))
