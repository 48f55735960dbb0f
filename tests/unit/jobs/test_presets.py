"""Model presets and models.toml: defaults, bounds with clear refusals, and the worker input each preset builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.presets import (
    PRESETS,
    ImageRequest,
    InvalidRequestError,
    ModelCatalog,
    ModelConfig,
    ModelsFileError,
    RequestOptions,
    clean_prompt,
    default_catalog,
    load_catalog,
    substitute_workflow,
)


def catalog() -> ModelCatalog:
    return default_catalog("ep-1")


def test_defaults_fill_every_unset_option() -> None:
    """A bare prompt gets the preset's size, steps, guidance, count and a random seed."""
    request = catalog().default.resolve(RequestOptions(prompt="a red fox"), random_seed=lambda: 1234)
    assert str(request.size) == "1024x1024"
    assert (request.steps, request.guidance, request.count, request.seed) == (25, 7.5, 1, 1234)


@pytest.mark.parametrize(
    ("options", "option", "allowed"),
    [
        ({"steps": 0}, "steps", "1–60"),
        ({"steps": 500}, "steps", "1–60"),
        ({"guidance": 99.0}, "guidance", "0–15"),
        ({"count": 3}, "count", "1–2"),
        ({"size": "333x333"}, "size", "1024x1024"),
        ({"seed": -1}, "seed", "0–4294967295"),
        ({"prompt": "   "}, "prompt", "1 to 1500 characters"),
        ({"prompt": "x" * 1501}, "prompt", "at most 1500 characters"),
    ],
)
def test_out_of_range_option_is_refused_with_the_allowed_range(
    options: dict[str, object], option: str, allowed: str
) -> None:
    """Each bad option is named, with what is allowed."""
    fields = {"prompt": "a cat", **options}
    with pytest.raises(InvalidRequestError) as caught:
        catalog().default.resolve(RequestOptions.model_validate(fields))
    assert caught.value.option == option
    assert allowed in str(caught.value)


def test_prompt_loses_control_and_invisible_characters() -> None:
    """Zero-width and control characters are removed; newlines stay."""
    assert clean_prompt("a\u200b cat\x00 on\na mat\u202e ") == "a cat on\na mat"


def test_sdxl_input_uses_diffusers_names() -> None:
    """worker-sdxl receives the diffusers-style field names."""
    model = catalog().default
    request = model.resolve(RequestOptions(prompt="p", negative_prompt="blurry", count=2, seed=5))
    assert model.build_input(request) == {
        "prompt": "p",
        "negative_prompt": "blurry",
        "width": 1024,
        "height": 1024,
        "num_inference_steps": 25,
        "guidance_scale": 7.5,
        "seed": 5,
        "num_images": 2,
    }


def test_a1111_input_uses_its_own_names() -> None:
    """A1111 workers receive steps, cfg_scale and batch_size."""
    preset = PRESETS["a1111"]
    model = default_catalog("ep").default
    request = model.resolve(RequestOptions(prompt="p", seed=1))
    payload = preset.build_input(request, {})
    assert payload["cfg_scale"] == 7.5
    assert payload["batch_size"] == 1
    assert payload["steps"] == 25


def test_workflow_placeholders_keep_their_types() -> None:
    """A whole-string placeholder takes the typed value; inside text it is replaced by text."""
    template = {"3": {"inputs": {"seed": "{{seed}}", "text": "photo of {{ prompt }}", "w": "{{width}}"}}}
    values = {"seed": 42, "prompt": "a dog", "width": 768}
    assert substitute_workflow(template, values) == {"3": {"inputs": {"seed": 42, "text": "photo of a dog", "w": 768}}}


