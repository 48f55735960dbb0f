"""Model presets and models.toml: defaults, bounds with clear refusals, and the worker input each preset builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.presets import (
    PRESETS,
    InvalidRequestError,
    ModelCatalog,
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
        ({"count": 5}, "count", "1–4"),
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
