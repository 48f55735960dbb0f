"""Deployment files: the compose file is valid Compose with Redis persistence on, and the Dockerfile installs and
starts the bot the way the tests do. (No Docker engine runs here: the image itself is not built in CI.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# The Compose specification's schema, as the docker-compose 1.29.2 wheel ships it (compose/config/compose_spec.json).
COMPOSE_SCHEMA = REPO / "tests" / "data" / "compose_spec.json"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def compose_validator() -> jsonschema.Draft201909Validator:
    """The schema declares draft 2019-09 (under an old URL jsonschema does not recognise): use that draft."""
    return jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text()))


def test_compose_file_follows_the_compose_specification() -> None:
    """docker-compose.yml validates against the Compose specification's JSON schema."""
    compose_validator().validate(compose())


def test_compose_schema_rejects_a_broken_file() -> None:
    """The schema check can fail: a service with an unknown key is refused."""
    broken = compose()
    broken["services"]["bot"]["restart_policy_typo"] = "always"
    with pytest.raises(jsonschema.ValidationError):
        compose_validator().validate(broken)


def test_compose_redis_persists_to_a_named_volume() -> None:
    """Redis 7 runs with append-only persistence on a named volume, so jobs survive a container restart."""
    services = compose()["services"]
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume, _, mount = redis["volumes"][0].partition(":")
    assert mount == "/data"
    assert volume in compose()["volumes"]


def test_compose_runs_the_bot_and_optional_pollers_on_that_redis() -> None:
    """The bot runs --role all; the scaled poller service runs --role poller; both use the compose Redis."""
    services = compose()["services"]
    assert services["bot"]["command"] == ["run", "--role", "all"]
    assert services["poller"]["command"] == ["run", "--role", "poller"]
    assert services["poller"]["profiles"] == ["scale"]
    for name in ("bot", "poller"):
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["env_file"] == ".env"


def test_compose_publishes_the_http_server_on_loopback_only() -> None:
    """The bot's HTTP port (/metrics, /readyz, webhooks) is published on 127.0.0.1 only, never on every interface."""
    published = [
        (name, str(port)) for name, service in compose()["services"].items() for port in service.get("ports", [])
    ]
    assert ("bot", "127.0.0.1:8080:8080") in published
    assert all(port.startswith("127.0.0.1:") for _, port in published), published


def test_dockerfile_installs_the_pinned_set_and_runs_as_a_non_root_user() -> None:
    """Multi-stage, pinned install through constraints.txt, a non-root user, a health check on /healthz."""
    instructions = dockerfile_instructions()
    stages = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    assert len(stages) == 2
    assert all(stage.startswith("python:3.11-slim") for stage in stages)
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "pip install --no-cache-dir -c constraints.txt ." in runs
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    healthcheck = next(arguments for instruction, arguments in instructions if instruction == "HEALTHCHECK")
    assert "/healthz" in healthcheck


def test_dockerfile_copies_every_module_the_package_needs() -> None:
    """Every top-level module and package of the project is copied into the image's build stage."""
    copied = " ".join(arguments for instruction, arguments in dockerfile_instructions() if instruction == "COPY")
    pyproject = (REPO / "pyproject.toml").read_text()
    modules = re.search(r"py-modules = \[(.*?)\]", pyproject)
    assert modules is not None
    for module in re.findall(r'"([a-z_]+)"', modules.group(1)):
        assert f"{module}.py" in copied
    packages = re.search(r"include = \[(.*?)\]", pyproject)
    assert packages is not None
    for package in re.findall(r'"([a-z_]+)\*"', packages.group(1)):
        assert f"COPY {package} {package}" in (REPO / "Dockerfile").read_text()


def test_dockerfile_starts_the_command_the_tests_run() -> None:
    """The image's entry point is `runpod-bot run --role all`, the command the end-to-end tests start."""
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["runpod-bot"]
    assert json.loads(instructions["CMD"]) == ["run", "--role", "all"]


def test_package_wheel_carries_the_lua_scripts(tmp_path: Path) -> None:
    """The non-editable install the image does includes the Redis scripts and every module (the composition root
    too)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("runpod_bot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    scripts = {f"storage/scripts/{path.name}" for path in (REPO / "storage" / "scripts").glob("*.lua")}
    assert scripts
    assert scripts <= names
    modules = {path.relative_to(REPO).as_posix() for path in (REPO / "runpod_bot").glob("*.py")}
    assert {"runpod_bot/cli.py", "runpod_bot/core.py", "runpod_bot/settings.py"} <= modules
    assert {"bot.py", "cogs/imagine.py", "runpod_emulator/server.py"} | modules <= names
