"""A server's settings resolved under the operator's caps, the checks a change must pass, and the default negative
prompt on a request (pure: no Redis)."""

from __future__ import annotations

import pytest

from jobs.presets import (
    ImageRequest,
    InvalidRequestError,
    ModelCatalog,
    ModelEntry,
    RequestOptions,
    build_model,
)
from jobs.server_settings import (
    ServerSettings,
    SettingRefusedError,
    check_cooldown,
    check_jobs_limit,
    negative_limit,
    resolve,
)
from storage.store import Limits

CAPS = Limits(user_active=3, guild_active=20, cooldown_ms=5_000)


def catalog(*names: str, default: str | None = None, negative_max: int | None = None) -> ModelCatalog:
    """Drawing models (sdxl) by these names, and an upscaler."""
    limits = {"negative_max": negative_max} if negative_max is not None else {}
    entries = [
        ModelEntry.model_validate({"name": name, "preset": "sdxl", "endpoint_id": "ep", "limits": limits})
        for name in names
    ]
    entries.append(
        ModelEntry.model_validate(
            {"name": "big", "preset": "esrgan", "endpoint_id": "ep", "task": "upscale", "scale": 2}
        )
    )
    return ModelCatalog(tuple(build_model(entry) for entry in entries), default or names[0])


MODELS = catalog("xl", "flux", "turbo")


def test_no_choice_gives_the_operators_rules() -> None:
    """A server that chose nothing offers every drawing model, the bot's default, and the operator's limits."""
    rules = resolve(ServerSettings(), CAPS, MODELS, 1)
    assert (rules.default_model, rules.allowed_models, rules.restricted) == ("xl", ("xl", "flux", "turbo"), False)
    assert (rules.member_jobs, rules.server_jobs, rules.cooldown_s) == (3, 20, 5)
    assert rules.limits == Limits(user_active=3, guild_active=20, cooldown_ms=5_000)
    assert rules.notes == ()


def test_stricter_server_limits_apply() -> None:
    """Limits under the caps, and a longer cooldown, are what admission checks."""
    settings = ServerSettings(member_active_jobs=1, server_active_jobs=4, cooldown_s=30)
    rules = resolve(settings, CAPS, MODELS, 1)
    assert (rules.member_jobs, rules.server_jobs, rules.cooldown_s) == (1, 4, 30)
    assert (rules.limits.member_active, rules.limits.member_cooldown_ms) == (1, 30_000)
    # The operator's own limits still hold everywhere.
    assert (rules.limits.user_active, rules.limits.cooldown_ms) == (3, 5_000)


def test_a_cap_lowered_below_the_servers_choice_wins_and_says_so() -> None:
    """Values the operator's caps no longer allow give way to the caps, with a note for each."""
    settings = ServerSettings(member_active_jobs=5, server_active_jobs=50, cooldown_s=2)
    rules = resolve(settings, CAPS, MODELS, 1)
    assert (rules.member_jobs, rules.server_jobs, rules.cooldown_s) == (3, 20, 5)
    assert (rules.limits.member_active, rules.limits.member_cooldown_ms) == (0, 0)
    assert len(rules.notes) == 3
    assert "above the bot's cap of 3, so 3 applies" in rules.notes[0]
    assert "shorter than the bot's 5 s, so 5 s applies" in rules.notes[2]


def test_without_operator_caps_the_servers_limits_apply() -> None:
    """A cap of 0 (none): the server's own limit is the only one."""
    rules = resolve(ServerSettings(member_active_jobs=7, server_active_jobs=9), Limits(), MODELS, 1)
    assert (rules.member_jobs, rules.server_jobs) == (7, 9)


def test_a_default_model_the_operator_removed_falls_back_with_a_note() -> None:
    """A default model no longer configured gives way to the bot's default, and the note says which."""
    rules = resolve(ServerSettings(default_model="gone"), CAPS, MODELS, 1)
    assert rules.default_model == "xl"
    assert rules.notes == ("The default model gone is no longer offered by the bot: xl is.",)


def test_the_default_is_the_first_offered_when_the_bots_is_not_offered() -> None:
    """A server that does not offer the bot's default model defaults to the first model it offers."""
    rules = resolve(ServerSettings(allowed_models=("turbo", "flux")), CAPS, MODELS, 1)
    assert (rules.default_model, rules.allowed_models, rules.restricted) == ("flux", ("flux", "turbo"), True)


