"""Every preset's input against its real worker's schema, checked by RunPod's own validator, at defaults and edges.

The schemas are in tests/data/worker_schemas (copied from the workers, or written from their docs where they have
none). RunPod's `rp_validator` checks names, types and required fields, but skips a field's `constraints` whenever its
value has the type of the field's default, so each constraint is also evaluated here, as the worker states it.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from jobs.presets import (
    PRESETS,
    ImageRequest,
    InvalidRequestError,
    ModelConfig,
    ModelEntry,
    Range,
    RequestOptions,
    Size,
    SourceImage,
    WorkerLimit,
    build_model,
)
from tests.data.worker_schemas import (
    public_flux,
    worker_a1111,
    worker_comfyui,
    worker_esrgan,
    worker_sdxl,
    worker_sdxl_turbo,
    worker_stable_diffusion_v1,
)
from tests.worker_sdk import runpod_package_dir

Schema = dict[str, Any]
Validate = Callable[[dict[str, Any], Schema], dict[str, Any]]

SCHEMAS: dict[str, Schema] = {
    "sdxl": worker_sdxl.INPUT_SCHEMA,
    "sdxl-turbo": worker_sdxl_turbo.INPUT_SCHEMA,
    "sd15": worker_stable_diffusion_v1.INPUT_SCHEMA,
    "flux": public_flux.FLUX_DEV_SCHEMA,
    "flux-schnell": public_flux.FLUX_SCHNELL_SCHEMA,
    "a1111": worker_a1111.INPUT_SCHEMA,
    "comfyui": worker_comfyui.INPUT_SCHEMA,
    "esrgan": worker_esrgan.INPUT_SCHEMA,
}
# The worker's input names for the bot's steps, guidance and count (None: the worker has no such input).
InputNames = dict[str, tuple[str, ...]]
DIFFUSERS: InputNames = {"steps": ("num_inference_steps",), "guidance": ("guidance_scale",), "count": ("num_images",)}
FLUX: InputNames = {"steps": ("num_inference_steps",), "guidance": ("guidance", "guidance_scale"), "count": ()}
INPUT_NAMES: dict[str, InputNames] = {
    "sdxl": DIFFUSERS,
    "sdxl-turbo": DIFFUSERS,
    "sd15": {**DIFFUSERS, "count": ("num_outputs",)},
    "flux": FLUX,
    "flux-schnell": FLUX,
}
# Workers whose predictor refuses more pixels than this after validation (worker-stable_diffusion_v1 src/predict.py).
MAX_PIXELS = {"sd15": worker_stable_diffusion_v1.MAX_PIXELS}
WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "cfg": "{{guidance}}"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": "{{width}}", "height": "{{height}}"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}},
}
# A step inside an exclusive end of a float range (sd15's guidance: more than 0 and less than 20).
INSIDE = 0.01


def load_rp_validator() -> Validate:
    """RunPod's `rp_validator.validate`, from the worker SDK's own files, unmodified.

    Importing the `runpod` package reads ~/.runpod/config.toml and runs py-cpuinfo in a subprocess at import time;
    rp_validator.py imports only json and typing, so it is loaded on its own from the package's files.
    """
    path = runpod_package_dir() / "serverless" / "utils" / "rp_validator.py"
    spec = importlib.util.spec_from_file_location("runpod_rp_validator", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    validate: Validate = module.validate
    return validate


rp_validate = load_rp_validator()


def model_of(preset: str, tmp_path: Path) -> ModelConfig:
    """A model of the preset with its own defaults and limits (ComfyUI with a small workflow template)."""
    workflow = None
    if preset == "comfyui":
        (tmp_path / "workflow.json").write_text(json.dumps(WORKFLOW))
        workflow = "workflow.json"
    entry = ModelEntry(name="m", endpoint_id="ep", preset=preset, workflow_file=workflow)
    return build_model(entry, tmp_path)


def lowest(allowed: Range, integer: bool) -> float:
    assert allowed.low is not None
    step = 1 if integer else INSIDE
    return allowed.low + step if allowed.low_open else allowed.low


def highest(allowed: Range, integer: bool) -> float:
    assert allowed.high is not None
    step = 1 if integer else INSIDE
    return allowed.high - step if allowed.high_open else allowed.high


def edges(model: ModelConfig) -> Iterator[tuple[str, RequestOptions]]:
    """The defaults, then every limit's edge (each end of steps and guidance, the most images, every size)."""
    yield "defaults", RequestOptions(prompt="a lighthouse")
    yield "negative", RequestOptions(prompt="a lighthouse", negative_prompt="blurry")
    yield "fewest steps", RequestOptions(prompt="p", steps=int(lowest(model.steps_range, integer=True)))
    yield "most steps", RequestOptions(prompt="p", steps=int(highest(model.steps_range, integer=True)))
    yield "least guidance", RequestOptions(prompt="p", guidance=lowest(model.guidance_range, integer=False))
    yield "most guidance", RequestOptions(prompt="p", guidance=highest(model.guidance_range, integer=False))
    yield "most images", RequestOptions(prompt="p", count=int(highest(model.count_range, integer=True)))
    for size in model.sizes:
        yield size, RequestOptions(prompt="p", size=size)
    yield (
        "every limit at once",
        RequestOptions(
            prompt="p" * model.limits.prompt_max,
            negative_prompt="n" * model.limits.negative_max,
            size=model.sizes[-1],
            steps=int(highest(model.steps_range, integer=True)),
            guidance=highest(model.guidance_range, integer=False),
            count=int(highest(model.count_range, integer=True)),
            seed=2**32 - 1,
        ),
    )


