"""How fast the command line starts: importing it, `--help`, and `status` against an unreachable Redis.

    python -m benchmarks.cli_startup [--runs N] [--module runpod_bot.cli]

Each measurement is a fresh interpreter (this one's, `sys.executable`), run `--runs` times; the median wall time
is reported, in milliseconds. `status` is pointed at a Redis that refuses at once (`127.0.0.1:1`), so it measures
the start and the failure path, not a network wait: what an operator waits for before `runpod-bot status JOB`
prints anything. `bare_python_ms` is the interpreter alone, the floor under every other number. `status_loaded`
lists which of discord.py, Pillow, the cogs, the bot module, aiohttp and prometheus_client the `status` command
imported (none, by design), and OpenTelemetry when redis-py found it installed and loaded it (it is no dependency of
the bot, but where it is installed it adds to every command that uses Redis).
`--module` names the command line's module, so a checkout from before it moved into `runpod_bot/` (`cli`) can be
measured the same way.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_RUNS = 10
DEFAULT_MODULE = "runpod_bot.cli"
# Connections to port 1 on loopback are refused at once: the command fails fast, as it would against a stopped Redis.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
COMMAND_TIMEOUT_S = 60
REPO = Path(__file__).resolve().parents[1]
# Run in the measured process after the command, so the modules it loaded can be listed.
AFTER_STATUS = """
import sys
from {module} import main
status = main(sys.argv[1:])
heavy = {{'discord', 'PIL', 'cogs', 'bot', 'aiohttp', 'prometheus_client', 'opentelemetry'}}
print('loaded:', ' '.join(sorted({{n.split('.')[0] for n in sys.modules}} & heavy)))
"""


def timed(args: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Wall time of one child process, in milliseconds, and its output."""
    started = time.perf_counter()
    result = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    return (time.perf_counter() - started) * 1000, result.stdout + result.stderr


def median_ms(args: Sequence[str], env: dict[str, str], cwd: Path, runs: int) -> float:
    return round(statistics.median(timed(args, env, cwd)[0] for _ in range(runs)), 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli_startup", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"runs per measurement (default {DEFAULT_RUNS})")
    parser.add_argument("--module", default=DEFAULT_MODULE, help=f"the command line's module ({DEFAULT_MODULE})")
    args = parser.parse_args(argv)
    python = sys.executable
    with tempfile.TemporaryDirectory() as work:
        cwd = Path(work)
        # A clean environment in an empty folder: no .env is read, and this checkout is the code imported.
        env = {
            "PATH": os.environ["PATH"],
            "HOME": work,
            "PYTHONPATH": str(REPO),
            "REDIS_URL": UNREACHABLE_REDIS,
        }
        status = [python, "-m", args.module, "status", "nosuchjob"]
        _, output = timed([python, "-c", AFTER_STATUS.format(module=args.module), "status", "nosuchjob"], env, cwd)
        lines = output.splitlines()
        loaded = next((line.split(":", 1)[1].split() for line in lines if line.startswith("loaded:")), None)
        report = {
            "module": args.module,
            "runs": args.runs,
            "bare_python_ms": median_ms([python, "-c", "pass"], env, cwd, args.runs),
            "import_ms": median_ms([python, "-c", f"import {args.module}"], env, cwd, args.runs),
            "help_ms": median_ms([python, "-m", args.module, "--help"], env, cwd, args.runs),
            "status_unreachable_redis_ms": median_ms(status, env, cwd, args.runs),
            "status_loaded": loaded,
        }
    print(json.dumps(report, separators=(", ", ": ")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
