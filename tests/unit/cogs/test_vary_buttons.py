"""The V1…Vn row the result gallery shows: one button per image, none for a model that cannot start from an image."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from cogs.variations import VaryButton, vary_buttons
from jobs.presets import ModelCatalog, ModelEntry, build_model
from storage.models import JobState, TrackedJob

JID = "0123456789abcdef"


def catalog() -> ModelCatalog:
    entries = [
        ModelEntry.model_validate({"name": "xl", "preset": "sdxl", "endpoint_id": "e1", "default": True}),
        ModelEntry.model_validate({"name": "flux", "preset": "flux", "endpoint_id": "e2"}),
    ]
    return ModelCatalog(tuple(build_model(entry) for entry in entries), "xl")


def job(model: str) -> TrackedJob:
    now = datetime.now(UTC)
    return TrackedJob(
        jid=JID, state=JobState.DELIVERED, endpoint_id="e1", model=model, user_id=1, created_at=now, updated_at=now
    )


def test_one_vary_button_per_image_with_its_number_and_job() -> None:
    """A three-image result gets V1, V2, V3, each naming its image and the job in its custom_id."""
    buttons = vary_buttons(job("xl"), 3, catalog())
    assert [(button.item.label, button.item.custom_id) for button in buttons] == [
        ("V1", f"job:v1:{JID}"),
        ("V2", f"job:v2:{JID}"),
        ("V3", f"job:v3:{JID}"),
    ]


def test_no_vary_buttons_for_a_model_that_takes_no_image() -> None:
    """A Flux result shows no V buttons: each could only be refused."""
    assert vary_buttons(job("flux"), 2, catalog()) == []


def test_vary_custom_ids_are_not_taken_by_the_other_job_buttons() -> None:
    """`job:v2:<jid>` matches the V template and not `job:<action>:<jid>` of Re-roll, Delete and the rest."""
    custom_id = f"job:v2:{JID}"
    assert VaryButton.__discord_ui_compiled_template__.fullmatch(custom_id) is not None
    assert re.fullmatch(r"job:(?P<action>[a-z]+):(?P<jid>[0-9a-f]{8,32})", custom_id) is None