def test_models_file_lists_models_with_narrowed_limits(tmp_path: Path) -> None:
    """models.toml names models, their endpoint and preset, and may narrow limits and defaults."""
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps({"1": {"inputs": {"text": "{{prompt}}", "seed": "{{seed}}"}}}))
    (tmp_path / "models.toml").write_text(
        """
[[models]]
name = "sdxl"
endpoint_id = "ep-sdxl"
preset = "sdxl"
limits = { max_steps = 30 }

[[models]]
name = "comfy"
endpoint_id = "ep-comfy"
preset = "comfyui"
default = true
workflow_file = "wf.json"
defaults = { steps = 20 }
"""
    )
    loaded = load_catalog(tmp_path / "models.toml", "unused")
    assert loaded.names == ["sdxl", "comfy"]
    assert loaded.default.name == "comfy"
    assert loaded.endpoint_ids == ["ep-comfy", "ep-sdxl"]
    with pytest.raises(InvalidRequestError, match="1–30"):
        loaded.get("SDXL").resolve(RequestOptions(prompt="p", steps=40))
    comfy = loaded.get("comfy")
    payload = comfy.build_input(comfy.resolve(RequestOptions(prompt="a cat", seed=9)))
    assert payload == {"workflow": {"1": {"inputs": {"text": "a cat", "seed": 9}}}}


def test_missing_models_file_means_one_default_model(tmp_path: Path) -> None:
    """Without models.toml, RUNPOD_ENDPOINT_ID serves one sdxl-style model."""
    loaded = load_catalog(tmp_path / "models.toml", "ep-env")
    assert loaded.names == ["default"]
    assert loaded.default.endpoint_id == "ep-env"


def test_unknown_model_name_lists_the_configured_ones() -> None:
    """Asking for a model that does not exist names the ones that do."""
    with pytest.raises(InvalidRequestError, match="Allowed: default"):
        catalog().get("nope")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('[[models]]\nname = "x"\nendpoint_id = "e"\npreset = "nope"\n', "unknown preset"),
        ('[[models]]\nname = "x"\nendpoint_id = "e"\npreset = "comfyui"\n', "workflow_file"),
        ("models = [", "not valid TOML"),
        ('[[models]]\nname = "x"\nendpoint_id = "e"\npreset = "sdxl"\ndefaults = { steps = 999 }\n', "steps"),
        ('[[models]]\nname = "x"\nendpoint_id = "e"\npreset = "sdxl"\nlimits = { max_count = 12 }\n', "at most 10"),
    ],
)
def test_broken_models_file_is_refused_with_the_reason(tmp_path: Path, content: str, problem: str) -> None:
    """A models.toml that cannot work stops start-up with its path and the problem."""
    path = tmp_path / "models.toml"
    path.write_text(content)
    with pytest.raises(ModelsFileError, match=problem):
        load_catalog(path, "ep")


def model(preset: str) -> ModelConfig:
    return default_catalog("ep", preset).default


def refusal(preset: str, **options: object) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        model(preset).resolve(RequestOptions.model_validate({"prompt": "p", **options}))
    return caught.value


def test_sdxl_refuses_more_images_than_worker_sdxl_renders() -> None:
    """worker-sdxl's schema allows 1 or 2 images per job (`3 > num_images > 0`); 3 is refused with that range."""
    assert str(refusal("sdxl", count=3)) == "`count` 3 is out of range. Allowed: 1–2."
    assert model("sdxl").resolve(RequestOptions(prompt="p", count=2)).count == 2


@pytest.mark.parametrize("size", ["768x768", "1024x1024"])
def test_sdxl_turbo_offers_only_512_by_512(size: str) -> None:
    """worker-sdxl-turbo requires width and height 512; any other size is refused, naming the one offered."""
    caught = refusal("sdxl-turbo", size=size)
    assert caught.option == "size"
    assert caught.allowed == "512x512"


def test_sdxl_turbo_defaults_are_the_workers() -> None:
    """worker-sdxl-turbo's defaults: 1 step, guidance 0, 512x512."""
    request = model("sdxl-turbo").resolve(RequestOptions(prompt="p"))
    assert (str(request.size), request.steps, request.guidance) == ("512x512", 1, 0.0)


@pytest.mark.parametrize("guidance", [0.0, 20.0, 25.0])
def test_sd15_guidance_must_be_strictly_between_0_and_20(guidance: float) -> None:
    """worker-stable_diffusion_v1 wants `0 < guidance_scale < 20`: both ends are refused, and the refusal says so."""
    caught = refusal("sd15", guidance=guidance)
    assert caught.option == "guidance"
    assert caught.allowed == "more than 0 and less than 20"


