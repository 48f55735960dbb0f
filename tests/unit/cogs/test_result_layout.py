"""The result message stays within Discord's Components V2 limits for the largest job any model allows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cogs.jobs_ui import result_layout
from cogs.render import (
    GALLERY_ITEM_LIMIT,
    ROW_BUTTON_LIMIT,
    V2_COMPONENT_LIMIT,
    V2_TEXT_LIMIT,
    result_text,
)
from jobs.presets import MAX_IMAGES_PER_JOB
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
        model="m" * 200,
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


def test_the_largest_result_stays_within_discords_v2_limits() -> None:
    """Ten images with per-image seeds, the longest prompt and every note: ≤40 components, ≤4000 characters of
    text, ≤10 gallery items, ≤5 buttons per row."""
    job = largest_job()
    seeds = [2**32 - 1 - index for index in range(MAX_IMAGES_PER_JOB)]
    names = [f"{job.jid}-{index}.webp" for index in range(1, MAX_IMAGES_PER_JOB + 1)]
    view = result_layout(job, result_text(job, seeds, reencoded=True), names)
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
