"""Components V2 messages (IS_COMPONENTS_V2) as the fake accepts, refuses, stores and shows them."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

import discord
import discord.http
import pytest

from tests.e2e.fakes.conftest import Place, png, run_probe
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import FakeDiscordDriver
from tests.fakes.discord.present import render_message

V2 = 1 << 15


def text_channel(bot: TinyBot, place: Place) -> discord.TextChannel:
    channel = bot.get_channel(place.channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


class Gallery(discord.ui.LayoutView):
    """A result card: a container with a title, a gallery of two uploads and a row of buttons."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        gallery: discord.ui.MediaGallery[Gallery] = discord.ui.MediaGallery()
        gallery.add_item(media="attachment://one.png")
        gallery.add_item(media="attachment://two.png", description="the second")
        row: discord.ui.ActionRow[Gallery] = discord.ui.ActionRow()
        row.add_item(discord.ui.Button(label="Upscale 1", custom_id="upscale:1"))
        row.add_item(discord.ui.Button(label="Remix", custom_id="remix", disabled=True))
        self.add_item(discord.ui.Container(discord.ui.TextDisplay("**a red fox**"), gallery, row))


def gallery_files() -> list[discord.File]:
    return [
        discord.File(io.BytesIO(png("red", (8, 6))), "one.png"),
        discord.File(io.BytesIO(png("blue", (4, 4))), "two.png"),
    ]


async def test_layout_view_message_is_stored_and_rendered(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """discord.py's LayoutView with a container, text, a gallery of uploads and buttons is shown as sent."""
    sent = await text_channel(tiny, place).send(view=Gallery(), files=gallery_files())
    message = await driver.message(sent.id)
    assert message["flags"] & V2
    assert render_message(message) == "\n".join(
        [
            "container:",
            "  **a red fox**",
            "  gallery: one.png (8x6) | two.png (4x4)",
            "  [Upscale 1] [Remix (disabled)]",
        ]
    )
    gallery = message["components"][0]["components"][1]
    assert await driver.attachment_bytes(gallery["items"][1]["media"]["url"]) == png("blue", (4, 4))


async def test_discord_py_reads_back_the_v2_components(place: Place, tiny: TinyBot) -> None:
    """The stored message parses in discord.py as the same layout, media pointing at the uploaded files."""
    sent = await text_channel(tiny, place).send(view=Gallery(), files=gallery_files())
    fetched = await text_channel(tiny, place).fetch_message(sent.id)
    (container,) = fetched.components
    assert isinstance(container, discord.components.Container)
    gallery = container.children[1]
    assert isinstance(gallery, discord.components.MediaGalleryComponent)
    assert [item.media.url for item in gallery.items] == [a.url for a in fetched.attachments]


def row(*children: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(children)}


def button(custom_id: str) -> dict[str, Any]:
    return {"type": 2, "style": 1, "label": custom_id[:80], "custom_id": custom_id}


def text(content: str) -> dict[str, Any]:
    return {"type": 10, "content": content}


def gallery(count: int, name: str = "https://example.com/a.png") -> dict[str, Any]:
    return {"type": 12, "items": [{"media": {"url": name}} for _ in range(count)]}


SELECT = {"type": 3, "custom_id": "size", "options": [{"label": "512", "value": "512"}]}

BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "content": ({"content": "hello", "components": [text("x")]}, "content"),
    "embeds": ({"embeds": [{"title": "t"}], "components": [text("x")]}, "embeds"),
    "stickers": ({"sticker_ids": ["1"], "components": [text("x")]}, "sticker_ids"),
    "poll": ({"poll": {"question": {"text": "?"}}, "components": [text("x")]}, "poll"),
    "41 components": ({"components": [{"type": 17, "components": [text(str(n)) for n in range(40)]}]}, "40"),
    "4001 characters": ({"components": [text("x" * 2000), text("y" * 2001)]}, "4000"),
    "empty gallery": ({"components": [gallery(0)]}, "items"),
    "11 gallery items": ({"components": [gallery(11)]}, "items"),
    "unknown attachment": ({"components": [gallery(1, "attachment://missing.png")]}, "missing.png"),
    "6 buttons in a row": ({"components": [row(*(button(f"b{n}") for n in range(6)))]}, "components"),
    "button and select": ({"components": [row(button("b"), SELECT)]}, "single select"),
    "long custom_id": ({"components": [row(button("c" * 101))]}, "custom_id"),
    "duplicate custom_id": (
        {"components": [row(button("same")), {"type": 17, "components": [row(button("same"))]}]},
        "duplicated",
    ),
    "thumbnail at the top": ({"components": [{"type": 11, "media": {"url": "https://example.com/a.png"}}]}, "type"),
    "text input in a message": ({"components": [row({"type": 4, "custom_id": "t", "style": 1})]}, "type"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
async def test_v2_message_over_a_limit_is_invalid(place: Place, tiny: TinyBot, case: str) -> None:
    """Each Components V2 rule refused with 50035, naming the field (raw requests: discord.py checks some first)."""
    payload, named = BROKEN[case]
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=place.channel_id)
    with pytest.raises(discord.HTTPException) as caught:
        await tiny.http.request(route, json=payload | {"flags": V2})
    assert (caught.value.status, caught.value.code) == (400, 50035)
    assert named in caught.value.text


async def test_v2_components_without_the_flag_are_invalid(place: Place, tiny: TinyBot) -> None:
    """A text display sent without IS_COMPONENTS_V2 is refused: legacy messages hold only action rows."""
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=place.channel_id)
    with pytest.raises(discord.HTTPException) as caught:
        await tiny.http.request(route, json={"components": [text("hello")]})
    assert caught.value.code == 50035