def test_sd15_guidance_just_inside_its_ends_is_accepted() -> None:
    """Values just inside sd15's exclusive guidance ends go through."""
    for guidance in (0.1, 19.9):
        assert model("sd15").resolve(RequestOptions(prompt="p", guidance=guidance)).guidance == guidance


def test_flux_sends_a_negative_prompt() -> None:
    """RunPod documents `negative_prompt` for its public Flux endpoints: the flux preset accepts and sends it."""
    flux = model("flux")
    payload = flux.build_input(flux.resolve(RequestOptions(prompt="p", negative_prompt="blurry")))
    assert payload["negative_prompt"] == "blurry"


def test_flux_sends_guidance_under_both_names() -> None:
    """The docs name `guidance`, the endpoint's code reads `guidance_scale`: both carry the value."""
    flux = model("flux")
    payload = flux.build_input(flux.resolve(RequestOptions(prompt="p", guidance=4.5)))
    assert (payload["guidance"], payload["guidance_scale"]) == (4.5, 4.5)


@pytest.mark.parametrize("preset", ["flux", "flux-schnell"])
def test_flux_guidance_above_10_is_refused(preset: str) -> None:
    """The public Flux endpoints document guidance 0.0–10.0."""
    assert str(refusal(preset, guidance=10.5)) == "`guidance` 10.5 is out of range. Allowed: 0–10."


def test_flux_schnell_defaults_to_4_steps_and_refuses_more_than_8() -> None:
    """Flux Schnell documents 1–8 steps (default 4): the defaults are valid and 9 steps are refused."""
    request = model("flux-schnell").resolve(RequestOptions(prompt="p"))
    assert request.steps == 4
    assert str(refusal("flux-schnell", steps=9)) == "`steps` 9 is out of range. Allowed: 1–8."


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ('preset = "sdxl"\nlimits = { max_count = 4 }', "images per job 1–4 goes beyond what worker-sdxl accepts (1–2"),
        (
            'preset = "sdxl-turbo"\nlimits = { sizes = ["768x768"] }',
            "size 768x768 is not accepted by worker-sdxl-turbo",
        ),
        ('preset = "sd15"\nlimits = { max_guidance = 25.0 }', "more than 0 and less than 20"),
        (
            'preset = "sd15"\nlimits = { sizes = ["1024x768"] }',
            "size 1024x768 is not accepted by worker-stable_diffusion_v1",
        ),
        ('preset = "flux-schnell"\nlimits = { max_steps = 28 }', "flux-schnell.mdx"),
    ],
    ids=["sdxl-count", "sdxl-turbo-size", "sd15-guidance", "sd15-size", "flux-schnell-steps"],
)
def test_models_file_cannot_reach_past_the_workers_limits(tmp_path: Path, limits: str, problem: str) -> None:
    """models.toml may change a preset's limits, but not beyond the worker's: start-up names the limit and source."""
    path = tmp_path / "models.toml"
    path.write_text(f'[[models]]\nname = "x"\nendpoint_id = "e"\n{limits}\n')
    with pytest.raises(ModelsFileError) as caught:
        load_catalog(path, "ep")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("preset", "scope"),
    [("sdxl", "batch"), ("sdxl-turbo", "batch"), ("sd15", "batch"), ("flux", "batch"), ("a1111", "image")],
)
def test_stored_request_says_how_the_worker_seeds_a_batch(preset: str, scope: str) -> None:
    """One seed renders a diffusers worker's whole batch; A1111 gives each image its own seed."""
    assert model(preset).resolve(RequestOptions(prompt="p", seed=1)).as_dict()["seed_scope"] == scope


def test_a_stored_request_asks_for_the_same_images_again() -> None:
    """A job's stored request, turned back into options, resolves to the same request (Retry), or a new seed."""
    sdxl = catalog().default
    asked = RequestOptions(prompt="a fox", negative_prompt="blur", size="832x1216", steps=20, guidance=5.5, count=2)
    first = sdxl.resolve(asked, random_seed=lambda: 7)
    stored = ImageRequest.from_dict(first.as_dict())
    assert sdxl.resolve(stored.as_options(keep_seed=True)) == first
    assert sdxl.resolve(stored.as_options(keep_seed=False), random_seed=lambda: 8).seed == 8
