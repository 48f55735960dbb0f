"""U1…Un and V1…Vn share one per-image button: the custom_ids results already carry keep their meaning."""

from __future__ import annotations

import pytest

from cogs.jobs_ui import JobButton, UpscaleButton
from cogs.variations import VaryButton

JID = "0123456789abcdef"


@pytest.mark.parametrize(("kind", "letter"), [(UpscaleButton, "u"), (VaryButton, "v")])
def test_a_per_image_button_writes_its_letter_index_and_job_into_its_custom_id(
    kind: type[UpscaleButton | VaryButton], letter: str
) -> None:
    """Image 2's button reads U2 or V2 and carries `job:u2:<jid>` or `job:v2:<jid>`, as posted results do."""
    button = kind(2, JID)
    assert (button.item.label, button.custom_id) == (f"{letter.upper()}2", f"job:{letter}2:{JID}")


@pytest.mark.parametrize("custom_id", [f"job:u1:{JID}", f"job:u10:{JID}", f"job:u0:{JID}", f"job:u11:{JID}"])
def test_u_custom_ids_written_by_hand_are_read_by_u_alone(custom_id: str) -> None:
    """`job:u<n>:<jid>` as older messages carry it (any two digits) is U's, neither V's nor a job action's."""
    assert UpscaleButton.__discord_ui_compiled_template__.fullmatch(custom_id) is not None
    assert VaryButton.__discord_ui_compiled_template__.fullmatch(custom_id) is None
    assert JobButton.__discord_ui_compiled_template__.fullmatch(custom_id) is None


@pytest.mark.parametrize("custom_id", [f"job:v1:{JID}", f"job:v10:{JID}", f"job:v0:{JID}", f"job:v11:{JID}"])
def test_v_custom_ids_written_by_hand_are_read_by_v_alone(custom_id: str) -> None:
    """`job:v<n>:<jid>` as older messages carry it is V's alone."""
    assert VaryButton.__discord_ui_compiled_template__.fullmatch(custom_id) is not None
    assert UpscaleButton.__discord_ui_compiled_template__.fullmatch(custom_id) is None
    assert JobButton.__discord_ui_compiled_template__.fullmatch(custom_id) is None


async def test_an_index_outside_one_to_ten_is_still_rebuilt_so_it_can_be_refused_in_words() -> None:
    """`job:v11:<jid>` becomes V11 (refused by its callback, with a reply), not an exception discord.py swallows."""
    template = VaryButton.__discord_ui_compiled_template__
    match = template.fullmatch(f"job:v11:{JID}")
    assert match is not None
    button = await VaryButton.from_custom_id(None, None, match)  # type: ignore[arg-type]  # unused by the method
    assert (button.index, button.jid, button.name) == (11, JID, "V11")