def broken_constraints(payload: dict[str, Any], schema: Schema) -> list[str]:
    """The fields whose stated constraint fails, which `rp_validator` may have skipped (defaults filled in)."""
    values = {key: rules.get("default") for key, rules in schema.items() if not rules.get("required")}
    values.update(payload)
    return [key for key, rules in schema.items() if "constraints" in rules and not rules["constraints"](values[key])]


def check_against_worker(preset: str, payload: dict[str, Any]) -> None:
    result = rp_validate(dict(payload), SCHEMAS[preset])
    assert "errors" not in result, result["errors"]
    assert broken_constraints(payload, SCHEMAS[preset]) == []
    if preset in MAX_PIXELS:
        assert payload["width"] * payload["height"] <= MAX_PIXELS[preset]


# The presets whose workers draw from a prompt (worker-esrgan only upscales: tested below).
DRAWING_PRESETS = [name for name, preset in PRESETS.items() if not preset.worker.upscale_only]


def all_edges() -> list[tuple[str, str]]:
    return [(preset, label) for preset in DRAWING_PRESETS for label, _ in edges(model_of_static(preset))]


def model_of_static(preset: str) -> ModelConfig:
    """The preset's model built without files (the edges do not depend on the workflow)."""
    limits, defaults = PRESETS[preset].limits, PRESETS[preset].defaults
    return ModelConfig("m", "ep", PRESETS[preset], limits, defaults)


def test_every_preset_has_its_workers_schema() -> None:
    """No preset goes untested: each one is matched with the schema of the worker it targets."""
    assert set(SCHEMAS) == set(PRESETS)


@pytest.mark.parametrize(("preset", "edge"), all_edges())
def test_built_input_passes_the_real_workers_schema(preset: str, edge: str, tmp_path: Path) -> None:
    """At its defaults and at every limit's edge, a preset's input is one its worker accepts as it is."""
    model = model_of(preset, tmp_path)
    options = dict(edges(model))[edge]
    check_against_worker(preset, model.build_input(model.resolve(options)))


