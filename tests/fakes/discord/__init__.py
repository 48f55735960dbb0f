"""A fake Discord (REST API v10, gateway, CDN) for driving the unmodified discord.py client over real sockets.

In-process: `async with FakeDiscord() as fake: ...`. Standalone: `python -m tests.fakes.discord --port P`, driven
with `FakeDiscordControl(base_url)`. Both offer the same `FakeDiscordDriver` methods; see tests/fakes/README.md.
"""

from tests.fakes.discord.control import FakeDiscordControl
from tests.fakes.discord.driver import FakeDiscordDriver
from tests.fakes.discord.errors import ControlError
from tests.fakes.discord.harness import restored_discord_endpoints, running_client
from tests.fakes.discord.permissions import DEFAULT_BOT_PERMISSIONS, DEFAULT_EVERYONE_PERMISSIONS, Permission
from tests.fakes.discord.process import FakeDiscordProcess
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.discord.world import DEFAULT_TOKEN

__all__ = [
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "DEFAULT_TOKEN",
    "ControlError",
    "FakeDiscord",
    "FakeDiscordControl",
    "FakeDiscordDriver",
    "FakeDiscordProcess",
    "Permission",
    "restored_discord_endpoints",
    "running_client",
]
