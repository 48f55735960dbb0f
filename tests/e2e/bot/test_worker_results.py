"""What members read about a real worker's result: a ComfyUI failure's details, and truthful seed labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.bot.conftest import Harness, cards, delivered, results, shown
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


@pytest.mark.parametrize(
    ("preset", "personality", "seed_label"),
    [
        # worker-sdxl seeds one generator for the whole batch and reports that seed once.
        ("sdxl", "sdxl", "42 (one seed for the whole batch of 2)"),
        # worker-stable_diffusion_v1 labels its images seed, seed+1… but renders the batch from one generator.
        ("sd15", "sd-v1-base64", "42 (one seed for the whole batch of 2)"),
        # A1111 gives each image of a batch its own seed (seed, seed+1…), each reproducible alone.
        ("a1111", "a1111", "42, 43"),
    ],
)
async def test_result_labels_seeds_as_the_worker_really_uses_them(
    harness: Harness, tmp_path: Path, preset: str, personality: str, seed_label: str
) -> None:
    """A batch rendered from one seed says so once; per-image seeds are listed per image."""
    models = models_file(harness, tmp_path, preset)
    async with harness.running(models_file=models):
        await harness.imagine(prompt=f"a fox [emulator:{personality}]", seed=42, count=2)
        messages = await harness.wait_for_messages(delivered)
    (result,) = results(messages)
    assert f"seed {seed_label}\n" in shown(result)
