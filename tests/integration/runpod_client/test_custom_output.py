"""The emulator's `custom` personality returns whatever output the scenario names, verbatim."""

from __future__ import annotations

from runpod_client import RunPodClient
from runpod_emulator import Emulator
from tests.plugins.emulator import poll_job


async def test_custom_personality_returns_the_scenarios_output(
    emulator: Emulator, emulator_client: RunPodClient
) -> None:
    """A job of the custom personality completes with exactly the scenario's custom_output."""
    odd = {"images": [{"nested": [[["not an image"]]]}], "note": "\u200b"}
    emulator.update_scenario(custom_output=odd)
    job = await emulator_client.run({"prompt": "[emulator:custom] anything"})
    finished, _ = await poll_job(emulator_client, job.id)
    assert finished.status == "COMPLETED"
    assert finished.output == odd
