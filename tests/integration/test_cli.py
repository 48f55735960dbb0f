"""The commands an operator runs first: `make run` without configuration, `runpod-bot check`, `python bot.py`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNPOD_BOT = Path(sys.executable).parent / "runpod-bot"
SECRET_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.discord.token-that-must-not-leak-0123456789"
SECRET_KEY = "rpa_key_that_must_not_leak"


def run_command(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run with a clean environment: only PATH, HOME, the checkout under test and the given variables."""
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(cwd)), "PYTHONPATH": str(REPO)}
    return subprocess.run(args, cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)


def test_run_without_configuration_names_every_missing_variable(tmp_path: Path) -> None:
    """`runpod-bot run` with no .env and no variables exits 2, names the three, and shows no traceback."""
    result = run_command([str(RUNPOD_BOT), "run"], tmp_path)
    assert result.returncode == 2
    for name in ("DISCORD_TOKEN", "RUNPOD_API_KEY", "RUNPOD_ENDPOINT_ID"):
        assert name in result.stderr
    assert ".env.example" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_python_bot_py_behaves_like_run(tmp_path: Path) -> None:
    """`python bot.py` is the same entry point as `runpod-bot run`."""
    result = run_command([sys.executable, str(REPO / "bot.py")], tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_reports_the_embedded_redis_reachable(tmp_path: Path) -> None:
    """`runpod-bot check` starts the embedded Redis and reports it reachable (RunPod is down here: exit 1)."""
    result = run_command(
        [str(RUNPOD_BOT), "check"],
        tmp_path,
        DISCORD_TOKEN=SECRET_TOKEN,
        RUNPOD_API_KEY=SECRET_KEY,
        RUNPOD_ENDPOINT_ID="ep",
        RUNPOD_BASE_URL="http://127.0.0.1:1/v2",
        DATA_DIR=str(tmp_path / "d"),
    )
    assert "redis: ok (embedded server" in result.stdout
    assert "runpod default: FAILED: RunPod could not be asked" in result.stdout
    assert result.returncode == 1
    assert SECRET_TOKEN not in result.stdout + result.stderr


def test_check_fails_when_redis_is_unreachable(tmp_path: Path) -> None:
    """`runpod-bot check` against a dead REDIS_URL exits 1 and names the URL without its password."""
    result = run_command(
        [str(RUNPOD_BOT), "check"],
        tmp_path,
        DISCORD_TOKEN=SECRET_TOKEN,
        RUNPOD_API_KEY=SECRET_KEY,
        RUNPOD_ENDPOINT_ID="ep",
        REDIS_URL="redis://user:pa55word@127.0.0.1:1/0",
    )
    assert result.returncode == 1
    assert "redis: FAILED" in result.stdout
    assert "127.0.0.1:1" in result.stdout
    assert "pa55word" not in result.stdout + result.stderr


def test_run_with_unreachable_redis_gives_one_line_and_no_traceback(tmp_path: Path) -> None:
    """The bot refuses to start without Redis, with a one-line reason and no secret."""
    result = run_command(
        [str(RUNPOD_BOT), "run"],
        tmp_path,
        DISCORD_TOKEN=SECRET_TOKEN,
        RUNPOD_API_KEY=SECRET_KEY,
        RUNPOD_ENDPOINT_ID="ep",
        REDIS_URL="redis://user:pa55word@127.0.0.1:1/0",
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Cannot reach Redis at redis://***@127.0.0.1:1/0" in lines[0]
    assert "Traceback" not in result.stderr
    assert SECRET_TOKEN not in result.stderr


def test_run_refuses_a_webhook_secret_too_short_and_names_it(tmp_path: Path) -> None:
    """A 31-character WEBHOOK_SECRET stops `runpod-bot run` with exit 2, naming the variable and its minimum."""
    short = "s" * 31
    result = run_command(
        [str(RUNPOD_BOT), "run"],
        tmp_path,
        DISCORD_TOKEN=SECRET_TOKEN,
        RUNPOD_API_KEY=SECRET_KEY,
        RUNPOD_ENDPOINT_ID="ep",
        WEBHOOK_SECRET=short,
    )
    assert result.returncode == 2
    assert "WEBHOOK_SECRET: " in result.stderr
    assert "at least 32 characters" in result.stderr
    assert short not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("name", "short"), [("RUNPOD_API_KEY", "rpa_short_key"), ("DISCORD_TOKEN", "tok.en.short")])
def test_run_refuses_a_key_or_token_too_short_to_be_real(tmp_path: Path, name: str, short: str) -> None:
    """A RunPod key or Discord token too short to be real stops `runpod-bot run` with exit 2, naming the variable."""
    env = {"DISCORD_TOKEN": SECRET_TOKEN, "RUNPOD_API_KEY": SECRET_KEY, "RUNPOD_ENDPOINT_ID": "ep", name: short}
    result = run_command([str(RUNPOD_BOT), "run"], tmp_path, **env)
    assert result.returncode == 2
    assert f"{name}: " in result.stderr
    assert "too short" in result.stderr
    assert short not in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_an_endpoint_names_what_may_stand_in_for_it(tmp_path: Path) -> None:
    """`runpod-bot run` without RUNPOD_ENDPOINT_ID says that RUNPOD_LOCAL_WORKER_URL or a MODELS_FILE would do."""
    result = run_command([str(RUNPOD_BOT), "run"], tmp_path, DISCORD_TOKEN=SECRET_TOKEN, RUNPOD_API_KEY=SECRET_KEY)
    assert result.returncode == 2
    assert "RUNPOD_ENDPOINT_ID (or RUNPOD_LOCAL_WORKER_URL, or a MODELS_FILE)" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_a_models_file_needs_no_endpoint_id(tmp_path: Path) -> None:
    """With a models file, `runpod-bot run` asks for no RUNPOD_ENDPOINT_ID: it goes on to Redis (dead here: exit 1)."""
    models = tmp_path / "models.toml"
    models.write_text('[[models]]\nname = "mine"\npreset = "sdxl"\nendpoint_id = "ep-from-file"\n')
    result = run_command(
        [str(RUNPOD_BOT), "run"],
        tmp_path,
        DISCORD_TOKEN=SECRET_TOKEN,
        RUNPOD_API_KEY=SECRET_KEY,
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert result.returncode == 1, result.stderr
    assert "RUNPOD_ENDPOINT_ID" not in result.stderr
    assert "Cannot reach Redis" in result.stderr


# Run in the process that imports the command line, so what the command loaded can be listed afterwards (argparse
# ends `--help` with SystemExit).
LOADED_BY_COMMAND = """
import sys
from runpod_bot import cli
try:
    status = cli.main(sys.argv[1:])
except SystemExit as exit:
    status = exit.code
heavy = {'discord', 'PIL', 'cogs', 'bot', 'aiohttp', 'prometheus_client'}
loaded = sorted({name.split('.')[0] for name in sys.modules} & heavy)
print('loaded:', ' '.join(loaded) or 'none')
sys.exit(status)
"""
DISCORD = {"discord", "PIL", "cogs", "bot"}
# What only the commands that ask RunPod or serve HTTP need: the HTTP client and server, the metrics.
HTTP = {"aiohttp", "prometheus_client"}


def loaded_by(command: list[str], tmp_path: Path) -> set[str]:
    """The heavy top-level packages `runpod-bot COMMAND` imported, run against the embedded Redis."""
    result = run_command(
        [sys.executable, "-c", LOADED_BY_COMMAND, *command],
        tmp_path,
        RUNPOD_API_KEY=SECRET_KEY,
        RUNPOD_ENDPOINT_ID="ep",
        RUNPOD_BASE_URL="http://127.0.0.1:1/v2",
        DATA_DIR=str(tmp_path / "d"),
    )
    assert "Traceback" not in result.stderr
    line = next((line for line in result.stdout.splitlines() if line.startswith("loaded:")), None)
    assert line is not None, result.stdout + result.stderr
    return set(line.split()[1:]) - {"none"}


@pytest.mark.parametrize("command", [["status", "nonexistent"], ["jobs"], ["cancel", "nonexistent"], ["health"]])
def test_terminal_commands_never_load_discord_or_pillow(tmp_path: Path, command: list[str]) -> None:
    """`runpod-bot status|jobs|cancel|health` run without importing discord.py, the cogs or Pillow."""
    assert loaded_by(command, tmp_path) & DISCORD == set()


@pytest.mark.parametrize("command", [["status", "nonexistent"], ["jobs"], ["jobs", "--user", "0"], ["--help"]])
def test_reading_commands_never_load_the_http_client_or_metrics(tmp_path: Path, command: list[str]) -> None:
    """`runpod-bot status|jobs|--help` (Redis only, or nothing) import neither aiohttp nor prometheus_client."""
    assert loaded_by(command, tmp_path) == set()