def limits_of(preset: str) -> list[tuple[str, str, WorkerLimit]]:
    worker = PRESETS[preset].worker
    found = {"steps": worker.steps, "guidance": worker.guidance, "count": worker.count}
    return [(preset, option, limit) for option, limit in found.items() if limit is not None]


def just_outside(limit: WorkerLimit, option: str) -> list[float]:
    """The nearest values past each end of a worker's limit (an open end is itself outside)."""
    step = 1 if option != "guidance" else INSIDE
    allowed = limit.allowed
    assert allowed.low is not None
    assert allowed.high is not None
    low = allowed.low if allowed.low_open else allowed.low - step
    high = allowed.high if allowed.high_open else allowed.high + step
    return [low, high]


WORKER_LIMITS = [entry for preset in DRAWING_PRESETS for entry in limits_of(preset)]


@pytest.mark.parametrize(("preset", "option", "limit"), WORKER_LIMITS, ids=[f"{p}-{o}" for p, o, _ in WORKER_LIMITS])
def test_each_worker_limit_is_the_one_its_source_states(preset: str, option: str, limit: WorkerLimit) -> None:
    """A preset's recorded worker limit matches the schema's constraint: its ends pass, just outside fails."""
    integer = option != "guidance"
    inside = [lowest(limit.allowed, integer), highest(limit.allowed, integer)]
    outside = just_outside(limit, option)
    for key in INPUT_NAMES[preset][option]:
        constraint = SCHEMAS[preset][key]["constraints"]
        assert [constraint(value) for value in inside] == [True, True]
        assert [constraint(value) for value in outside] == [False, False]
    assert limit.source.split()[0].startswith(("runpod-workers/", "runpod/docs@"))


@pytest.mark.parametrize("preset", [name for name in DRAWING_PRESETS if PRESETS[name].worker.sizes is not None])
def test_each_worker_size_rule_is_the_one_its_source_states(preset: str) -> None:
    """The recorded size rule allows exactly the sides the schema's width and height constraints (and pixel cap) do."""
    rule = PRESETS[preset].worker.sizes
    assert rule is not None
    schema = SCHEMAS[preset]
    for side in range(64, 2049, 32):
        for other in (512, 768):
            expected = schema["width"]["constraints"](side) and schema["height"]["constraints"](other)
            if preset in MAX_PIXELS:
                expected = expected and side * other <= MAX_PIXELS[preset]
            assert rule.allows(Size(side, other)) == expected, (side, other)


@pytest.mark.parametrize(("preset", "option", "limit"), WORKER_LIMITS, ids=[f"{p}-{o}" for p, o, _ in WORKER_LIMITS])
def test_value_just_past_a_worker_limit_is_refused_with_the_range(
    preset: str, option: str, limit: WorkerLimit, tmp_path: Path
) -> None:
    """The bot refuses a value the worker does not accept, naming the option and the allowed range."""
    model = model_of(preset, tmp_path)
    for value in just_outside(limit, option):
        with pytest.raises(InvalidRequestError) as caught:
            model.resolve(RequestOptions.model_validate({"prompt": "p", option: value}))
        assert caught.value.option == option
        assert f"Allowed: {getattr(model, f'{option}_range').describe()}." in str(caught.value)


def test_rp_validator_lets_an_out_of_range_value_through() -> None:
    """worker-sdxl's own validation accepts num_images 4 (constraints skipped), so only the bot can refuse it."""
    assert "errors" not in rp_validate({"prompt": "p", "num_images": 4}, worker_sdxl.INPUT_SCHEMA)


def test_rp_validator_refuses_a_name_the_worker_does_not_know() -> None:
    """The validator the schema tests rely on does refuse unknown input names and wrong types."""
    result = rp_validate({"prompt": "p", "cfg_scale": 7.0, "width": "1024"}, worker_sdxl.INPUT_SCHEMA)
    assert result["errors"] == [
        "Unexpected input. cfg_scale is not a valid input option.",
        "width should be <class 'int'> type, not <class 'str'>.",
    ]


