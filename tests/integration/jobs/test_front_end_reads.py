"""What the front ends ask of the core instead of the store: the deny-list at submit, the jobs an actor may see or
cancel from where they act, what delivery records, and the tracker's own state, on the real Redis and emulator."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from jobs.access import Actor
from jobs.presets import RequestOptions
from jobs.prompt_filter import PromptRules, term_key
from jobs.service import DeniedTermError, JobService, RunSettings
from storage.guilds import GuildSettings
from storage.models import Requester, TrackedJob
from tests.integration.jobs.conftest import FAST_POLICY, Core

SERVER = 2001
OTHER_SERVER = 2002
ALICE = Requester(user_id=1001, guild_id=SERVER, channel_id=3001)
BOB = Requester(user_id=1002, guild_id=SERVER, channel_id=3001)
CAROL_ELSEWHERE = Requester(user_id=1003, guild_id=OTHER_SERVER, channel_id=3002)
IN_A_DM = Requester(user_id=1001, guild_id=None, channel_id=3009)
MODERATOR = Actor(user_id=1099, guild_id=SERVER, moderator=True)


def guarded_service(core: Core, global_terms: Sequence[str] = ()) -> tuple[JobService, PromptRules]:
    rules = PromptRules(GuildSettings(core.store.redis, core.store.keys, term_key), global_terms)
    service = JobService(
        core.store, core.clients, core.catalog, policy=FAST_POLICY, run_settings=RunSettings(), prompt_rules=rules
    )
    return service, rules


async def submit(core: Core, requester: Requester, prompt: str = "a lighthouse", **extra: object) -> TrackedJob:
    return (await core.service.submit(RequestOptions(prompt=prompt), requester, extra=extra)).job


async def test_server_term_is_refused_by_the_core_and_nothing_is_recorded_or_sent(core: Core) -> None:
    """A prompt holding a term of its server's deny-list is refused by `submit` itself, with the term named."""
    service, rules = guarded_service(core)
    await rules.refuse(SERVER, "Blood Bath")
    with pytest.raises(DeniedTermError) as refused:
        await service.submit(RequestOptions(prompt="a BLOOD bath at dawn"), ALICE)
    assert str(refused.value) == "This server doesn't allow the term “Blood Bath” in prompts. Please rephrase."
    assert await core.store.user_recent(ALICE.user_id) == []
    assert core.emulator.snapshot()["received"].get("run", 0) == 0


async def test_server_term_does_not_refuse_a_prompt_from_another_server(core: Core) -> None:
    """A server's own term is refused only in that server: the same prompt elsewhere is submitted."""
    service, rules = guarded_service(core)
    await rules.refuse(SERVER, "Blood Bath")
    submission = await service.submit(RequestOptions(prompt="a blood bath at dawn"), CAROL_ELSEWHERE)
    assert submission.job.runpod_id is not None


async def test_operator_term_is_refused_without_a_server(core: Core) -> None:
    """The operator's terms apply everywhere, also to a requester with no server (a DM, the command line)."""
    service, _rules = guarded_service(core, ["gore"])
    with pytest.raises(DeniedTermError, match="“gore”"):
        await service.submit(RequestOptions(prompt="some GORE"), IN_A_DM)
    assert core.emulator.snapshot()["received"].get("run", 0) == 0


async def test_denied_negative_prompt_is_refused_too(core: Core) -> None:
    """What a member keeps out of the image is checked as well as what they ask for."""
    service, rules = guarded_service(core)
    await rules.refuse(SERVER, "gore")
    with pytest.raises(DeniedTermError):
        await service.submit(RequestOptions(prompt="a cat", negative_prompt="no gore please"), ALICE)


async def test_moderator_in_their_server_may_cancel_its_jobs_but_not_private_ones(core: Core) -> None:
    """From inside the server, a moderator's cancel list is that server's live jobs, without private ones."""
    public = await submit(core, ALICE)
    await submit(core, BOB, private=True)
    await submit(core, CAROL_ELSEWHERE)
    jobs = await core.service.jobs_to_cancel(MODERATOR)
    assert [job.jid for job in jobs] == [public.jid]


async def test_moderator_outside_their_server_may_cancel_only_their_own_jobs(core: Core) -> None:
    """From another server (where they moderate nothing) or a DM, a moderator's cancel list is their own jobs."""
    await submit(core, ALICE)
    own = await submit(core, Requester(user_id=MODERATOR.user_id, guild_id=OTHER_SERVER, channel_id=3002))
    for actor in (Actor(user_id=MODERATOR.user_id, guild_id=OTHER_SERVER), Actor(user_id=MODERATOR.user_id)):
        assert [job.jid for job in await core.service.jobs_to_cancel(actor)] == [own.jid]


async def test_server_jobs_are_only_those_of_the_actors_server(core: Core) -> None:
    """`/health` for a server's moderator counts that server's jobs; another server's moderator sees none of them,
    and from a DM there is no server to show."""
    mine = await submit(core, ALICE)
    await submit(core, CAROL_ELSEWHERE)
    assert [job.jid for job in await core.service.server_jobs(MODERATOR)] == [mine.jid]
    other = Actor(user_id=2222, guild_id=OTHER_SERVER, moderator=True)
    assert all(job.guild_id == OTHER_SERVER for job in await core.service.server_jobs(other))
    assert await core.service.server_jobs(Actor(user_id=MODERATOR.user_id, moderator=True)) == []


async def test_recent_jobs_follow_where_they_are_asked_from(core: Core) -> None:
    """A member in a server sees their jobs of that server (not private ones); in a DM, all of them; a moderator
    sees that member's jobs of their own server only."""
    here = await submit(core, ALICE)
    private = await submit(core, ALICE, private=True)
    elsewhere = await submit(core, Requester(user_id=ALICE.user_id, guild_id=OTHER_SERVER, channel_id=3002))
    in_server = await core.service.recent_jobs(Actor(user_id=ALICE.user_id, guild_id=SERVER), ALICE.user_id, 10, 50)
    in_dm = await core.service.recent_jobs(Actor(user_id=ALICE.user_id), ALICE.user_id, 10, 50)
    by_moderator = await core.service.recent_jobs(MODERATOR, ALICE.user_id, 10, 50)
    assert [job.jid for job in in_server] == [here.jid]
    assert {job.jid for job in in_dm} == {here.jid, private.jid, elsewhere.jid}
    assert [job.jid for job in by_moderator] == [here.jid]


async def test_delivery_records_are_kept_on_the_job(core: Core) -> None:
    """The card's message, the result's messages (with their channel and seeds) and why a result was not delivered are
    read back from the job."""
    job = await submit(core, ALICE)
    await core.service.record_card(job.jid, 111)
    recorded = await core.service.record_results(job, [222], {"result_channel_id": 333, "result_seeds": [7, None]})
    shown = await core.service.record_undelivered(recorded, "Discord refused the images")
    stored = await core.service.find(job.jid)
    assert stored is not None
    assert (stored.card_message_id, stored.result_message_ids) == (111, [222])
    assert (stored.extra["result_channel_id"], stored.extra["result_seeds"]) == (333, [7, None])
    assert stored.extra["delivery_failed"] == shown.extra["delivery_failed"] == "Discord refused the images"


async def test_tracking_counts_the_endpoints_scheduled_jobs(core: Core) -> None:
    """The tracker's own state: Redis answers, and the endpoint's scheduled jobs are counted."""
    await submit(core, ALICE)
    await submit(core, BOB)
    tracked = await core.service.tracking([core.client.endpoint_id])
    assert tracked.redis_ok
    assert tracked.endpoints[core.client.endpoint_id].active_jobs == 2
