"""The per-image buttons of a result: one base for U1…Un (`cogs.jobs_ui.UpscaleButton`) and V1…Vn
(`cogs.variations.VaryButton`).

Each is a `DynamicItem` whose custom_id is `job:<letter><n>:<jid>` (`job:u2:<jid>`, `job:v2:<jid>`). Results already
posted carry these, so the format never changes: discord.py rebuilds the button from its custom_id alone, in any
process, after any restart. A custom_id naming an image outside 1 to 10 (no result of this bot carries one) is
refused in words before any action: raising in `from_custom_id` would leave the member's press unanswered.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self

import discord

from cogs.common import JOB_ID, Services, guarded, reply, services_of
from cogs.i18n import tr
from cogs.render import GALLERY_ITEM_LIMIT

# A result shows at most a gallery's 10 images, numbered from 1: U1…U10, V1…V10.
MAX_IMAGE_BUTTONS = GALLERY_ITEM_LIMIT
IMAGE_INDEXES = range(1, MAX_IMAGE_BUTTONS + 1)
# Two digits: enough for 10 and more than any result carries, so an odd index is refused in words, not ignored.
INDEX = r"(?P<index>[0-9]{1,2})"


class ImageButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=rf"job:[a-z]{INDEX}:(?P<jid>{JOB_ID})"
):
    """A button for image n of job jid's result (`job:<letter><n>:<jid>`). A kind of per-image button derives from
    it with its `letter` (`class VaryButton(ImageButton, letter="v")`) and does its work in `act`, which is reached
    only for an index of 1 to 10, with the bot's services (`services_of`: see there why not a cog's)."""

    letter: ClassVar[str]

    def __init_subclass__(cls, *, letter: str) -> None:
        super().__init_subclass__(template=rf"job:{re.escape(letter)}{INDEX}:(?P<jid>{JOB_ID})")
        cls.letter = letter

    def __init__(self, index: int, jid: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"{self.letter.upper()}{index}",
                style=discord.ButtonStyle.secondary,
                custom_id=f"job:{self.letter}{index}:{jid}",
            )
        )
        self.index = index
        self.jid = jid

    @property
    def name(self) -> str:
        """What the member reads on the button: U2, V2."""
        return f"{self.letter.upper()}{self.index}"

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        # Never raises: discord.py would only log it, and the member's press would fail without a word.
        return cls(int(match["index"]), match["jid"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await guarded(interaction, lambda: self._checked(services_of(interaction.client), interaction))

    async def _checked(self, ctx: Services, interaction: discord.Interaction[Any]) -> None:
        if self.index not in IMAGE_INDEXES:
            await reply(
                interaction,
                tr(
                    "**{button}** names no image: a result's images are numbered 1 to {last}. Nothing was started.",
                    button=self.name,
                    last=MAX_IMAGE_BUTTONS,
                ),
            )
            return
        await self.act(ctx, interaction)

    async def act(self, ctx: Services, interaction: discord.Interaction[Any]) -> None:
        """What pressing the button does, for image `self.index` (1 to 10) of job `self.jid`."""
        raise NotImplementedError