# img2img: a source image a worker downloads (a URL) or is sent (a data URI), as `prepare_source_image` leaves it.
IMG2IMG_WORKFLOW = {
    **WORKFLOW,
    "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "denoise": "{{strength}}"}},
    "10": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
}
SOURCE_URL = "https://cdn.discordapp.com/attachments/1/2/source.png"
SOURCE_DATA_URI = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
IMAGE_PRESETS = [name for name, preset in PRESETS.items() if preset.worker.image is not None]


def img2img_model_of(preset: str, tmp_path: Path) -> ModelConfig:
    workflow = None
    if preset == "comfyui":
        (tmp_path / "img2img.json").write_text(json.dumps(IMG2IMG_WORKFLOW))
        workflow = "img2img.json"
    return build_model(ModelEntry(name="m", endpoint_id="ep", preset=preset, workflow_file=workflow), tmp_path)


def strength_edges(model: ModelConfig) -> list[tuple[int, float]]:
    """(steps, strength) at each end of the allowed strengths: the least that still runs a step, and the most."""
    allowed = model.strength_range
    spec = model.image_input
    assert allowed is not None
    assert spec is not None
    steps = int(highest(model.steps_range, integer=True))
    least = lowest(allowed, integer=False)
    if spec.strength_scales_steps:
        least = max(least, 1 / steps)
    return [(steps, least), (steps, highest(allowed, integer=False)), (int(lowest(model.steps_range, True)), 1.0)]


def test_the_presets_that_take_an_image_are_those_whose_workers_do() -> None:
    """worker-sdxl, worker-stable_diffusion_v1 and worker-comfyui take a source image; the others draw from text."""
    assert IMAGE_PRESETS == ["sdxl", "sd15", "comfyui"]


@pytest.mark.parametrize("preset", IMAGE_PRESETS)
def test_img2img_input_passes_the_real_workers_schema_at_the_strength_edges(preset: str, tmp_path: Path) -> None:
    """With a source image, at the defaults and at each end of the strength, the worker accepts the input as it is."""
    model = img2img_model_of(preset, tmp_path)
    spec = model.image_input
    assert spec is not None
    encoded = SOURCE_URL if spec.encoding == "url" else SOURCE_DATA_URI
    cases = [(None, None), *strength_edges(model)]
    for steps, strength in cases:
        options = RequestOptions(prompt="p", source_image_url=SOURCE_URL, steps=steps, strength=strength)
        request = model.resolve(options)
        assert request.source is not None
        request = replace(request, source=replace(request.source, encoded=encoded))
        payload = model.build_input(request)
        check_against_worker(preset, payload)
        if preset == "comfyui":
            (image,) = payload["images"]
            assert set(image) == {"name", "image"}
            assert payload["workflow"]["10"]["inputs"]["image"] == image["name"]
        else:
            assert payload[spec.image_key] == SOURCE_URL
            assert payload[spec.strength_key] == request.strength


@pytest.mark.parametrize("preset", IMAGE_PRESETS)
def test_each_strength_limit_is_the_one_its_source_states(preset: str, tmp_path: Path) -> None:
    """The recorded strength range is the worker's (0–1), and just past it the bot refuses."""
    model = img2img_model_of(preset, tmp_path)
    spec = model.image_input
    assert spec is not None
    assert (spec.strength.allowed.low, spec.strength.allowed.high) == (0, 1)
    if preset == "sd15":
        constraint = SCHEMAS[preset]["prompt_strength"]["constraints"]
        assert [constraint(0.0), constraint(1.0), constraint(-INSIDE), constraint(1 + INSIDE)] == [
            True,
            True,
            False,
            False,
        ]
    for value in (-INSIDE, 1 + INSIDE):
        with pytest.raises(InvalidRequestError, match="Allowed: 0–1"):
            model.resolve(RequestOptions(prompt="p", source_image_url=SOURCE_URL, strength=value))


