"""The member's language end to end: German replies for a German member, German cards and results in a German server,
German descriptions in the commands the bot registers; command names stay English."""

from __future__ import annotations

from tests.e2e.bot.conftest import Harness, answer_text, dm_results, final_message, is_ephemeral, job_of, shown
from tests.fakes.discord.views import MessageView
from tests.waiting import wait_until

GERMAN = "de"


async def test_a_german_member_reads_a_refusal_in_german(harness: Harness) -> None:
    """A member whose Discord speaks German is told in German what was wrong and what is allowed."""
    async with harness.running():
        interaction = await harness.fake.invoke_command(
            harness.channel_id, harness.alice, "imagine", {"prompt": "ein Leuchtturm", "steps": 500}, locale=GERMAN
        )
        answer = await harness.answered(interaction)
    assert is_ephemeral(answer)
    assert "Diese Anfrage ist nicht möglich: `steps` 500 liegt außerhalb des Bereichs. Erlaubt: 1–60." in answer_text(
        answer
    )
    assert harness.emulator.counters.request_count("run") == 0


async def test_a_german_member_in_an_english_server_gets_a_german_answer_and_an_english_card(harness: Harness) -> None:
    """The answer only the member sees speaks their language; the card everyone sees speaks the server's."""
    async with harness.running():
        interaction = await harness.fake.invoke_command(
            harness.channel_id, harness.alice, "imagine", {"prompt": "ein Leuchtturm"}, locale=GERMAN
        )
        answer = await harness.answered(interaction)
        messages = await harness.fake.channel_messages(harness.channel_id, include_deleted=True)
    assert answer_text(answer).startswith("Eingereicht — https://discord.com/channels/")
    card = next(message for message in messages if message["embeds"])
    assert card["history"][0]["embeds"][0]["title"] == "Submitting…"


def _embed_titles(message: MessageView) -> list[str]:
    return [str(version["embeds"][0]["title"]) for version in message["history"] if version["embeds"]]


async def test_a_german_servers_card_and_result_speak_german(harness: Harness) -> None:
    """In a server whose language is German, the card, the result and its buttons are German, whoever asked."""
    guild = await harness.fake.create_guild("Kunstverein", locale=GERMAN)
    channel = await harness.fake.create_channel(guild["id"], "allgemein")
    member = await harness.fake.create_member(guild["id"], "erika")
    async with harness.running():
        interaction = await harness.fake.invoke_command(
            channel["id"], member["user_id"], "imagine", {"prompt": "ein Leuchtturm", "seed": 42}, locale="en-US"
        )
        answer = await harness.answered(interaction)
        found: list[MessageView] = []

        async def result_posted() -> bool:
            nonlocal found
            found = await harness.fake.channel_messages(channel["id"], include_deleted=True)
            return any(message["attachments"] for message in found)

        await wait_until(result_posted, timeout_s=20)
    assert answer_text(answer).startswith("Submitted — ")
    card = next(message for message in found if message["embeds"])
    titles = _embed_titles(card)
    assert titles[0] == "Wird eingereicht …"
    first_fields = [field["name"] for field in card["history"][0]["embeds"][0]["fields"]]
    assert first_fields[:6] == ["Modell", "Größe", "Schritte", "Seed", "Bilder", "Angefordert von"]
    result = next(message for message in found if message["attachments"])
    text = shown(result)
    assert "Schritte" in text
    assert "Seed 42" in text
    for label in ("Neu würfeln", "Remix", "Info", "Löschen"):
        assert label in text
    jid = card["history"][0]["embeds"][0]["footer"]["text"].rsplit(" ", 1)[1]
    job = await harness.redis_jobs(jid)
    assert (job.extra["guild_locale"], job.extra["locale"]) == ("de", "en")


async def test_registered_commands_carry_german_descriptions_and_english_names(harness: Harness) -> None:
    """The synced commands have German descriptions for Discord's `de` locale, and no localized names."""
    async with harness.running():
        commands = {command["name"]: command for command in await harness.fake.commands()}
    imagine = commands["imagine"]
    assert imagine["description"] == "Generate images from a prompt"
    assert (imagine["description_localizations"] or {})["de"] == "Bilder aus einem Prompt erzeugen"
    assert imagine["name_localizations"] in (None, {})
    prompt = next(option for option in imagine["options"] if option["name"] == "prompt")
    assert prompt["description_localizations"]["de"] == "Was gezeichnet werden soll"
    settings = commands["settings"]
    assert (settings["description_localizations"] or {})["de"] == (
        "Die Einstellungen dieses Servers für Bildaufträge (Moderatoren)"
    )
    reset = next(option for option in settings["options"] if option["name"] == "reset")
    (setting,) = reset["options"]
    everything = next(choice for choice in setting["choices"] if choice["name"] == "everything")
    assert everything["name_localizations"]["de"] == "alles"


async def test_a_result_the_channel_refused_reaches_a_german_member_by_dm_in_german(harness: Harness) -> None:
    """Where the channel refuses the result, it goes to its member by DM, in the member's language."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running():
        interaction = await harness.fake.invoke_command(
            harness.channel_id, harness.alice, "imagine", {"prompt": "ein Leuchtturm"}, locale=GERMAN
        )
        await harness.answered(interaction)
        await harness.fake.inject_error(
            status=403,
            code=50013,
            message="Missing Permissions",
            method="POST",
            path=r"/channels/\d+/messages$",
            count=1,
        )
        harness.emulator.update_scenario(workers=2)
        (result,) = await dm_results(harness, harness.alice)
    text = shown(result)
    assert "Schritte" in text
    assert "Neu würfeln" in text


async def test_a_german_members_own_install_shows_card_and_dm_result_in_german(harness: Harness) -> None:
    """Through a member's own install in an English server without the bot, the card only they see and the images
    sent to their DM speak the member's German, not the server's English."""
    guild = await harness.fake.create_guild("No Bot Club", owner_id=harness.alice, bot_installed=False)
    channel = await harness.fake.create_channel(guild["id"], "lounge")
    await harness.fake.install_app(harness.alice)
    async with harness.running():
        interaction = await harness.fake.invoke_command(
            channel["id"], harness.alice, "imagine", {"prompt": "ein Leuchtturm"}, locale=GERMAN
        )
        answer = await harness.answered(interaction)
        (result,) = await dm_results(harness, harness.alice)
        card = final_message(await harness.fake.interaction(answer["id"]))
    assert "per Direktnachricht" in answer_text(answer)
    assert card["embeds"][0]["fields"][0]["name"] == "Modell"
    text = shown(result)
    assert "Schritte" in text
    assert "Neu würfeln" in text


async def test_a_german_members_private_image_on_its_own_speaks_german_in_the_dm(harness: Harness) -> None:
    """U1 on a German member's private result in an English server posts the image in the DM with a German heading."""
    async with harness.running():
        interaction = await harness.fake.invoke_command(
            harness.channel_id, harness.alice, "imagine", {"prompt": "ein Leuchtturm", "private": True}, locale=GERMAN
        )
        await harness.answered(interaction)
        (gallery,) = await dm_results(harness, harness.alice)
        clicked = await harness.fake.click_button(gallery["id"], f"job:u1:{job_of(gallery)}", harness.alice)
        await harness.answered(clicked)
        image = (await dm_results(harness, harness.alice, 2))[1]
    assert shown(image).startswith("Bild 1 von **ein Leuchtturm**")
