"""img2img for members, end to end: `/imagine image:`, the "Vary this image" message command on a member's picture
and on the bot's result (with its picker for several images), through the real bot, the fake Discord and the
emulator, whose images show the source they started from."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

from cogs.variations import PROMPT_INPUT_ID, VARY_MENU_NAME
from storage.models import TrackedJob
from storage.store import JobStore
from tests.e2e.bot.conftest import Harness, buttons, final_message, results
from tests.fakes.discord.views import InteractionView, MessageView

BLUE = (30, 40, 220)
RED = (220, 30, 30)
# The emulator's caption sits at the bottom of an image: the top strip shows the source alone.
TOP_STRIP = 0.25


def said(view: InteractionView) -> str:
    """The bot's final answer to the member, as they read it."""
    return final_message(view)["content"]


def png(colour: tuple[int, int, int], size: tuple[int, int] = (256, 256)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def top(image: Image.Image) -> Image.Image:
    return image.convert("RGB").crop((0, 0, image.width, int(image.height * TOP_STRIP)))


def difference(one: Image.Image, other: Image.Image) -> float:
    """The mean difference of two images' top strips, per channel (0: the same pixels)."""
    return sum(ImageStat.Stat(ImageChops.difference(top(one), top(other).resize(top(one).size))).mean) / 3


def shows(image: Image.Image, colour: tuple[int, int, int]) -> bool:
    return difference(image, Image.new("RGB", image.size, colour)) < 8


async def image_of(harness: Harness, message: MessageView, index: int = 1) -> Image.Image:
    data = await harness.fake.attachment_bytes(message["attachments"][index - 1]["url"])
    return Image.open(io.BytesIO(data))


async def jobs_of(harness: Harness, user_id: int) -> list[TrackedJob]:
    """The member's jobs, oldest first."""
    return list(reversed(await JobStore(harness.redis).user_recent(user_id)))


async def nth_result(harness: Harness, count: int) -> MessageView:
    """The channel's `count`-th result message, once posted."""
    messages = await harness.wait_for_messages(lambda found: len(results(found)) >= count)
    return results(messages)[count - 1]


def models_with_flux(directory: Path, harness: Harness) -> Path:
    path = directory / "models.toml"
    endpoint = harness.emulator.endpoint_id
    path.write_text(
        f'[[models]]\nname = "xl"\nendpoint_id = "{endpoint}"\npreset = "sdxl"\ndefault = true\n\n'
        f'[[models]]\nname = "flux"\nendpoint_id = "{endpoint}"\npreset = "flux"\n'
    )
    return path


async def imagine_with_image(harness: Harness, data: bytes, filename: str = "source.png", **options: object) -> str:
    """/imagine with an uploaded image; what alice reads."""
    options.setdefault("prompt", "a harbour, oil painting")
    interaction = await harness.fake.invoke_command(
        harness.channel_id, harness.alice, "imagine", options, files={"image": (filename, data)}
    )
    return said(await harness.answered(interaction))


async def test_imagine_with_an_image_starts_from_that_image(harness: Harness) -> None:
    """/imagine image: a blue picture gives a result drawn over that picture, and the job keeps its link."""
    async with harness.running():
        await imagine_with_image(harness, png(BLUE))
        result = await nth_result(harness, 1)
        assert shows(await image_of(harness, result), BLUE)
    (job,) = await jobs_of(harness, harness.alice)
    assert job.request["source_image_url"].startswith(harness.fake.http_base_url + "/cdn/attachments/")
    assert job.request["strength"] == 0.3


async def test_reroll_of_an_img2img_job_starts_from_the_same_image(harness: Harness) -> None:
    """Re-roll fetches the stored link again: the new result is drawn over the same picture, with a new seed."""
    async with harness.running():
        await imagine_with_image(harness, png(RED))
        first = await nth_result(harness, 1)
        reroll = next(custom_id for custom_id in buttons(first) if "reroll" in custom_id)
        await harness.answered(await harness.fake.click_button(first["id"], reroll, harness.alice))
        second = await nth_result(harness, 2)
        assert shows(await image_of(harness, second), RED)
    parent, child = await jobs_of(harness, harness.alice)
    assert child.request["source_image_url"] == parent.request["source_image_url"]
    assert child.request["seed"] != parent.request["seed"]


async def test_imagine_refuses_an_image_for_a_model_that_takes_none(harness: Harness, tmp_path: Path) -> None:
    """An image given to Flux is refused, naming the models that take one; nothing is sent."""
    async with harness.running(models_file=models_with_flux(tmp_path, harness)):
        text = await imagine_with_image(harness, png(BLUE), model="flux")
    assert text == (
        "That request can't be made: `image` cannot be used: flux does not start from an image. Allowed: xl."
    )
    assert harness.emulator.snapshot()["received"].get("run", 0) == 0


async def test_imagine_refuses_a_strength_without_an_image(harness: Harness) -> None:
    """A strength alone is refused, saying it needs an image."""
    async with harness.running():
        text = said(await harness.imagine(strength=0.5))
    assert (
        text
        == "That request can't be made: `strength` applies only when starting from an image. Allowed: attach an image."
    )


async def test_imagine_refuses_a_strength_out_of_range_naming_the_range(harness: Harness) -> None:
    """A strength of 1.5 is refused with the model's range."""
    async with harness.running():
        text = await imagine_with_image(harness, png(BLUE), strength=1.5)
    assert text == "That request can't be made: `strength` 1.5 is out of range. Allowed: 0–1."


async def test_imagine_refuses_a_file_that_is_not_an_image(harness: Harness) -> None:
    """A text file named .png is fetched, found not to be an image, and refused in words: nothing is sent."""
    async with harness.running():
        text = await imagine_with_image(harness, b"just some notes, not a picture", filename="notes.png")
    assert text == (
        "That request can't be made: `image` is not a PNG, JPEG, WebP or GIF image. "
        "Allowed: a PNG, JPEG, WebP or GIF image."
    )
    assert harness.emulator.snapshot()["received"].get("run", 0) == 0
    assert await jobs_of(harness, harness.alice) == []


async def test_vary_a_members_picture_asks_for_a_prompt_and_starts_from_it(harness: Harness) -> None:
    """ "Vary this image" on bob's own picture asks bob for a prompt, then draws over that picture."""
    async with harness.running():
        posted = await harness.fake.post_member_message(
            harness.channel_id, harness.bob, "my boat", [("boat.png", png(BLUE))]
        )
        menu = await harness.fake.invoke_message_command(posted["id"], harness.bob, VARY_MENU_NAME)
        modal = await harness.fake.wait_for_modal(menu["id"])
        assert modal["title"] == "Vary this image"
        submitted = await harness.fake.submit_modal(menu["id"], {PROMPT_INPUT_ID: "a boat at night"})
        assert said(await harness.answered(submitted)).startswith("Submitted")
        result = await nth_result(harness, 1)
        assert shows(await image_of(harness, result), BLUE)
    (job,) = await jobs_of(harness, harness.bob)
    assert job.request["prompt"] == "a boat at night"


async def test_vary_image_two_of_a_result_starts_from_image_two_with_its_prompt(harness: Harness) -> None:
    """On a two-image result, bob picks image 2: his new job has the result's prompt, a new seed, and draws over
    image 2, not image 1 (the path of the V2 button)."""
    async with harness.running():
        await harness.imagine(prompt="a castle on a hill", count=2)
        parent_result = await nth_result(harness, 1)
        menu = await harness.fake.invoke_message_command(parent_result["id"], harness.bob, VARY_MENU_NAME)
        picker = await harness.fake.wait_for_original(menu["id"])
        assert picker["content"] == "That message has 2 images: which one should I vary?"
        custom_id = picker["components"][0]["components"][0]["custom_id"]
        chosen = await harness.fake.select(picker["id"], custom_id, harness.bob, ["2"])
        assert said(await harness.answered(chosen)).startswith("Submitted")
        variation = await image_of(harness, await nth_result(harness, 2))
        image_one, image_two = await image_of(harness, parent_result, 1), await image_of(harness, parent_result, 2)
    assert difference(variation, image_two) < 4 < difference(variation, image_one)
    (parent,) = await jobs_of(harness, harness.alice)
    (child,) = await jobs_of(harness, harness.bob)
    assert child.request["prompt"] == "a castle on a hill"
    assert child.request["seed"] != parent.request["seed"]
    assert child.request["source_image_url"] == parent_result["attachments"][1]["url"]


async def test_vary_a_message_without_an_image_is_refused(harness: Harness) -> None:
    """ "Vary this image" on a text message says there is no image, and what is allowed."""
    async with harness.running():
        posted = await harness.fake.post_member_message(harness.channel_id, harness.bob, "no picture here")
        menu = await harness.fake.invoke_message_command(posted["id"], harness.bob, VARY_MENU_NAME)
        text = said(await harness.answered(menu))
    assert text == "That message has no image to vary. Allowed: a message with a PNG, JPEG, WebP or GIF."
