"""The composition root: the core built from default settings is the classes' own defaults, written once."""

from __future__ import annotations

import ast
import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from jobs.policy import PollPolicy
from jobs.poller import PollerSettings
from jobs.presets import default_catalog
from jobs.service import RunSettings
from jobs.webhooks import WebhookSigner
from runpod_bot.core import Core, CoreOptions, assemble_core, build_core, job_stores
from runpod_bot.settings import (
    DEFAULT_GUILD_ACTIVE_JOBS,
    DEFAULT_USER_ACTIVE_JOBS,
    DEFAULT_USER_COOLDOWN_S,
    Settings,
)
from runpod_client.outputs import FetchPolicy
from storage.store import JobStore, Limits, StoreConfig

REPO = Path(__file__).resolve().parents[2]
KEY = "rpa_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123abcdef"


def default_settings(**changes: Any) -> Settings:
    """Settings with nothing but what a core needs (no .env, no models file)."""
    fields: dict[str, Any] = {
        "runpod_api_key": KEY,
        "runpod_endpoint_id": "ep",
        "models_file": "/nonexistent/models.toml",
        **changes,
    }
    return Settings(_env_file=None, **fields)


@pytest.fixture
async def connections() -> AsyncIterator[tuple[aioredis.Redis, aiohttp.ClientSession]]:
    """A Redis client (never connected: building the core sends nothing) and an HTTP session."""
    redis = aioredis.Redis()
    async with aiohttp.ClientSession() as http:
        yield redis, http
    await redis.aclose()


@pytest.fixture
def core(connections: tuple[aioredis.Redis, aiohttp.ClientSession], monkeypatch: pytest.MonkeyPatch) -> Core:
    for name in ("REDIS_PREFIX", "SUBMIT_LEASE_MS", "IMAGE_MAX_MB", "WEBHOOK_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    return build_core(default_settings(), *connections)


def test_default_settings_build_the_poll_policy_defaults(core: Core) -> None:
    """The poll policy built from default settings is `PollPolicy()`."""
    assert core.policy == PollPolicy()


def test_default_settings_build_the_poller_defaults(core: Core) -> None:
    """The poller settings built from default settings are `PollerSettings()`."""
    assert core.poller_settings == PollerSettings()


def test_default_settings_build_the_store_defaults(core: Core) -> None:
    """The store built from default settings has `StoreConfig()`."""
    assert core.store.config == StoreConfig()


def test_default_settings_build_the_fetch_policy_defaults(core: Core) -> None:
    """Image downloads from default settings follow `FetchPolicy()` (the same size cap)."""
    assert core.fetch_policy == FetchPolicy()


def test_default_settings_build_the_run_defaults_with_the_bots_limits(core: Core) -> None:
    """`RunSettings()` but for the admission limits, which the bare class leaves off and the settings turn on."""
    limits = Limits(DEFAULT_USER_ACTIVE_JOBS, DEFAULT_GUILD_ACTIVE_JOBS, int(DEFAULT_USER_COOLDOWN_S * 1000))
    assert core.service.run_settings == RunSettings(limits=limits)


def test_the_status_budgets_burst_is_one_value() -> None:
    """A claim without an explicit burst gets the same quarter second the poller asks for."""
    claim_default = inspect.signature(JobStore.claim_due).parameters["burst_ms"].default
    assert claim_default == PollerSettings().status_burst_ms == 250


def test_no_setting_restates_a_number() -> None:
    """Every numeric default of `Settings` refers to a named constant, never a literal written again."""
    tree = ast.parse((REPO / "runpod_bot/settings.py").read_text())
    settings_class = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings")
    literals = [
        node.target.id
        for node in settings_class.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, int | float)
        and not isinstance(node.value.value, bool)
    ]
    assert literals == []


async def test_command_line_stores_honour_the_submit_lease(
    connections: tuple[aioredis.Redis, aiohttp.ClientSession],
) -> None:
    """The stores `status`, `jobs`, `cancel` and `health` read carry SUBMIT_LEASE_MS like the bot's own."""
    settings = default_settings(submit_lease_ms=300_000, job_record_ttl_days=3)
    stores = job_stores(settings, connections[0])
    assert [store.config.submit_lease_ms for store in stores] == [300_000, 300_000]
    assert [store.config.record_ttl_s for store in stores] == [3 * 24 * 3600] * 2


def test_default_options_assemble_the_classes_defaults(
    connections: tuple[aioredis.Redis, aiohttp.ClientSession],
) -> None:
    """The core a benchmark assembles from `CoreOptions()` polls, runs and stores with the classes' defaults."""
    core = assemble_core(*connections, default_catalog("ep"), CoreOptions())
    assert (core.policy, core.poller_settings, core.store.config, core.service.run_settings, core.fetch_policy) == (
        PollPolicy(),
        PollerSettings(),
        StoreConfig(),
        RunSettings(),
        FetchPolicy(),
    )


def test_a_webhook_signer_makes_polling_the_safety_net(
    connections: tuple[aioredis.Redis, aiohttp.ClientSession],
) -> None:
    """Given a signer, the assembled core polls only as a safety net and receives webhooks with that signer."""
    signer = WebhookSigner(b"secret", "http://127.0.0.1:8080")
    core = assemble_core(*connections, default_catalog("ep"), CoreOptions(webhook_signer=signer))
    receiver = core.webhook_receiver(None)
    assert (core.policy.webhooks, receiver.signer if receiver else None) == (True, signer)