def test_when_no_chosen_model_is_configured_any_more_every_model_is_offered() -> None:
    """A server left with none of its models offers all of the bot's, rather than none, and is told."""
    rules = resolve(ServerSettings(allowed_models=("gone",)), CAPS, MODELS, 1)
    assert rules.allowed_models == ("xl", "flux", "turbo")
    assert "every model is offered" in rules.notes[0]


def test_an_unreadable_stored_value_is_ignored() -> None:
    """A damaged field falls back to the bot's setting; the others are read."""
    settings = ServerSettings.parse(
        {"member_active_jobs": "many", "cooldown_s": "nan", "allowed_models": "{", "negative_prompt": "blurry"}
    )
    assert settings == ServerSettings(negative_prompt="blurry")


def test_a_model_the_server_does_not_offer_is_refused_with_those_it_does() -> None:
    """The refusal names the model and lists the server's models; upscalers are the operator's and pass."""
    rules = resolve(ServerSettings(allowed_models=("xl",)), CAPS, MODELS, 1)
    with pytest.raises(InvalidRequestError, match=r"`model` flux is not offered on this server\. Allowed: xl\."):
        rules.check_model(MODELS.get("flux"))
    rules.check_model(MODELS.get("big"))


@pytest.mark.parametrize(
    ("value", "cap", "message"),
    [
        (4, 3, "Active jobs per member: 4 is above the bot's cap of 3. Allowed: 1 to 3."),
        (0, 3, "Active jobs per member can't be 0. Allowed: 1 to 3."),
        (1001, 0, "Active jobs per member: 1001 is more than this bot takes. Allowed: 1 to 1000."),
    ],
)
def test_a_jobs_limit_outside_the_allowed_range_is_refused(value: int, cap: int, message: str) -> None:
    """Each refusal names the value, the cap and the range allowed."""
    with pytest.raises(SettingRefusedError) as refused:
        check_jobs_limit(value, cap, "Active jobs per member")
    assert str(refused.value) == message


def test_a_cooldown_below_the_operators_or_over_a_day_is_refused() -> None:
    """A server's cooldown lies between the bot's and a day."""
    with pytest.raises(SettingRefusedError, match=r"shorter than the bot's cooldown of 5 s\. Allowed: 5 to 86400"):
        check_cooldown(4.5, 5_000)
    with pytest.raises(SettingRefusedError, match="longer than a day"):
        check_cooldown(86_401, 5_000)
    check_cooldown(5, 5_000)


def test_the_default_negative_prompt_fits_the_tightest_model() -> None:
    """It may take at most half of the smallest negative-prompt limit among the drawing models."""
    assert negative_limit(MODELS) == 500
    assert negative_limit(catalog("small", negative_max=300)) == 150


def test_the_servers_negative_prompt_is_added_once_and_taken_off_for_a_new_request() -> None:
    """Added after the member's own; asking again (Re-roll) starts from the member's own only."""
    model = MODELS.get("xl")
    rules = resolve(ServerSettings(negative_prompt="blurry"), CAPS, MODELS, 1)
    request = rules.apply_negative(model, model.resolve(RequestOptions(prompt="a kite", negative_prompt="text")))
    assert (request.negative_prompt, request.own_negative) == ("text, blurry", "text")
    stored = ImageRequest.from_dict(request.as_dict())
    again = rules.apply_negative(model, model.resolve(stored.as_options(keep_seed=False)))
    assert again.negative_prompt == "text, blurry"


def test_a_negative_prompt_that_leaves_no_room_for_the_servers_is_refused() -> None:
    """The member's negative prompt plus the server's may not pass the model's limit: the refusal says how much
    room is left."""
    small = catalog("small", negative_max=20)
    model = small.get("small")
    rules = resolve(ServerSettings(negative_prompt="blurry, ugly"), CAPS, small, 1)
    with pytest.raises(InvalidRequestError, match="at most 6 characters on this server with small"):
        rules.apply_negative(model, model.resolve(RequestOptions(prompt="x", negative_prompt="watermark")))