async def test_v2_flag_cannot_be_removed_by_an_edit(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """An edit that drops IS_COMPONENTS_V2 fails with 50035 on `flags` and leaves the message as it was."""
    sent = await text_channel(tiny, place).send(view=Gallery(), files=gallery_files())
    route = discord.http.Route(
        "PATCH", "/channels/{channel_id}/messages/{message_id}", channel_id=place.channel_id, message_id=sent.id
    )
    with pytest.raises(discord.HTTPException) as caught:
        await tiny.http.request(route, json={"flags": 0, "components": []})
    assert caught.value.code == 50035
    assert "flags" in caught.value.text
    assert (await driver.message(sent.id))["flags"] & V2


async def test_content_cannot_be_added_to_a_v2_message(place: Place, tiny: TinyBot) -> None:
    """Editing content into a V2 message fails with 50035 on `content`."""
    sent = await text_channel(tiny, place).send(view=Gallery(), files=gallery_files())
    with pytest.raises(discord.HTTPException) as caught:
        await sent.edit(content="now with text")
    assert caught.value.code == 50035
    assert "content" in caught.value.text


def card(label: str) -> discord.ui.LayoutView:
    view = discord.ui.LayoutView()
    view.add_item(discord.ui.TextDisplay(label))
    return view


async def respond(interaction: discord.Interaction) -> object:
    await interaction.response.send_message(view=card("answered"))
    return None


async def follow_up(interaction: discord.Interaction) -> object:
    await interaction.response.defer(thinking=True)
    await interaction.followup.send(view=card("answered"))
    return None


async def edit_original(interaction: discord.Interaction) -> object:
    await interaction.response.send_message(view=card("first"))
    await interaction.edit_original_response(view=card("answered"))
    return None


@pytest.mark.parametrize("answer", [respond, follow_up, edit_original], ids=["response", "followup", "webhook-edit"])
async def test_interaction_routes_carry_v2_messages(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot, answer: Callable[[discord.Interaction], Awaitable[object]]
) -> None:
    """An interaction response, a followup and an edit of the original all take a LayoutView."""
    interaction, outcome = await run_probe(driver, place, tiny, answer)
    assert outcome.error is None
    original = await driver.wait_for_original(interaction["id"], lambda m: "answered" in render_message(m))
    assert original["flags"] & V2
    assert render_message(original) == "answered"


class NestedButton(discord.ui.LayoutView):
    """A button as the accessory of a section inside a container; clicking it edits the card."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.clicked: list[discord.Interaction] = []
        upscale: discord.ui.Button[NestedButton] = discord.ui.Button(label="Upscale", custom_id="nested:upscale")
        upscale.callback = self.upscale  # type: ignore[method-assign]
        section = discord.ui.Section(discord.ui.TextDisplay("image 1"), accessory=upscale)
        self.add_item(discord.ui.Container(section))

    async def upscale(self, interaction: discord.Interaction) -> None:
        self.clicked.append(interaction)
        await interaction.response.edit_message(view=card("upscaling image 1"))


async def test_button_nested_in_a_container_runs_its_callback(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Clicking a section's button inside a container runs its callback with the V2 message attached."""
    view = NestedButton()
    sent = await text_channel(tiny, place).send(view=view)
    assert render_message(await driver.message(sent.id)) == "container:\n  image 1\n  -> [Upscale]"
    await driver.click_button(sent.id, "nested:upscale", place.member_id)
    edited = await driver.wait_for_message(sent.id, lambda m: "upscaling" in render_message(m))
    assert render_message(edited) == "upscaling image 1"
    (clicked,) = view.clicked
    assert clicked.message is not None
    assert clicked.message.flags.components_v2


async def test_legacy_message_renders_content_embeds_files_and_buttons(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """render_message shows a legacy message as its text, embed titles, filenames and action rows."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Cancel", custom_id="cancel"))
    view.add_item(discord.ui.Button(label="Docs", url="https://example.com/docs"))
    sent = await text_channel(tiny, place).send(
        "job done", embed=discord.Embed(title="a red fox"), file=gallery_files()[0], view=view
    )
    assert render_message(await driver.message(sent.id)) == "\n".join(
        ["job done", "embed: a red fox", "files: one.png", "[Cancel] [Docs](https://example.com/docs)"]
    )


class Mentions(discord.ui.LayoutView):
    """A text display that names a member."""

    def __init__(self, member_id: int) -> None:
        super().__init__(timeout=None)
        self.add_item(discord.ui.TextDisplay(f"<@{member_id}> your images @everyone"))


@pytest.mark.parametrize(
    ("allowed", "pinged"),
    [(discord.AllowedMentions.none(), False), (discord.AllowedMentions(everyone=False, users=True), True)],
)
async def test_mentions_in_a_text_display_notify_as_allowed_mentions_say(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot, allowed: discord.AllowedMentions, pinged: bool
) -> None:
    """A V2 message's text displays ping like content does, under the message's allowed_mentions."""
    sent = await text_channel(tiny, place).send(view=Mentions(place.member_id), allowed_mentions=allowed)
    message = await driver.message(sent.id)
    assert message["pings"]["users"] == ([place.member_id] if pinged else [])
    assert message["pings"]["everyone"] is False
