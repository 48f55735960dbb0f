"""Process roles: a gateway that takes commands and pollers that deliver through REST, sharing one Redis."""

from __future__ import annotations

from bot import Role
from tests.e2e.bot.conftest import Harness, cards, results


async def test_gateway_takes_commands_and_a_poller_delivers(harness: Harness) -> None:
    """With a gateway-only bot and a poller-only bot, the job is submitted by one and delivered by the other."""
    async with harness.running(Role.GATEWAY) as gateway, harness.running(Role.POLLER) as poller:
        assert gateway.poller is None
        assert poller.poller is not None
        await harness.imagine(prompt="split roles")
        messages = await harness.wait_for_messages(lambda found: bool(results(found)))
        sessions = await harness.fake.sessions()
    assert len(results(messages)) == 1
    assert cards(messages)[0]["embeds"][0]["title"] == "Done"
    assert len(sessions) == 1


async def test_two_pollers_deliver_each_job_once(harness: Harness) -> None:
    """Ten jobs with one gateway and two pollers: ten results, none twice."""
    async with (
        harness.running(Role.GATEWAY),
        harness.running(Role.POLLER),
        harness.running(Role.POLLER),
    ):
        for index in range(10):
            await harness.imagine(user_id=harness.alice if index % 2 else harness.bob, prompt=f"picture {index}")
        messages = await harness.wait_for_messages(lambda found: len(results(found)) >= 10, timeout_s=40)
    references = [
        int(message["message_reference"]["message_id"]) for message in results(messages) if message["message_reference"]
    ]
    assert len(results(messages)) == 10
    assert len(set(references)) == 10
