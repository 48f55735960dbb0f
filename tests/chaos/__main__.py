"""`python -m tests.chaos [--jobs N] [--kills K] [--seed S] [--no-faults] [--no-discord-faults] ...`: one
crash-and-fault run.

Progress goes to stderr; the last line on stdout is the run's JSON summary. The exit status is 1 when any job was
lost, posted twice or paid for twice (or any other check failed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.chaos.run import KILL_MODES, ChaosOptions, run_chaos

log = logging.getLogger("chaos")


def parse_args(argv: Sequence[str] | None) -> ChaosOptions:
    defaults = ChaosOptions()
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--jobs", type=int, default=defaults.jobs, help="submissions (default %(default)s)")
    parser.add_argument("--kills", type=int, default=defaults.kills, help="SIGKILLs of the bot (default %(default)s)")
    parser.add_argument("--redis-restarts", type=int, default=defaults.redis_restarts, help="(default %(default)s)")
    parser.add_argument(
        "--run-resets",
        type=int,
        help=f"/run requests reset after RunPod took them (default {defaults.run_resets}; 0 with --no-faults)",
    )
    parser.add_argument("--seed", type=int, help="seed of every random choice (default: a fresh one, printed)")
    parser.add_argument(
        "--faults", action=argparse.BooleanOptionalAction, default=defaults.faults, help="inject RunPod faults"
    )
    parser.add_argument(
        "--discord-faults",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fail Discord too: op 7, op 9, 5xx and 429 on messages, late commands (default: on)",
    )
    for flag, name, what in (
        ("--reconnects", "reconnects", "op 7 to the gateway holder amid a burst of commands"),
        ("--invalid-sessions", "invalid_sessions", "op 9 (a new session) amid a burst of commands"),
        ("--discord-5xx", "discord_5xx", "5xx answers to message posts and card edits"),
        ("--discord-429", "discord_429", "429 answers to message posts and card edits"),
        ("--late-callbacks", "late_callbacks", "commands that reach the bot after Discord's 3 s deadline"),
    ):
        default = getattr(defaults, name)
        parser.add_argument(flag, type=int, dest=name, help=f"{what} (default {default}; 0 with --no-discord-faults)")
    parser.add_argument("--burst", type=int, default=defaults.burst, help="commands per burst (default %(default)s)")
    parser.add_argument(
        "--discord-rate-limits",
        action=argparse.BooleanOptionalAction,
        default=defaults.discord_rate_limits,
        help="the fake Discord enforces Discord's rate limits (default: on)",
    )
    parser.add_argument("--channels", type=int, default=defaults.channels, help="channels (default %(default)s)")
    parser.add_argument("--rate", type=float, default=defaults.submit_rate, help="submissions per second")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="emulated RunPod workers")
    parser.add_argument(
        "--press-share",
        type=float,
        default=defaults.press_share,
        help="share of /imagine results whose owner presses V<n>, U<n>, Re-roll or Remix (default %(default)s)",
    )
    parser.add_argument(
        "--settle-timeout", type=float, default=defaults.settle_timeout_s, help="seconds to wait for the end"
    )
    parser.add_argument(
        "--kill-modes",
        default=",".join(defaults.kill_modes),
        help="the kills' modes, taken in turn (default %(default)s)",
    )
    parser.add_argument("--poll-lease-ms", type=int, help="the bot's POLL_LEASE_MS (default: the bot's, 30 s)")
    parser.add_argument("--delivery-lease-ms", type=int, help="the bot's DELIVERY_LEASE_MS (default: the bot's, 60 s)")
    parser.add_argument("--keep-logs", type=Path, help="write every process's log to this directory and keep it")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every submission's verdict")
    args = parser.parse_args(argv)
    unknown = set(args.kill_modes.split(",")) - set(KILL_MODES)
    if unknown:
        parser.error(f"unknown kill mode(s) {', '.join(sorted(unknown))}; known: {', '.join(KILL_MODES)}")

    def discord_faults(name: str) -> int:
        given: int | None = getattr(args, name)
        if given is not None:
            return given
        return int(getattr(defaults, name)) if args.discord_faults else 0

    options = ChaosOptions(
        jobs=args.jobs,
        kills=args.kills,
        redis_restarts=args.redis_restarts,
        run_resets=args.run_resets if args.run_resets is not None else (defaults.run_resets if args.faults else 0),
        seed=args.seed,
        faults=args.faults,
        submit_rate=args.rate,
        workers=args.workers,
        press_share=args.press_share,
        settle_timeout_s=args.settle_timeout,
        kill_modes=tuple(mode.strip() for mode in args.kill_modes.split(",") if mode.strip()),
        poll_lease_ms=args.poll_lease_ms,
        delivery_lease_ms=args.delivery_lease_ms,
        log_dir=args.keep_logs.resolve() if args.keep_logs else None,
        discord_rate_limits=args.discord_rate_limits,
        channels=args.channels,
        reconnects=discord_faults("reconnects"),
        invalid_sessions=discord_faults("invalid_sessions"),
        discord_5xx=discord_faults("discord_5xx"),
        discord_429=discord_faults("discord_429"),
        late_callbacks=discord_faults("late_callbacks"),
        burst=args.burst,
    )
    if args.verbose:
        logging.getLogger("chaos.verdicts").setLevel(logging.DEBUG)
    return options


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    options = parse_args(argv)
    report, verdicts, log_dir = asyncio.run(run_chaos(options))
    for verdict in verdicts:
        logging.getLogger("chaos.verdicts").debug(
            "%s %s job %s: %s", verdict.submission.label, verdict.kind, verdict.jid, verdict.detail
        )
    for problem in report.problems:
        log.error("%s", problem)
    log.info("logs: %s", log_dir if not report.ok or options.log_dir else "(removed: the run passed)")
    print(json.dumps(report.summary()), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
