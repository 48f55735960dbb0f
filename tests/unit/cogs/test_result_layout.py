"""The result message stays within Discord's Components V2 limits for the largest job any model allows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import discord

from cogs.jobs_ui import result_layout
from cogs.render import (
    GALLERY_ITEM_LIMIT,
    ROW_BUTTON_LIMIT,
    V2_COMPONENT_LIMIT,
    V2_TEXT_LIMIT,
    result_text,
)
from cogs.variations import vary_buttons
from jobs.presets import MAX_IMAGES_PER_JOB, ModelCatalog, ModelEntry, build_model
from storage.models import JobState, TrackedJob

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def largest_job() -> TrackedJob:
    """Every image a message may hold, a prompt far past any limit made of characters that escaping doubles, and
    every note a result can carry."""
    request = {
        "prompt": "*_`~|>" * 2000,
        "negative_prompt": "#" * 5000,
        "width": 1024,
        "height": 1024,
        "steps": 150,
        "guidance": 30.0,
        "seed": 2**32 - 1,
        "count": MAX_IMAGES_PER_JOB,
        "seed_scope": "image",
    }
    return TrackedJob(
        jid="0123456789abcdef0123456789abcdef",
        state=JobState.COMPLETED,
        endpoint_id="ep",
        model="m" * 40,  # the longest name models.toml allows
        user_id=2**63 - 1,
        request=request,
        extra={"images_returned": 99, "images_allowed": MAX_IMAGES_PER_JOB},
        created_at=NOW,
        updated_at=NOW,
    )


def walk(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for component in components:
        found.append(component)
        found += walk(list(component.get("components", [])))
        if isinstance(component.get("accessory"), dict):
            found += walk([component["accessory"]])
    return found


def image_catalog(name: str) -> ModelCatalog:
    """One model of that name that starts from an image, so its results show V buttons."""
    entry = ModelEntry.model_validate({"name": name, "preset": "sdxl", "endpoint_id": "ep", "default": True})
    return ModelCatalog((build_model(entry),), name)


def largest_layout(job: TrackedJob) -> discord.ui.LayoutView:
    """The result of `largest_job`: every image, with its U and V buttons."""
    seeds = [2**32 - 1 - index for index in range(MAX_IMAGES_PER_JOB)]
    names = [f"{job.jid}-{index}.webp" for index in range(1, MAX_IMAGES_PER_JOB + 1)]
    vary = vary_buttons(job, MAX_IMAGES_PER_JOB, image_catalog(job.model))
    return result_layout(job, result_text(job, seeds, reencoded=True), names, vary)


def test_the_largest_result_stays_within_discords_v2_limits() -> None:
    """Ten images with per-image seeds and their U and V buttons, the longest prompt and every note: ≤40 components,
    ≤4000 characters of text, ≤10 gallery items, ≤5 buttons per row."""
    job = largest_job()
    names = [f"{job.jid}-{index}.webp" for index in range(1, MAX_IMAGES_PER_JOB + 1)]
    view = largest_layout(job)
    components: list[dict[str, Any]] = view.to_components()  # type: ignore[no-untyped-call]
    every = walk(components)
    assert len(every) <= V2_COMPONENT_LIMIT
    assert sum(len(c["content"]) for c in every if c["type"] == 10) <= V2_TEXT_LIMIT
    (gallery,) = [c for c in every if c["type"] == 12]
    assert [item["media"]["url"] for item in gallery["items"]] == [f"attachment://{name}" for name in names]
    assert len(gallery["items"]) <= GALLERY_ITEM_LIMIT
    rows = [c for c in every if c["type"] == 1]
    assert rows
    assert all(len(row["components"]) <= ROW_BUTTON_LIMIT for row in rows)


def test_the_result_text_keeps_the_reencoded_note_and_the_parameters_even_with_the_longest_prompt() -> None:
    """However long the prompt, the parameters and the re-encoding note are still shown."""
    job = largest_job()
    text = result_text(job, [1, 2], reencoded=True)
    assert "guidance 30" in text
    assert "150 steps" in text
    assert "Re-encoded to fit" in text
    assert "were not posted" in text


def test_the_largest_result_has_rows_of_u_then_rows_of_v_then_the_jobs_buttons() -> None:
    """Ten images: two rows U1…U5 and U6…U10, two rows V1…V5 and V6…V10, then Re-roll, Remix, Info, Delete."""
    job = largest_job()
    components: list[dict[str, Any]] = largest_layout(job).to_components()  # type: ignore[no-untyped-call]
    rows = [[button["label"] for button in c["components"]] for c in components if c["type"] == 1]
    assert rows == [
        [f"U{index}" for index in range(1, 6)],
        [f"U{index}" for index in range(6, 11)],
        [f"V{index}" for index in range(1, 6)],
        [f"V{index}" for index in range(6, 11)],
        ["Re-roll", "Remix", "Info", "Delete"],
    ]
