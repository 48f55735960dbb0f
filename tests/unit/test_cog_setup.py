"""Each extension's `setup()` hands its cogs the bot's services, and says plainly when the bot has none."""

from __future__ import annotations

import discord
import pytest
from discord.ext import commands

from bot import EXTENSIONS


@pytest.mark.parametrize("extension", EXTENSIONS)
async def test_extension_refuses_a_bot_without_services(extension: str) -> None:
    """Loaded into a plain discord.py bot, an extension fails at once, naming the services it needs."""
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    with pytest.raises(commands.ExtensionFailed) as failed:
        await bot.load_extension(extension)
    assert isinstance(failed.value.original, TypeError)
    assert "has no `services`" in str(failed.value.original)
    assert bot.cogs == {}
