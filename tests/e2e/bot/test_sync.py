"""/imagine on a model with `sync = true`: the card says the job went out, the images come from the /runsync reply."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.bot.conftest import Harness, answer_text, cards, delivered, removed_cards, results


def sync_models(harness: Harness, directory: Path, wait_s: float = 3.0) -> Path:
    path = directory / "models.toml"
    path.write_text(
        f'[[models]]\nname = "fast"\nendpoint_id = "{harness.emulator.endpoint_id}"\npreset = "sdxl-turbo"\n'
        f"sync = true\nsync_wait_s = {wait_s}\n"
    )
    return path


async def test_sync_model_result_is_posted_from_the_runsync_reply(harness: Harness, tmp_path: Path) -> None:
    """The images are posted from the /runsync reply (no /status call); the card goes from sent to the result."""
    async with harness.running(models_file=sync_models(harness, tmp_path)):
        answer = await harness.imagine(prompt="a red fox in snow")
        assert answer_text(answer).startswith("Submitted")
        messages = await harness.wait_for_messages(delivered)
        (card,) = removed_cards(await harness.everything())
    assert cards(messages) == []
    assert len(results(messages)) == 1
    first = card["history"][0]["embeds"][0]
    assert first["title"] == "Submitting…"
    fields = {field["name"]: field["value"] for field in first["fields"]}
    assert "within 3 s" in fields["Sent to RunPod"]
    titles = [version["embeds"][0]["title"] for version in card["history"]]
    assert "Queued" not in titles
    counters = harness.emulator.counters
    assert (counters.request_count("runsync"), counters.request_count("run")) == (1, 0)
    assert counters.request_count("status") == 0
