"""The bot on RunPod's real local worker server (`python handler.py --rp_serve_api`): delivery, cancel and health."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.bot.conftest import Harness, answer_text, cards, delivered, final_message, job_of, results
from tests.fakes.discord.views import MessageView


def local_models(directory: Path, url: str) -> Path:
    """A models.toml with one sdxl-style model on the local worker server at `url`."""
    path = directory / "models.toml"
    path.write_text(f'[[models]]\nname = "local"\nlocal_worker_url = "{url}"\npreset = "sdxl"\n')
    return path


def titled(title: str) -> Callable[[list[MessageView]], bool]:
    """Whether some job card has this title."""

    def check(found: list[MessageView]) -> bool:
        return any(card["embeds"][0]["title"] == title for card in cards(found))

    return check


async def test_local_worker_result_is_posted_in_the_channel(
    harness: Harness, tmp_path: Path, local_workers: dict[str, str]
) -> None:
    """An /imagine on a local-worker model is run by the local server and its images are posted, with no API key."""
    models = local_models(tmp_path, local_workers["sdxl"])
    async with harness.running(models_file=models, runpod_api_key=None):
        await harness.imagine(prompt="a red fox", seed=5, count=2)
        messages = await harness.wait_for_messages(delivered)
    (result,) = results(messages)
    assert [attachment["filename"].endswith(".png") for attachment in result["attachments"]] == [True, True]


async def test_cancel_of_a_local_worker_job_says_it_cannot_be_stopped_there(
    harness: Harness, tmp_path: Path, local_workers: dict[str, str]
) -> None:
    """/cancel of a job running on a local worker server says that server cannot cancel, and the card ends Cancelled."""
    models = local_models(tmp_path, local_workers["slow"])
    async with harness.running(models_file=models, runpod_api_key=None):
        await harness.imagine(prompt="a slow fox")
        queued = await harness.wait_for_messages(titled("Queued"))
        jid = job_of(cards(queued)[0])
        interaction = await harness.fake.invoke_command(harness.channel_id, harness.alice, "cancel", {"job": jid})
        answer = answer_text(await harness.answered(interaction))
        assert "RunPod's local worker server cannot cancel a job" in answer
        messages = await harness.wait_for_messages(titled("Cancelled"))
    card = cards(messages)[0]
    fields = {field["name"]: field["value"] for field in card["embeds"][0]["fields"]}
    assert "RunPod's local worker server cannot cancel a job" in fields["Cancel"]
    assert not results(messages)


async def test_health_of_a_local_worker_model_is_unknown(
    harness: Harness, tmp_path: Path, local_workers: dict[str, str]
) -> None:
    """/health shows a local-worker model's health as unknown (the server has no /health), not as a failure."""
    models = local_models(tmp_path, local_workers["sdxl"])
    async with harness.running(models_file=models, runpod_api_key=None):
        interaction = await harness.fake.invoke_command(harness.channel_id, harness.mod, "health")
        message = final_message(await harness.answered(interaction))
    assert message["embeds"][0]["description"] == "Health: unknown (local worker server has no /health)."
