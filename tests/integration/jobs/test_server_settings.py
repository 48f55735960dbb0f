"""A server's settings on a real Redis and the emulator: admission counts a member's jobs per server, a changed
cooldown applies at once, two changes at once both count, the log stays bounded, and a submit obeys the settings of
the moment it is admitted."""

from __future__ import annotations

import asyncio

import pytest

from jobs.presets import ModelCatalog, ModelEntry, RequestOptions, build_model
from jobs.server_settings import ServerSettingsService
from jobs.service import CooldownError, JobService, QuotaExceededError, RunSettings
from storage.connection import create_client
from storage.models import Requester
from storage.server_settings import ServerSettingsStore
from storage.store import Limits
from tests.integration.jobs.conftest import FAST_POLICY, Core

MOD = 900
GUILD_A, GUILD_B = 1, 2


def two_models(endpoint_id: str) -> ModelCatalog:
    entries = [
        ModelEntry.model_validate({"name": name, "preset": "sdxl", "endpoint_id": endpoint_id})
        for name in ("xl", "flux")
    ]
    return ModelCatalog(tuple(build_model(entry) for entry in entries), "xl")


def with_settings(core: Core, caps: Limits, catalog: ModelCatalog | None = None) -> JobService:
    """The core's service, with servers' settings in Redis under these operator caps."""
    catalog = catalog or core.catalog
    settings = ServerSettingsService(ServerSettingsStore(core.store.redis, core.store.keys), catalog, caps)
    return JobService(
        core.store,
        core.clients,
        catalog,
        policy=FAST_POLICY,
        run_settings=RunSettings(limits=caps),
        server_settings=settings,
    )


def member(user_id: int, guild_id: int) -> Requester:
    return Requester(user_id=user_id, guild_id=guild_id, channel_id=guild_id * 10)


async def test_a_servers_member_limit_counts_only_the_members_jobs_there(core: Core) -> None:
    """With one job per member in server A, a member's job in server B does not stop their first job in A; a
    second one in A is refused as the member's, in A."""
    core.emulator.update_scenario(workers=0)
    service = with_settings(core, Limits(user_active=5))
    await service.server_settings.set_limits(GUILD_A, MOD, member_jobs=1)
    await service.submit(RequestOptions(prompt="in B"), member(7, GUILD_B))
    await service.submit(RequestOptions(prompt="in A"), member(7, GUILD_A))
    with pytest.raises(QuotaExceededError) as refused:
        await service.submit(RequestOptions(prompt="in A again"), member(7, GUILD_A))
    assert (refused.value.scope, refused.value.active, refused.value.limit) == ("member", 1, 1)


async def test_a_shortened_server_cooldown_applies_at_once(core: Core) -> None:
    """A member waiting out a server's hour-long cooldown may submit as soon as the server shortens it."""
    service = with_settings(core, Limits())
    await service.server_settings.set_limits(GUILD_A, MOD, cooldown_s=3600)
    await service.submit(RequestOptions(prompt="first"), member(7, GUILD_A))
    with pytest.raises(CooldownError) as waiting:
        await service.submit(RequestOptions(prompt="second"), member(7, GUILD_A))
    assert waiting.value.retry_after_ms > 3_590_000
    await service.server_settings.set_limits(GUILD_A, MOD, cooldown_s=0)
    # Elsewhere the server's cooldown never applied.
    await service.submit(RequestOptions(prompt="in B"), member(7, GUILD_B))
    await service.submit(RequestOptions(prompt="second"), member(7, GUILD_A))


async def test_changes_made_at_once_by_several_processes_all_count(core: Core, redis_url: str) -> None:
    """Four moderators, each through their own process's connection, stop four different models at the same moment:
    all four end up not offered (none overwrites another's list), and the log has the four changes."""
    names = ("a", "b", "c", "d", "e", "f")
    models = ModelCatalog(
        tuple(
            build_model(ModelEntry.model_validate({"name": name, "preset": "sdxl", "endpoint_id": "ep"}))
            for name in names
        ),
        "a",
    )
    clients = [create_client(redis_url) for _ in range(4)]
    try:
        # Connected before the race, as running processes are.
        await asyncio.gather(*(client.ping() for client in clients))
        services = [
            ServerSettingsService(ServerSettingsStore(client, core.store.keys), models, Limits()) for client in clients
        ]
        outcomes = await asyncio.gather(
            *(
                service.allow_model(GUILD_A, MOD + n, name, False)
                for n, (service, name) in enumerate(zip(services, "bcde", strict=True))
            )
        )
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    settings = ServerSettingsService(ServerSettingsStore(core.store.redis, core.store.keys), models, Limits())
    assert all(outcome.changed for outcome in outcomes)
    assert (await settings.rules(GUILD_A)).allowed_models == ("a", "f")
    assert len(await settings.history(GUILD_A)) == 4


async def test_the_log_keeps_only_the_latest_changes(core: Core) -> None:
    """The log is capped: after more changes than it keeps, the newest are there, newest first."""
    store = ServerSettingsStore(core.store.redis, core.store.keys, log_max=3)
    settings = ServerSettingsService(store, core.catalog, Limits())
    for seconds in range(1, 6):
        await settings.set_limits(GUILD_A, MOD, cooldown_s=seconds)
    assert [change.what for change in await settings.history(GUILD_A)] == [
        "limits: cooldown 4 s → 5 s",
        "limits: cooldown 3 s → 4 s",
        "limits: cooldown 2 s → 3 s",
    ]
    assert await core.store.redis.llen(core.store.keys.guild_settings_log(GUILD_A)) == 3


async def test_a_submit_obeys_the_settings_of_the_moment_it_is_admitted(core: Core) -> None:
    """A request prepared under the old default model is submitted on the new one when the default changed between
    the two (the front end prepares before it defers; admission reads the settings again)."""
    service = with_settings(core, Limits(), two_models(core.emulator.endpoint_id))
    prepared = service.prepare(RequestOptions(prompt="a kite"), None, await service.server_rules(GUILD_A))
    assert prepared.model.name == "xl"
    await service.server_settings.set_default_model(GUILD_A, MOD, "flux")
    await service.server_settings.set_negative(GUILD_A, MOD, "blurry")
    submitted = await service.submit(prepared, member(7, GUILD_A))
    assert submitted.job.model == "flux"
    assert submitted.request.negative_prompt == "blurry"
