"""`python -m tests.e2e.fakes.bot_process API_BASE GATEWAY TOKEN`: the tiny bot in a process of its own.

Prints `BOT_READY` once connected, then runs until it is killed; the tests kill it to play a crashed bot.
"""

from __future__ import annotations

import asyncio
import sys

from bot import point_discord_at
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import running_client


async def serve(api_base_url: str, gateway_url: str, token: str) -> None:
    point_discord_at(api_base_url, gateway_url)
    bot = TinyBot(sync=False)
    async with running_client(bot, token):
        print("BOT_READY", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(*sys.argv[1:4]))