# Upscalers: one image sent at its own size and the factor, as `prepare_upscale_source` leaves the request.
UPSCALE_WORKFLOW = {
    "10": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
    "11": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
    "12": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["11", 0], "image": ["10", 0]}},
    "13": {"class_type": "ImageScaleBy", "inputs": {"image": ["12", 0], "scale_by": "{{scale}}"}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["13", 0]}},
}
UPSCALE_PRESETS = [name for name, preset in PRESETS.items() if preset.worker.upscale is not None]


def upscaler_of(preset: str, scale: float, tmp_path: Path) -> ModelConfig:
    workflow = None
    if preset == "comfyui":
        (tmp_path / "upscale.json").write_text(json.dumps(UPSCALE_WORKFLOW))
        workflow = "upscale.json"
    entry = ModelEntry(name="up", endpoint_id="ep", preset=preset, workflow_file=workflow, task="upscale", scale=scale)
    return build_model(entry, tmp_path)


def upscale_request(model: ModelConfig) -> ImageRequest:
    """An upscale of a 1024x1024 image, prepared as the worker takes it (a URL, or a PNG data URI)."""
    spec = model.upscale_input
    assert spec is not None
    assert model.scale is not None
    encoded = SOURCE_URL if spec.encoding == "url" else SOURCE_DATA_URI
    side = round(1024 * model.scale)
    return ImageRequest(
        "p", "", Size(side, side), 25, 7.0, 1, 1, source=SourceImage(SOURCE_URL, encoded), scale=model.scale
    )


def test_the_presets_that_upscale_are_those_whose_workers_do() -> None:
    """worker-comfyui (a workflow with upscale nodes) and worker-esrgan upscale; worker-esrgan does nothing else."""
    assert UPSCALE_PRESETS == ["comfyui", "esrgan"]
    assert [name for name, preset in PRESETS.items() if preset.worker.upscale_only] == ["esrgan"]


@pytest.mark.parametrize("preset", UPSCALE_PRESETS)
def test_upscale_input_passes_the_real_workers_schema_at_the_scale_edges(preset: str, tmp_path: Path) -> None:
    """At each end of the factors allowed and at 2, the upscaler's input is one its worker accepts as it is."""
    allowed = upscaler_of(preset, 2, tmp_path).scale_range
    assert allowed is not None
    for scale in (lowest(allowed, integer=False), 2, highest(allowed, integer=False)):
        model = upscaler_of(preset, scale, tmp_path)
        payload = model.build_input(upscale_request(model))
        check_against_worker(preset, payload)
        if preset == "comfyui":
            (image,) = payload["images"]
            assert payload["workflow"]["10"]["inputs"]["image"] == image["name"]
            assert payload["workflow"]["13"]["inputs"]["scale_by"] == scale
        else:
            assert payload == {"data_url": SOURCE_URL, "scale": float(scale)}


def test_esrgan_scale_limit_is_the_one_its_source_states(tmp_path: Path) -> None:
    """worker-esrgan's recorded factor range is its schema's `0 < scale < 16`: its ends are out, just inside is in."""
    limit = upscaler_of("esrgan", 2, tmp_path).worker_scale_limit
    assert limit is not None
    constraint = SCHEMAS["esrgan"]["scale"]["constraints"]
    for value in (0, INSIDE, 16 - INSIDE, 16):
        assert (value in limit.allowed) == constraint(value), value
    assert limit.source.startswith("runpod-workers/worker-esrgan@")


def test_rp_validator_checks_esrgan_scale_since_its_default_is_an_int() -> None:
    """The schema's default scale is an int, so a float scale is range-checked by the worker itself: 16 is refused."""
    result = rp_validate({"data_url": SOURCE_URL, "scale": 16.0}, worker_esrgan.INPUT_SCHEMA)
    assert result["errors"] == ["scale does not meet the constraints."]
