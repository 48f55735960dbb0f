"""The `runpod-bot` command line: `run` starts the bot, `check` validates the configuration, `emulator` serves a
local RunPod endpoint for development."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import bot
from settings import ConfigError, Settings, load_settings
from storage.connection import RedisUnavailableError, open_redis, redact_url
from storage.embedded import EmbeddedRedisError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runpod-bot", description="A Discord bot that generates images on RunPod Serverless."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the Discord bot")
    commands.add_parser("check", help="validate the configuration and check that Redis answers")
    # The emulator parses its own options (the same as `python -m runpod_client.emulator`); `add_help=False` lets
    # `runpod-bot emulator --help` show them.
    commands.add_parser(
        "emulator", help="serve a local RunPod endpoint (options: runpod-bot emulator --help)", add_help=False
    )
    return parser


async def check(settings: Settings) -> bool:
    """Print one line per check; return whether all passed."""
    print("settings: ok")
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    where = redact_url(redis_url) if redis_url else f"embedded server under {settings.data_dir}"
    try:
        async with open_redis(redis_url, data_dir=settings.data_dir, server_bin=settings.redis_server_bin) as redis:
            info = await redis.info("server")
    except (RedisUnavailableError, EmbeddedRedisError) as exc:
        print(f"redis: FAILED: {exc}")
        return False
    version = info.get("valkey_version") or info.get("redis_version") or "unknown version"
    print(f"redis: ok ({where}, server {version})")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command != "emulator" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "run":
        return bot.main()
    if args.command == "emulator":
        # Imported here: the bot itself never loads the emulator (nor Pillow's drawing code).
        from runpod_client.emulator.__main__ import main as emulator_main

        return emulator_main(extra, prog="runpod-bot emulator")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return bot.EXIT_CONFIG
    ok = asyncio.run(check(settings))
    return bot.EXIT_OK if ok else bot.EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
