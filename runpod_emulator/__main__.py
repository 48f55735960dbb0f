"""`python -m runpod_emulator` (also `runpod-bot emulator`): serve a local RunPod endpoint until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runpod_emulator.config import (
    DEFAULT_API_KEY,
    DEFAULT_ENDPOINT_ID,
    DEFAULT_HOST,
    DEFAULT_PORT,
    OPERATIONS,
    EmulatorConfig,
    FaultKind,
    ProgressStyle,
    Scenario,
)
from runpod_emulator.personalities import PERSONALITIES
from runpod_emulator.server import run_emulator

EXIT_OK = 0
EXIT_FAILURE = 1
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def duration(text: str) -> float | tuple[float, float]:
    """`2` (seconds) or `1-3` (a range drawn from the seeded generator)."""
    try:
        if "-" in text.strip().lstrip("-"):
            low, high = text.split("-", 1)
            return float(low), float(high)
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not seconds (2) or a range (1-3)") from None


def fault(text: str) -> tuple[str, str, float]:
    """`OPERATION:KIND=PROBABILITY`, for example `status:server_error=0.05`."""
    try:
        target, rate = text.split("=", 1)
        operation, kind = target.split(":", 1)
        return operation, FaultKind(kind).value, float(rate)
    except ValueError:
        kinds = ", ".join(kind.value for kind in FaultKind if kind != FaultKind.NONE)
        raise argparse.ArgumentTypeError(f"{text!r} is not OPERATION:KIND=PROBABILITY (kinds: {kinds})") from None


def fault_script(text: str) -> tuple[str, list[str]]:
    """`OPERATION=KIND,KIND,...`: the next requests to OPERATION meet these faults in order."""
    try:
        operation, kinds = text.split("=", 1)
        return operation, [FaultKind(kind.strip()).value for kind in kinds.split(",") if kind.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not OPERATION=KIND,KIND,...") from None


def rate_limit(text: str) -> tuple[str, dict[str, Any]]:
    """`OPERATION=REQUESTS/SECONDS[/CONCURRENT]`, for example `status=2000/10/400`."""
    try:
        operation, spec = text.split("=", 1)
        parts = spec.split("/")
        limit: dict[str, Any] = {"requests": int(parts[0]), "per_s": float(parts[1])}
        if len(parts) > 2:
            limit["concurrent"] = int(parts[2])
        if len(parts) > 3:
            raise ValueError
        return operation, limit
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not OPERATION=REQUESTS/SECONDS[/CONCURRENT]") from None


def build_parser(prog: str = "python -m runpod_emulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A local RunPod Serverless endpoint: the job API under /v2/ENDPOINT_ID/, control at /_emulator/.",
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)")
    server.add_argument("--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (default %(default)s)")
    server.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key clients must send (default %(default)s)")
    server.add_argument("--endpoint-id", default=DEFAULT_ENDPOINT_ID, help="the endpoint id (default %(default)s)")
    server.add_argument("--public-url", help="base of the image URLs it hands out (default: its own address)")
    server.add_argument("--access-log", action="store_true", help="log every request")
    server.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    scenario = parser.add_argument_group("scenario (every option overrides --scenario-file and --realistic)")
    scenario.add_argument("--scenario-file", type=Path, help="a JSON file with scenario fields (see README)")
    scenario.add_argument(
        "--realistic", action="store_true", help="RunPod-like timings (cold start 8-40 s, runs 8-25 s)"
    )
    scenario.add_argument("--seed", type=int, help="seed of every random draw (default 0)")
    scenario.add_argument("--workers", type=int, help="healthy workers in the pool (default 2)")
    scenario.add_argument("--throttled-workers", type=int, help="workers reported throttled (default 0)")
    scenario.add_argument("--unhealthy-workers", type=int, help="workers reported unhealthy (default 0)")
    scenario.add_argument("--cold-start", type=duration, help="seconds to start a cold worker, or LOW-HIGH (0.5)")
    scenario.add_argument("--queue-delay", type=duration, help="seconds before a queued job may start (0.2)")
    scenario.add_argument("--execution", type=duration, help="seconds a job runs (2)")
    scenario.add_argument("--idle-timeout", type=float, help="seconds a worker stays warm after a job (5)")
    scenario.add_argument("--steps", type=int, help="progress steps per job (10)")
    scenario.add_argument("--progress", choices=[style.value for style in ProgressStyle], help="progress style")
    scenario.add_argument(
        "--personality", choices=sorted(PERSONALITIES), metavar="NAME", help="default personality (sdxl; see README)"
    )
    scenario.add_argument("--image-size", type=int, help="side of images when the input gives none (512)")
    scenario.add_argument("--images", type=int, help="images every job returns, whatever its input asks (1-16)")
    scenario.add_argument("--oversized-bytes", type=int, help="size of the `oversized` image (25000000)")
    scenario.add_argument("--retention", type=float, help="seconds /run results are kept (1800)")
    scenario.add_argument("--runsync-retention", type=float, help="seconds /runsync results are kept (60)")
    scenario.add_argument(
        "--lenient-limits", action="store_true", help="accept any positive ttl, executionTimeout and wait"
    )
    scenario.add_argument(
        "--ignore-ttl", action="store_true", help="let jobs outlive policy.ttl (a misbehaving RunPod, for deadlines)"
    )
    scenario.add_argument("--webhook-retries", type=int, help="retries of a failed webhook (2)")
    scenario.add_argument("--webhook-retry-delay", type=float, help="seconds between webhook attempts (10)")
    scenario.add_argument("--webhook-timeout", type=float, help="seconds a webhook receiver may take (10)")
    scenario.add_argument(
        "--fault", type=fault, action="append", default=[], metavar="OP:KIND=P",
        help="inject a fault with probability P, e.g. status:server_error=0.05 (repeatable)",
    )  # fmt: skip
    scenario.add_argument(
        "--fault-script", type=fault_script, action="append", default=[], metavar="OP=KIND,...",
        help="faults for the next requests to OP, in order, e.g. run=reset,none (repeatable)",
    )  # fmt: skip
    scenario.add_argument("--slow-reply", type=float, help="seconds a `slow` fault holds the reply (5)")
    scenario.add_argument("--fault-retry-after", type=int, help="Retry-After of an injected 429 (1)")
    scenario.add_argument(
        "--rate-limit", type=rate_limit, action="append", default=[], metavar="OP=N/S[/C]",
        help="replace one operation's limit, e.g. status=20/10/4 (repeatable)",
    )  # fmt: skip
    scenario.add_argument("--no-rate-limits", action="store_true", help="no rate limits at all")
    return parser


_SCENARIO_OPTIONS = {
    "seed": "seed",
    "workers": "workers",
    "throttled_workers": "throttled_workers",
    "unhealthy_workers": "unhealthy_workers",
    "cold_start": "cold_start_s",
    "queue_delay": "queue_delay_s",
    "execution": "execution_s",
    "idle_timeout": "idle_timeout_s",
    "steps": "steps",
    "progress": "progress",
    "personality": "personality",
    "image_size": "image_size",
    "images": "images",
    "oversized_bytes": "oversized_bytes",
    "retention": "retention_s",
    "runsync_retention": "runsync_retention_s",
    "webhook_retries": "webhook_retries",
    "webhook_retry_delay": "webhook_retry_delay_s",
    "webhook_timeout": "webhook_timeout_s",
    "slow_reply": "slow_reply_s",
    "fault_retry_after": "fault_retry_after_s",
}


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator configuration the parsed options describe; raises ValueError when they are inconsistent."""
    fields: dict[str, Any] = {}
    if args.scenario_file is not None:
        fields.update(json.loads(args.scenario_file.read_text()))
    if args.realistic:
        fields = {**Scenario.realistic().model_dump(), **fields}
    for option, name in _SCENARIO_OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            fields[name] = value
    if args.lenient_limits:
        fields["strict_limits"] = False
    if args.ignore_ttl:
        fields["enforce_ttl"] = False
    if args.no_rate_limits:
        fields["rate_limits"] = {}
    if args.rate_limit:
        limits = dict(fields.get("rate_limits", Scenario().model_dump()["rate_limits"]))
        limits.update(dict(args.rate_limit))
        fields["rate_limits"] = limits
    faults: dict[str, dict[str, float]] = {}
    for operation, kind, rate in args.fault:
        faults.setdefault(operation, {})[kind] = rate
    if faults:
        fields["faults"] = {**fields.get("faults", {}), **faults}
    if args.fault_script:
        fields["fault_script"] = {**fields.get("fault_script", {}), **dict(args.fault_script)}
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        endpoint_id=args.endpoint_id,
        scenario=Scenario.model_validate(fields),
        public_url=args.public_url,
        access_log=args.access_log,
    )


async def serve(config: EmulatorConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with run_emulator(config) as emulator:
        print(f"RunPod emulator: {emulator.base_url}/{emulator.endpoint_id}/  (endpoint id {emulator.endpoint_id})")
        print(f"control API: {emulator.url}/_emulator/  operations: {', '.join(OPERATIONS)}")
        print("Ctrl-C to stop", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m runpod_emulator") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT)
    try:
        config = config_from_args(args)
    except (ValidationError, ValueError, OSError) as exc:
        parser.error(str(exc))
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        print(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
