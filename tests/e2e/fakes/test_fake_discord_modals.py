"""Modals: a bot answers with one, the fake checks it as Discord does, and a member submits it."""

from __future__ import annotations

from typing import Any

import discord
import pytest

from tests.e2e.fakes.conftest import Place, run_probe
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import ControlError, FakeDiscordDriver
from tests.fakes.discord.present import render_message

MODAL_CALLBACK = 9


class Remix(discord.ui.Modal, title="Remix this image"):
    """What discord.py 2.7 sends: text inputs wrapped in Labels (component type 18)."""

    prompt: discord.ui.Label[Remix] = discord.ui.Label(
        text="Prompt", component=discord.ui.TextInput(custom_id="prompt", min_length=3, max_length=200)
    )
    negative: discord.ui.Label[Remix] = discord.ui.Label(
        text="Negative prompt",
        component=discord.ui.TextInput(custom_id="negative", required=False, style=discord.TextStyle.paragraph),
    )

    def __init__(self) -> None:
        super().__init__(timeout=60)
        self.seen: dict[str, str] = {}

    async def on_submit(self, interaction: discord.Interaction) -> None:
        for label in (self.prompt, self.negative):
            assert isinstance(label.component, discord.ui.TextInput)
            self.seen[label.component.custom_id] = label.component.value
        await interaction.response.send_message(f"remixing with {self.seen['prompt']!r}")


class RemixButton(discord.ui.View):
    """A legacy view whose button opens the Remix modal."""

    def __init__(self) -> None:
        super().__init__(timeout=60)
        self.modal = Remix()

    @discord.ui.button(label="Remix", custom_id="remix")
    async def remix(self, interaction: discord.Interaction, button: discord.ui.Button[RemixButton]) -> None:
        await interaction.response.send_modal(self.modal)


async def opened_modal(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> tuple[int, Remix]:
    """Post the Remix button, click it as alice and wait for the modal; returns the click's id and the modal."""
    view = RemixButton()
    channel = tiny.get_channel(place.channel_id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("result", view=view)
    click = await driver.click_button(sent.id, "remix", place.member_id)
    shown = await driver.wait_for_modal(click["id"])
    assert shown["title"] == "Remix this image"
    answered = await driver.interaction(click["id"])
    assert answered["response"] is not None
    assert answered["response"]["type"] == MODAL_CALLBACK
    return click["id"], view.modal


async def test_modal_from_a_button_is_submitted_and_on_submit_sees_the_values(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A member fills the modal a button opened; on_submit reads the values and its reply is posted."""
    click_id, modal = await opened_modal(driver, place, tiny)
    submitted = await driver.submit_modal(click_id, {"prompt": "a red fox"})
    reply = await driver.wait_for_original(submitted["id"])
    assert render_message(reply) == "remixing with 'a red fox'"
    assert modal.seen == {"prompt": "a red fox", "negative": ""}


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({}, "required"),
        ({"prompt": "ab"}, "at least 3"),
        ({"prompt": "x" * 201}, "at most 200"),
        ({"seed": "1"}, "no inputs"),
    ],
    ids=["required-left-empty", "too-short", "too-long", "unknown-input"],
)
async def test_invalid_modal_submission_is_refused(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot, values: dict[str, str], complaint: str
) -> None:
    """A submission the Discord client would not send (required, min/max length, unknown input) is refused."""
    click_id, _ = await opened_modal(driver, place, tiny)
    with pytest.raises(ControlError, match=complaint):
        await driver.submit_modal(click_id, values)


async def test_modal_is_submitted_only_once(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A submitted modal is closed: a second submission is refused."""
    click_id, _ = await opened_modal(driver, place, tiny)
    await driver.submit_modal(click_id, {"prompt": "a red fox"})
    with pytest.raises(ControlError, match="already submitted"):
        await driver.submit_modal(click_id, {"prompt": "a blue fox"})


async def test_acknowledgement_after_a_modal_is_refused(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A modal is the first response: answering the interaction again fails with 40060."""

    async def modal_then_message(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Remix())
        route = discord.http.Route(
            "POST",
            "/interactions/{interaction_id}/{token}/callback",
            interaction_id=interaction.id,
            token=interaction.token,
        )
        await interaction.client.http.request(route, json={"type": 4, "data": {"content": "too"}})

    _, outcome = await run_probe(driver, place, tiny, modal_then_message)
    assert isinstance(outcome.error, discord.HTTPException)
    assert (outcome.error.status, outcome.error.code) == (400, 40060)


def long_title(modal: Remix) -> None:
    modal.title = "t" * 46


def long_label(modal: Remix) -> None:
    modal.prompt.text = "l" * 46


def long_placeholder(modal: Remix) -> None:
    assert isinstance(modal.prompt.component, discord.ui.TextInput)
    modal.prompt.component.placeholder = "p" * 101


def max_length_over_4000(modal: Remix) -> None:
    assert isinstance(modal.prompt.component, discord.ui.TextInput)
    modal.prompt.component.max_length = 4001


def min_over_max(modal: Remix) -> None:
    assert isinstance(modal.prompt.component, discord.ui.TextInput)
    modal.prompt.component.min_length = 300


BROKEN: dict[str, tuple[Any, str]] = {
    "title over 45": (long_title, "title"),
    "label over 45": (long_label, "label"),
    "placeholder over 100": (long_placeholder, "placeholder"),
    "max_length over 4000": (max_length_over_4000, "max_length"),
    "min_length over max_length": (min_over_max, "min_length"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
async def test_modal_over_a_limit_is_invalid(driver: FakeDiscordDriver, place: Place, tiny: TinyBot, case: str) -> None:
    """Each modal limit (title, label, placeholder, lengths) fails with 50035 naming the field."""
    breaks, named = BROKEN[case]

    async def send_broken_modal(interaction: discord.Interaction) -> None:
        modal = Remix()
        breaks(modal)
        await interaction.response.send_modal(modal)

    _, outcome = await run_probe(driver, place, tiny, send_broken_modal)
    assert isinstance(outcome.error, discord.HTTPException)
    assert (outcome.error.status, outcome.error.code) == (400, 50035)
    assert named in outcome.error.text


async def test_modal_with_six_inputs_is_invalid(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A modal holds 1-5 components: six fail with 50035 (a raw callback: discord.py stops at five)."""

    async def six_inputs(interaction: discord.Interaction) -> None:
        inputs = [
            {"type": 18, "label": f"l{n}", "component": {"type": 4, "custom_id": f"i{n}", "style": 1}} for n in range(6)
        ]
        route = discord.http.Route(
            "POST",
            "/interactions/{interaction_id}/{token}/callback",
            interaction_id=interaction.id,
            token=interaction.token,
        )
        body = {"type": 9, "data": {"custom_id": "six", "title": "Six", "components": inputs}}
        await interaction.client.http.request(route, json=body)

    _, outcome = await run_probe(driver, place, tiny, six_inputs)
    assert isinstance(outcome.error, discord.HTTPException)
    assert outcome.error.code == 50035
    assert "components" in outcome.error.text
