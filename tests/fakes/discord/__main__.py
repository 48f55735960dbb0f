"""`python -m tests.fakes.discord --port P`: the fake Discord as a standalone process, driven by its control API.

Prints one line `FAKE_DISCORD_READY {json}` (the addresses and the bot token) on stdout once it listens; logs go
to stderr. SIGTERM or SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from tests.fakes.discord.errors import ControlError
from tests.fakes.discord.gateway import DEFAULT_HEARTBEAT_INTERVAL_MS
from tests.fakes.discord.process import READY_PREFIX
from tests.fakes.discord.ratelimits import parse_overrides
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.discord.world import DEFAULT_TOKEN


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.discord", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: 0, any free port)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot token the fake accepts")
    parser.add_argument(
        "--heartbeat-interval-ms",
        type=int,
        default=DEFAULT_HEARTBEAT_INTERVAL_MS,
        help="the gateway heartbeat interval sent in HELLO",
    )
    parser.add_argument(
        "--rate-limits", action="store_true", help="enforce Discord's rate limits and send their headers on every reply"
    )
    parser.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        type=rate_limit_override,
        metavar="KIND=COUNT/SECONDS",
        help="another number for one bucket kind, e.g. message_create=5/0.5 (repeatable)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level for stderr (default: WARNING)")
    return parser.parse_args(argv)


def rate_limit_override(text: str) -> tuple[str, tuple[int, float]]:
    """`KIND=COUNT/SECONDS`, checked against the bucket kinds the fake knows."""
    try:
        name, limit = text.split("=", 1)
        count, per = limit.split("/", 1)
        override = (name.strip(), (int(count), float(per)))
        parse_overrides(dict([override]))
    except (ValueError, ControlError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return override


async def serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(
        host=args.host,
        port=args.port,
        token=args.token,
        heartbeat_interval_ms=args.heartbeat_interval_ms,
        rate_limits=args.rate_limits,
        rate_limit_overrides=dict(args.rate_limit),
    )
    await fake.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(READY_PREFIX + json.dumps(await fake.info()), flush=True)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
