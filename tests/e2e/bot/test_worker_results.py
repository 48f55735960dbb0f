"""What members read about a real worker's result: a ComfyUI failure's details."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.bot.conftest import Harness, cards
from tests.fakes.discord.views import MessageView

COMFY_WORKFLOW = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}}}


def models_file(harness: Harness, directory: Path, preset: str) -> Path:
    """A models.toml with one model of `preset` on the emulator's endpoint (ComfyUI gets a workflow template)."""
    (directory / "workflow.json").write_text(json.dumps(COMFY_WORKFLOW))
    workflow = 'workflow_file = "workflow.json"\n' if preset == "comfyui" else ""
    path = directory / "models.toml"
    endpoint = harness.emulator.endpoint_id
    path.write_text(f'[[models]]\nname = "m"\nendpoint_id = "{endpoint}"\npreset = "{preset}"\n{workflow}')
    return path


def fields_of(message: MessageView) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message["embeds"][0]["fields"]}


def failed(found: list[MessageView]) -> bool:
    return any(card["embeds"][0]["title"] == "Failed" for card in cards(found))


async def test_comfyui_failure_shows_the_workers_details_on_the_card(harness: Harness, tmp_path: Path) -> None:
    """worker-comfyui's `{"error": "Job processing failed", "details": [...]}` puts the details on the card."""
    models = models_file(harness, tmp_path, "comfyui")
    async with harness.running(models_file=models):
        await harness.imagine(prompt="a teapot [emulator:comfyui-fail]")
        messages = await harness.wait_for_messages(failed)
    (card,) = cards(messages)
    reason = fields_of(card)["Reason"]
    assert reason.startswith("Job processing failed: Workflow execution error: Node Type: KSampler")
    assert "out of memory" in reason
    assert len(reason) <= 500
