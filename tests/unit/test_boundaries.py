"""The import boundaries of docs/architecture.md, checked on the source: the core knows no Discord."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# package or module → modules it must never import (a name forbids the module and everything under it)
BOT = "runpod_bot"
CLI = f"{BOT}.cli"
SETTINGS = f"{BOT}.settings"
FORBIDDEN: dict[str, set[str]] = {
    # The core and its packages know nothing of the application around them (runpod_bot/) nor of Discord.
    "jobs": {"discord", "cogs", "bot", BOT},
    "storage": {"discord", "cogs", "jobs", "runpod_client", "bot", BOT},
    "runpod_client": {"discord", "cogs", "jobs", "storage", "bot", BOT},
    # The cogs receive what they need from the bot; only the composition root and the entry points read settings.
    "cogs": {SETTINGS, "bot", CLI},
    # The composition root builds the core for the bot, the command line and the benchmarks: it knows no Discord.
    "runpod_bot/core.py": {"discord", "cogs", "bot", CLI, f"{BOT}.console", "PIL"},
    # What they show and serve is given its values; only the composition root reads the settings.
    "runpod_bot/console.py": {"discord", "cogs", "bot", CLI, SETTINGS},
    "runpod_bot/web.py": {"discord", "cogs", "bot", CLI, SETTINGS},
    "runpod_bot/logs.py": {SETTINGS, "bot", CLI},
    # The emulator stands for RunPod: it imports nothing of the bot, so no bug of ours can hide in it.
    "runpod_emulator": {"discord", "cogs", "jobs", "storage", "runpod_client", "bot", BOT},
}
PRODUCTION = (
    "bot.py",
    "runpod_bot/core.py",
    "runpod_bot/cli.py",
    "runpod_bot/console.py",
    "runpod_bot/logs.py",
    "runpod_bot/settings.py",
    "runpod_bot/web.py",
    "cogs",
    "jobs",
    "runpod_client",
    "storage",
)


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name a file imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(entry: str) -> list[Path]:
    target = REPO / entry
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_its_import_boundary(package: str) -> None:
    """No module of the package (or top-level module) imports what the architecture forbids it."""
    violations = []
    for path in python_files(package):
        for name in imported_modules(path):
            if any(name == banned or name.startswith(f"{banned}.") for banned in FORBIDDEN[package]):
                violations.append(f"{path.relative_to(REPO)} imports {name}")
    assert violations == []


# The cogs talk to the core (`jobs/`), never to the store: of `storage/` they may use only the plain records
# (`storage.models`: `TrackedJob`, `JobState`, `Requester`), which carry no I/O.
COG_STORAGE_ALLOWED = {"storage.models"}


def test_cogs_reach_storage_only_for_its_records() -> None:
    """No cog imports the store, the guild settings or Redis itself: they ask `JobService` and `PromptRules`."""
    violations = []
    for path in python_files("cogs"):
        for name in imported_modules(path):
            top = name.split(".")[0]
            if (top == "storage" and name not in COG_STORAGE_ALLOWED) or top == "redis":
                violations.append(f"{path.relative_to(REPO)} imports {name}")
    assert violations == []


def test_production_code_never_imports_the_emulator() -> None:
    """Only tests, benchmarks and the CLI's local mode may start the RunPod emulator."""
    violations = []
    for entry in PRODUCTION:
        for path in python_files(entry):
            if path == REPO / "runpod_bot" / "cli.py":
                continue
            for name in imported_modules(path):
                if name.startswith("runpod_emulator"):
                    violations.append(f"{path.relative_to(REPO)} imports {name}")
    assert violations == []
