"""Upscalers in models.toml: a `[[models]]` entry with `task = "upscale"` and its `scale`, the refusals an operator
reads at start-up, and how an upscaler stays out of what draws."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.presets import InvalidRequestError, ModelCatalog, ModelsFileError, RequestOptions, load_catalog

UPSCALE_WORKFLOW = {
    "10": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
    "11": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
    "12": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["11", 0], "image": ["10", 0]}},
}
SCALED_WORKFLOW = {
    **UPSCALE_WORKFLOW,
    "13": {"class_type": "ImageScaleBy", "inputs": {"image": ["12", 0], "scale_by": "{{scale}}"}},
}
TXT2IMG_WORKFLOW = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}} {{scale}}"}}}
NO_IMAGE_WORKFLOW = {"12": {"class_type": "ImageUpscaleWithModel", "inputs": {}}}
DRAWS = '[[models]]\nname = "xl"\nendpoint_id = "ep-xl"\npreset = "sdxl"\n'


def catalog_of(tmp_path: Path, *tables: str) -> ModelCatalog:
    for name, workflow in (
        ("upscale.json", UPSCALE_WORKFLOW),
        ("scaled.json", SCALED_WORKFLOW),
        ("txt2img.json", TXT2IMG_WORKFLOW),
        ("no-image.json", NO_IMAGE_WORKFLOW),
    ):
        (tmp_path / name).write_text(json.dumps(workflow))
    path = tmp_path / "models.toml"
    path.write_text("\n".join(tables))
    return load_catalog(path, "unused")


def upscaler(name: str, preset: str, scale: float | None, *lines: str) -> str:
    scale_line = f"scale = {scale}" if scale is not None else ""
    return (
        f'[[models]]\nname = "{name}"\nendpoint_id = "ep-{name}"\npreset = "{preset}"\ntask = "upscale"\n'
        f"{scale_line}\n" + "\n".join(lines) + "\n"
    )


def refusal(tmp_path: Path, *tables: str) -> str:
    with pytest.raises(ModelsFileError) as caught:
        catalog_of(tmp_path, *tables)
    return str(caught.value)


def test_an_upscaler_is_a_model_with_task_upscale_and_its_factor(tmp_path: Path) -> None:
    """worker-esrgan at 2x and a ComfyUI workflow at 4x load as upscalers, listed apart from the models that draw."""
    catalog = catalog_of(
        tmp_path,
        DRAWS,
        upscaler("esrgan-2x", "esrgan", 2),
        upscaler("ultrasharp", "comfyui", 4, 'workflow_file = "upscale.json"'),
    )
    assert [(model.name, model.scale) for model in catalog.upscalers] == [("esrgan-2x", 2), ("ultrasharp", 4)]
    assert catalog.drawing_names == ["xl"]
    assert catalog.default.name == "xl"


def test_upscalers_are_not_offered_as_models_that_start_from_an_image(tmp_path: Path) -> None:
    """An upscaler's workflow loads an image, but Vary and /imagine's image never use it: it draws nothing."""
    catalog = catalog_of(tmp_path, DRAWS, upscaler("ultrasharp", "comfyui", 4, 'workflow_file = "upscale.json"'))
    assert catalog.image_models == ["xl"]
    assert catalog.get("ultrasharp").image_input is None


def test_imagine_with_an_upscaler_is_refused_naming_what_it_does(tmp_path: Path) -> None:
    """Asking an upscaler to draw from a prompt is refused in words a member reads."""
    catalog = catalog_of(tmp_path, DRAWS, upscaler("esrgan-2x", "esrgan", 2))
    with pytest.raises(InvalidRequestError, match="esrgan-2x upscales a finished image"):
        catalog.get("esrgan-2x").resolve(RequestOptions(prompt="a fox"))


def test_an_upscaler_needs_its_scale(tmp_path: Path) -> None:
    """An upscaler without `scale` stops start-up, saying what to add."""
    assert "needs `scale`, the factor it enlarges by" in refusal(tmp_path, DRAWS, upscaler("up", "esrgan", None))


def test_a_scale_past_the_workers_or_the_bots_bounds_stops_start_up(tmp_path: Path) -> None:
    """Factors of 1 or less, or above 8, are refused with the range allowed and the worker's rule."""
    for scale in (1, 0.5, 9):
        message = refusal(tmp_path, DRAWS, upscaler("up", "esrgan", scale))
        assert f"scale {scale:g} is out of range (allowed: more than 1 and at most 8;" in message
        assert "worker-esrgan@5e5d6a0 src/rp_schemas.py: scale 0 < scale < 16" in message


def test_a_preset_that_cannot_take_an_image_cannot_upscale(tmp_path: Path) -> None:
    """`task = "upscale"` on a preset whose worker takes no image is refused, naming the presets that can."""
    message = refusal(tmp_path, DRAWS, upscaler("up", "flux", 2))
    assert "preset flux cannot upscale an image; upscalers use one of: comfyui, esrgan" in message


def test_an_upscaler_workflow_must_load_the_image(tmp_path: Path) -> None:
    """A ComfyUI upscaler whose workflow has no `{{image}}` cannot be given the image, and stops start-up."""
    message = refusal(tmp_path, DRAWS, upscaler("up", "comfyui", 4, 'workflow_file = "no-image.json"'))
    assert "an upscaler's workflow needs {{image}} in its LoadImage node" in message


def test_esrgan_only_upscales(tmp_path: Path) -> None:
    """worker-esrgan without `task = "upscale"` is refused: it cannot draw from a prompt."""
    table = '[[models]]\nname = "up"\nendpoint_id = "ep"\npreset = "esrgan"\n'
    assert 'preset esrgan only upscales images; add task = "upscale" and a scale' in refusal(tmp_path, DRAWS, table)


def test_scale_without_upscale_is_refused(tmp_path: Path) -> None:
    """`scale` on a model that draws, or `{{scale}}` in its workflow, is refused: only an upscaler has a factor."""
    assert "scale applies only to an upscaler" in refusal(tmp_path, DRAWS + "scale = 2\n")
    table = '[[models]]\nname = "c"\nendpoint_id = "ep"\npreset = "comfyui"\nworkflow_file = "txt2img.json"\n'
    assert "{{scale}}, which only an upscaler fills" in refusal(tmp_path, DRAWS, table)


def test_an_upscaler_cannot_be_the_default_and_one_model_must_draw(tmp_path: Path) -> None:
    """/imagine draws with the default model, so an upscaler cannot be it, and upscalers alone are refused."""
    assert "cannot be the default" in refusal(tmp_path, DRAWS, upscaler("up", "esrgan", 2, "default = true"))
    assert "every model is an upscaler" in refusal(tmp_path, upscaler("up", "esrgan", 2))


def test_an_upscalers_stored_request_resolves_to_an_upscale(tmp_path: Path) -> None:
    """An upscale job's request asked again (Retry) resolves to the same image at the upscaler's factor."""
    catalog = catalog_of(tmp_path, DRAWS, upscaler("esrgan-2x", "esrgan", 2))
    source = "https://cdn.discordapp.com/attachments/1/2/fox.png"
    options = RequestOptions(prompt="a fox", size="2048x2048", seed=7, source_image_url=source)
    request = catalog.get("esrgan-2x").resolve(options)
    assert (request.source and request.source.url, request.scale, request.count, request.seed) == (source, 2, 1, 7)
