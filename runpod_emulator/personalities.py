"""Worker personalities: what an emulated worker returns, in the output shapes of the common image workers.

A job's personality is the scenario's default, or chosen per job by `input["emulator"]["personality"]` or by a
`[emulator:NAME]` token anywhere in the input's text (the prompt, a ComfyUI workflow).

A personality whose worker takes a source image (img2img) reads it as that worker does, and its images show the
source (fitted to the output) behind the caption, so a test can tell from the pixels which image a job started from:
- worker-sdxl: `image_url`, a URL it downloads (diffusers' `load_image`: http(s) URLs and files only); anything else
  fails the job. It draws at the source's size (runpod-workers/worker-sdxl handler.py, refiner only).
- worker-stable_diffusion_v1: `init_image`, a URL downloaded by the SDK's `rp_download`; a failed download leaves it
  None and the job runs as text-to-image (src/rp_handler.py). It draws at the source's size (src/predict.py).
- worker-comfyui: `images: [{"name", "image": base64 or data URI}]`, uploaded under `name`; the workflow's LoadImage
  node names the file (handler.py upload_images). A LoadImage naming no uploaded file fails, as ComfyUI's validation
  does. The drawing has the loaded image's size.

Upscalers return the source image enlarged, nothing drawn over it (a test compares the pixels with the source's):
- worker-esrgan: `data_url`, a URL the SDK's `rp_download.file` downloads, enlarged by `scale` (Real-ESRGAN's
  `enhance(img, outscale=scale)`). The input is validated as the worker's `INPUT_SCHEMA` states (src/rp_schemas.py,
  through rp_validator); on any error the real handler crashes reading `validated_input` before it looks at the
  errors (src/rp_handler.py), so the job fails with the SDK's report of that KeyError.
- worker-comfyui: a workflow with ComfyUI's upscale nodes enlarges the loaded image: `ImageScaleBy` by its
  `scale_by` (0.01–8.0, ComfyUI's validation otherwise fails the job), `ImageUpscaleWithModel` by the factor of the
  model its `UpscaleModelLoader` loads (named in the file, as `4x-UltraSharp.pth` or `RealESRGAN_x2plus.pth`).
The other personalities ignore image inputs: Flux's and A1111's code never reads them. (worker-sdxl-turbo validates
with rp_validator, which refuses unknown names; the bot never sends it an image.)
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runpod_emulator.config import MAX_FORCED_IMAGES, Duration, ProgressStyle, Scenario, sample

# Images a job's input may ask for (num_images…); `input.emulator.images` and the scenario's `images` may force more,
# up to MAX_FORCED_IMAGES (a worker that ignores the requested count).
MAX_IMAGES = 4
PROMPT_TOKEN = re.compile(r"\[emulator:([a-z0-9-]+)\]")
COUNT_KEYS = ("num_images", "num_outputs", "batch_size")
PNG_DATA_URI_PREFIX = "data:image/png;base64,"
FLUX_COST = 0.0025
MAX_SEED = 2**32


class ImageInput(StrEnum):
    """How a personality's worker takes a source image."""

    IMAGE_URL = "image_url"  # worker-sdxl
    INIT_IMAGE = "init_image"  # worker-stable_diffusion_v1
    COMFYUI = "comfyui"  # worker-comfyui's `images` upload list, named by a LoadImage node
    DATA_URL = "data_url"  # worker-esrgan


class Outcome(StrEnum):
    """How a job of this personality ends."""

    COMPLETED = "completed"
    FAILED = "failed"
    NO_OUTPUT = "no_output"  # COMPLETED without `output`: the result was over RunPod's size limit
    HANG = "hang"  # never finishes: ends TIMED_OUT at the policy's executionTimeout
    CUSTOM = "custom"  # COMPLETED with the scenario's `custom_output`, verbatim


@dataclass(frozen=True)
class RenderedImage:
    """One drawn PNG and its seed."""

    data: bytes
    seed: int

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def data_uri(self) -> str:
        return PNG_DATA_URI_PREFIX + self.base64


@dataclass(frozen=True)
class OutputContext:
    """What a shape needs: the images, a way to publish one at a URL, and the job's parameters."""

    images: list[RenderedImage]
    publish: Callable[[bytes], str]
    parameters: dict[str, Any]
    generation_time_s: float


Shape = Callable[[OutputContext], Any]
ErrorBuilder = Callable[[str], Any]


@dataclass(frozen=True)
class Personality:
    """One kind of worker: its outcome, its output shape or error, and whether it reports progress."""

    name: str
    description: str
    outcome: Outcome = Outcome.COMPLETED
    shape: Shape | None = None
    error: ErrorBuilder | None = None
    failed_output: Any = None
    progress: bool = True
    max_images: int = MAX_FORCED_IMAGES
    oversized: bool = False
    # Every PNG has valid checksums but undecodable pixel data.
    corrupt: bool = False
    image_input: ImageInput | None = None


def _sd_v1_url(ctx: OutputContext) -> Any:
    return [{"image": ctx.publish(image.data), "seed": image.seed} for image in ctx.images]


def _sd_v1_base64(ctx: OutputContext) -> Any:
    return [{"image": image.base64, "seed": image.seed} for image in ctx.images]


def _sdxl(ctx: OutputContext) -> Any:
    images = [image.data_uri for image in ctx.images]
    return {"images": images, "image_url": images[0], "seed": ctx.images[0].seed}


def _sdxl_bucket(ctx: OutputContext) -> Any:
    urls = [ctx.publish(image.data) for image in ctx.images]
    return {"images": urls, "image_url": urls[0], "seed": ctx.images[0].seed}


def _sdxl_turbo(ctx: OutputContext) -> Any:
    return {
        "images": [{"image": image.base64, "seed": image.seed} for image in ctx.images],
        "generation_time": round(ctx.generation_time_s, 3),
        "parameters": ctx.parameters,
    }


def _bare_base64(ctx: OutputContext) -> Any:
    return ctx.images[0].base64


def _comfyui(ctx: OutputContext) -> Any:
    return {
        "images": [
            {"filename": f"ComfyUI_{index + 1:05d}_.png", "type": "base64", "data": image.base64}
            for index, image in enumerate(ctx.images)
        ]
    }


def _comfyui_s3(ctx: OutputContext) -> Any:
    return {
        "images": [
            {"filename": f"ComfyUI_{index + 1:05d}_.png", "type": "s3_url", "data": ctx.publish(image.data)}
            for index, image in enumerate(ctx.images)
        ]
    }


def _comfyui_no_images(ctx: OutputContext) -> Any:
    return {"status": "success_no_images", "images": []}


def _comfyui_legacy(ctx: OutputContext) -> Any:
    return {"status": "success", "message": ctx.images[0].base64}


def _comfyui_legacy_url(ctx: OutputContext) -> Any:
    return {"status": "success", "message": ctx.publish(ctx.images[0].data)}


def _a1111(ctx: OutputContext) -> Any:
    seeds = [image.seed for image in ctx.images]
    info = {"prompt": ctx.parameters.get("prompt", ""), "seed": seeds[0], "all_seeds": seeds}
    return {"images": [image.base64 for image in ctx.images], "parameters": ctx.parameters, "info": json.dumps(info)}


def _esrgan(ctx: OutputContext) -> Any:
    # worker-esrgan returns the list of URLs rp_upload.files gives for its outputs (a bucket's presigned URLs).
    return [ctx.publish(image.data) for image in ctx.images]


def _flux(ctx: OutputContext) -> Any:
    return {"image_url": ctx.publish(ctx.images[0].data), "cost": FLUX_COST}


def _plain_error(worker_id: str) -> Any:
    return "CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 23.69 GiB total capacity)"


def _json_error(worker_id: str) -> Any:
    # What the RunPod SDK reports when the handler raised.
    return json.dumps(
        {
            "error_type": "<class 'ValueError'>",
            "error_message": "width and height must be multiples of 8",
            "error_traceback": (
                "Traceback (most recent call last):\n"
                '  File "/handler.py", line 42, in handler\n'
                "    check_size(job_input)\n"
                "ValueError: width and height must be multiples of 8\n"
            ),
            "hostname": worker_id,
            "worker_id": worker_id,
            "runpod_version": "1.7.9",
        }
    )


# worker-stable_diffusion_v1 with its safety checker on, when every image was flagged (src/predict.py raises; the SDK
# reports the exception as it does any handler's).
NSFW_ERROR_MESSAGE = "NSFW content detected. Try running it again, or try a different prompt."


def _nsfw_error(worker_id: str) -> Any:
    return json.dumps(
        {
            "error_type": "<class 'Exception'>",
            "error_message": NSFW_ERROR_MESSAGE,
            "error_traceback": (
                "Traceback (most recent call last):\n"
                '  File "/src/predict.py", line 166, in predict\n'
                f"    raise Exception(\n"
                f"Exception: {NSFW_ERROR_MESSAGE}\n"
            ),
            "hostname": worker_id,
            "worker_id": worker_id,
            "runpod_version": "1.7.9",
        }
    )


LIST_ERRORS = [
    "Prompt outputs failed validation",
    "CheckpointLoaderSimple: Value not in list: ckpt_name: 'missing.safetensors'",
]


def _list_error(worker_id: str) -> Any:
    return list(LIST_ERRORS)


# worker-comfyui (handler.py) returns {"error": "Job processing failed", "details": [...]} when a workflow produced no
# image; the RunPod SDK (serverless/modules/rp_job.py) moves `error` out of the output, so the job is FAILED with that
# error and `output` {"details": [...]}.
COMFYUI_FAILURE_DETAILS = [
    "Workflow execution error: Node Type: KSampler, Node ID: 3, Message: Allocation on device 0 would exceed allowed "
    "memory. (out of memory) Currently allocated: 22.61 GiB, requested: 3.75 GiB, device limit: 23.65 GiB, free: "
    "1.03 GiB. Try a smaller size or fewer images, or restart the worker so that other processes release memory.",
    "Failed to fetch image data for ComfyUI_00001_.png from /view endpoint.",
]


def _comfyui_error(worker_id: str) -> Any:
    return "Job processing failed"


SDXL_IMAGE = ImageInput.IMAGE_URL
SD_V1_IMAGE = ImageInput.INIT_IMAGE
COMFY = ImageInput.COMFYUI
_ALL = (
    Personality("sdxl", "worker-sdxl: images as data URIs, image_url, seed", shape=_sdxl, image_input=SDXL_IMAGE),
    Personality("sdxl-bucket", "worker-sdxl with a bucket: images as URLs", shape=_sdxl_bucket, image_input=SDXL_IMAGE),
    Personality(
        "sd-v1", "old stable-diffusion-v1: a list of {image: URL, seed}", shape=_sd_v1_url, image_input=SD_V1_IMAGE
    ),
    Personality(
        "sd-v1-base64",
        "worker-stable_diffusion_v1: a list of {image: base64, seed}",
        shape=_sd_v1_base64,
        image_input=SD_V1_IMAGE,
    ),
    Personality("sdxl-turbo", "new worker-sdxl-turbo: images as {image, seed}, generation_time", shape=_sdxl_turbo),
    Personality("sdxl-turbo-old", "old worker-sdxl-turbo: a bare base64 string", shape=_bare_base64, max_images=1),
    Personality(
        "comfyui", "worker-comfyui 5.x: images as {filename, type: base64, data}", shape=_comfyui, image_input=COMFY
    ),
    Personality(
        "comfyui-s3",
        "worker-comfyui 5.x with S3: {filename, type: s3_url, data}",
        shape=_comfyui_s3,
        image_input=COMFY,
    ),
    Personality("comfyui-no-images", "worker-comfyui 5.x that produced nothing", shape=_comfyui_no_images),
    Personality(
        "comfyui-legacy", "worker-comfyui before 5: {status, message: base64}", shape=_comfyui_legacy, max_images=1
    ),
    Personality(
        "comfyui-legacy-url", "worker-comfyui before 5: {status, message: URL}", shape=_comfyui_legacy_url, max_images=1
    ),
    Personality("a1111", "A1111 workers: images as raw base64, parameters, info JSON", shape=_a1111),
    Personality(
        "esrgan",
        "worker-esrgan: data_url enlarged by scale, a list of URLs",
        shape=_esrgan,
        max_images=1,
        image_input=ImageInput.DATA_URL,
    ),
    Personality("flux", "public Flux endpoints: {image_url, cost}", shape=_flux, max_images=1),
    Personality("no-progress", "worker-sdxl output, but no progress while running", shape=_sdxl, progress=False),
    Personality(
        "corrupt-pixels",
        "worker-sdxl output whose PNGs pass checksum checks but cannot be decoded",
        shape=_sdxl,
        corrupt=True,
    ),
    Personality(
        "oversized", "a PNG of oversized_bytes (25 MB) behind image_url", shape=_flux, max_images=1, oversized=True
    ),
    Personality("fail-plain", "FAILED with a plain error string", outcome=Outcome.FAILED, error=_plain_error),
    Personality(
        "fail-json",
        "FAILED with a JSON-encoded error (error_message, traceback)",
        outcome=Outcome.FAILED,
        error=_json_error,
    ),
    Personality(
        "safety-checker",
        "worker-stable_diffusion_v1 whose safety checker flagged every image: FAILED, NSFW content detected",
        outcome=Outcome.FAILED,
        error=_nsfw_error,
    ),
    Personality(
        "fail-list",
        "FAILED with a list of errors, and output",
        outcome=Outcome.FAILED,
        error=_list_error,
        failed_output={"errors": LIST_ERRORS},
    ),
    Personality(
        "comfyui-fail",
        "worker-comfyui whose workflow failed: error plus output {details: [...]}",
        outcome=Outcome.FAILED,
        error=_comfyui_error,
        failed_output={"details": COMFYUI_FAILURE_DETAILS},
    ),
    Personality("completed-no-output", "COMPLETED without output (over the size limit)", outcome=Outcome.NO_OUTPUT),
    Personality("hang", "never finishes: TIMED_OUT at the policy's executionTimeout", outcome=Outcome.HANG),
    Personality(
        "custom", "COMPLETED with the scenario's custom_output, verbatim (odd outputs in tests)", outcome=Outcome.CUSTOM
    ),
)
PERSONALITIES: dict[str, Personality] = {personality.name: personality for personality in _ALL}


class JobOptions(BaseModel):
    """Per-job settings from `input["emulator"]`, overriding the scenario for this job."""

    model_config = ConfigDict(extra="forbid")

    personality: str | None = None
    execution_s: Duration | None = None
    steps: int | None = Field(default=None, ge=1)
    progress: ProgressStyle | None = None
    images: int | None = Field(default=None, ge=1, le=MAX_FORCED_IMAGES)
    image_bytes: int | None = Field(default=None, ge=1)


@dataclass(frozen=True)
class JobPlan:
    """Everything decided about a job when it is submitted."""

    personality: Personality
    prompt: str
    seed: int
    width: int
    height: int
    images: int
    execution_s: float
    steps: int
    progress: ProgressStyle
    min_bytes: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    custom_output: Any = None
    source: SourcePlan | None = None
    # An upscale: the factor its source image is enlarged by.
    upscale: float | None = None


@dataclass(frozen=True)
class SourcePlan:
    """The source image a job starts from, as its worker would get it: a URL to download or the bytes uploaded.

    `error`: the worker fails the job with it (a source it cannot read). `optional`: a failed download leaves the job
    drawing from text only (worker-stable_diffusion_v1), instead of failing it.
    """

    url: str | None = None
    data: bytes | None = None
    error: str | None = None
    optional: bool = False


class InvalidJobInput(ValueError):
    """The input asks the emulator for something it does not know; the message says what."""


def plan_job(job_input: dict[str, Any], scenario: Scenario, rng: random.Random) -> JobPlan:
    """Decide the personality, timings, prompt, seed and size of a job from its input and the scenario."""
    raw_options = job_input.get("emulator", {})
    try:
        options = JobOptions.model_validate(raw_options if raw_options is not None else {})
    except ValidationError as exc:
        raise InvalidJobInput(f"input.emulator is invalid: {exc.errors()[0]['msg']}") from None
    name = options.personality or _prompt_token(job_input) or scenario.personality
    personality = PERSONALITIES.get(name)
    if personality is None:
        raise InvalidJobInput(f"unknown emulator personality {name!r}; known: {', '.join(PERSONALITIES)}")
    prompt = _prompt(job_input)
    seed = _first_int(job_input, ("seed", "noise_seed"))
    if seed is None:
        seed = rng.randrange(MAX_SEED)
    width = _int_or(job_input.get("width"), scenario.image_size)
    height = _int_or(job_input.get("height"), scenario.image_size)
    requested = min(_int_or(next((job_input[k] for k in COUNT_KEYS if k in job_input), None), 1), MAX_IMAGES)
    count = options.images or scenario.images or requested
    count = max(1, min(count, personality.max_images))
    min_bytes = options.image_bytes or (scenario.oversized_bytes if personality.oversized else 0)
    progress = options.progress or scenario.progress
    if not personality.progress:
        progress = ProgressStyle.NONE
    steps = options.steps or _int_or(job_input.get("num_inference_steps", job_input.get("steps")), scenario.steps)
    return JobPlan(
        personality=personality,
        prompt=prompt,
        seed=seed,
        width=width,
        height=height,
        images=count,
        execution_s=sample(options.execution_s if options.execution_s is not None else scenario.execution_s, rng),
        steps=max(1, min(steps, 1000)),
        progress=progress,
        min_bytes=min_bytes,
        parameters={"prompt": prompt, "seed": seed, "width": width, "height": height, "num_images": count},
        custom_output=scenario.custom_output,
        source=plan_source(job_input, personality.image_input),
        upscale=plan_upscale(job_input, personality.image_input),
    )


def plan_source(job_input: dict[str, Any], kind: ImageInput | None) -> SourcePlan | None:
    """The source image of a job's input as the personality's worker reads it; None when it starts from text."""
    if kind is ImageInput.IMAGE_URL:
        value = job_input.get("image_url")
        if not isinstance(value, str) or not value:
            return None
        if not value.startswith(("http://", "https://")):
            # diffusers.utils.load_image, which worker-sdxl calls, opens http(s) URLs and files only.
            return SourcePlan(
                error=f"Incorrect path or URL. URLs must start with `http://` or `https://`, and "
                f"{value[:40]!r} is not a valid path."
            )
        return SourcePlan(url=value)
    if kind is ImageInput.INIT_IMAGE:
        value = job_input.get("init_image")
        # rp_download fetches it with requests: anything but an http(s) URL fails and the job runs as txt2img.
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return SourcePlan(url=value, optional=True)
        return None
    if kind is ImageInput.COMFYUI:
        source = _comfyui_source(job_input)
        if source is not None and source.error is None:
            _, error = _workflow_upscale(job_input.get("workflow"))
            if error is not None:
                return SourcePlan(error=error)
        return source
    if kind is ImageInput.DATA_URL:
        return _esrgan_source(job_input)
    return None


def plan_upscale(job_input: dict[str, Any], kind: ImageInput | None) -> float | None:
    """The factor an upscaler enlarges the job's source image by; None for a job that draws."""
    if kind is ImageInput.DATA_URL:
        return _esrgan_scale(job_input)
    if kind is ImageInput.COMFYUI:
        factor, _ = _workflow_upscale(job_input.get("workflow"))
        return factor
    return None


# worker-esrgan's INPUT_SCHEMA (runpod-workers/worker-esrgan src/rp_schemas.py): the names it takes, its models.
ESRGAN_KEYS = frozenset({"data_url", "model", "scale", "tile", "tile_pad", "pre_pad", "output_type"})
ESRGAN_MODELS = ("RealESRGAN_x4plus", "RealESRNet_x4plus", "RealESRGAN_x4plus_anime_6B", "RealESRGAN_x2plus")
ESRGAN_DEFAULT_SCALE = 4
ESRGAN_MAX_SCALE = 16
ESRGAN_INT_KEYS = ("tile", "tile_pad", "pre_pad")


def esrgan_errors(job_input: dict[str, Any]) -> list[str]:
    """What RunPod's rp_validator reports for worker-esrgan's schema (the emulator's own `emulator` key aside)."""
    worker_input = {key: value for key, value in job_input.items() if key != "emulator"}
    errors = [f"Unexpected input. {key} is not a valid input option." for key in worker_input if key not in ESRGAN_KEYS]
    url = worker_input.get("data_url")
    if url is None:
        errors.append("data_url is a required input.")
    elif not isinstance(url, str):
        errors.append(f"data_url should be {str} type, not {type(url)}.")
    if worker_input.get("model", ESRGAN_MODELS[0]) not in ESRGAN_MODELS:
        errors.append("model does not meet the constraints.")
    scale = _esrgan_scale(worker_input)
    if scale is None:
        errors.append(f"scale should be {float} type, not {type(worker_input.get('scale'))}.")
    elif not 0 < scale < ESRGAN_MAX_SCALE:
        errors.append("scale does not meet the constraints.")
    for key in ESRGAN_INT_KEYS:
        if key in worker_input and (not isinstance(worker_input[key], int) or isinstance(worker_input[key], bool)):
            errors.append(f"{key} should be {int} type, not {type(worker_input[key])}.")
    if worker_input.get("output_type", "individual") not in ("individual", "zip"):
        errors.append("output_type does not meet the constraints.")
    return errors


def _esrgan_scale(job_input: dict[str, Any]) -> float | None:
    """`scale` as rp_validator gives it to the handler: an int or a float becomes a float (default 4)."""
    value = job_input.get("scale", ESRGAN_DEFAULT_SCALE)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _esrgan_source(job_input: dict[str, Any]) -> SourcePlan:
    if esrgan_errors(job_input):
        # src/rp_handler.py reads validated_input['validated_input'] before it checks for 'errors': a KeyError,
        # which the RunPod SDK reports as the job's error.
        return SourcePlan(error=handler_error("KeyError", "'validated_input'"))
    url = job_input["data_url"]
    if not url.startswith(("http://", "https://")):
        # rp_download.file fetches it with requests, which refuses anything but an http(s) URL.
        return SourcePlan(error=handler_error("MissingSchema", f"Invalid URL {url[:40]!r}: No scheme supplied."))
    return SourcePlan(url=url)


def handler_error(kind: str, message: str) -> str:
    """The RunPod SDK's report of a handler that raised (`error_type`, `error_message`…), JSON-encoded."""
    return json.dumps({"error_type": f"<class '{kind}'>", "error_message": message, "error_traceback": ""})


# The factor a ComfyUI upscale model's file name states: `4x-UltraSharp.pth`, `RealESRGAN_x2plus.pth`.
MODEL_FACTOR = re.compile(r"(?:^|[^a-z0-9])(\d+)x|x(\d+)(?:[^0-9]|$)", re.IGNORECASE)
# ComfyUI's ImageScaleBy (nodes.py): scale_by from 0.01 to 8.0.
SCALE_BY_RANGE = (0.01, 8.0)


def _workflow_upscale(workflow: Any) -> tuple[float | None, str | None]:
    """The factor a workflow's upscale nodes enlarge its image by (None: it has none), or the error ComfyUI's
    validation fails it with."""
    if not isinstance(workflow, dict):
        return None, None
    factor: float | None = None
    for node in workflow.values():
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            continue
        inputs = node["inputs"]
        if node.get("class_type") == "ImageScaleBy":
            value = inputs.get("scale_by")
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None, f"Prompt outputs failed validation: ImageScaleBy: invalid scale_by {value!r}"
            low, high = SCALE_BY_RANGE
            if not low <= value <= high:
                where = f"smaller than min of {low}" if value < low else f"bigger than max of {high}"
                return None, f"Prompt outputs failed validation: ImageScaleBy: Value {value} {where}: scale_by"
            factor = (factor or 1.0) * float(value)
        elif node.get("class_type") == "UpscaleModelLoader":
            name = inputs.get("model_name")
            match = MODEL_FACTOR.search(name) if isinstance(name, str) else None
            if match is None:
                return None, f"Prompt outputs failed validation: UpscaleModelLoader: Value not in list: {name!r}"
            factor = (factor or 1.0) * int(match.group(1) or match.group(2))
    return factor, None


def _comfyui_source(job_input: dict[str, Any]) -> SourcePlan | None:
    uploads = job_input.get("images")
    loaded = _loaded_image_names(job_input.get("workflow"))
    if not loaded:
        return None
    by_name = {
        item["name"]: item["image"]
        for item in uploads or []
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("image"), str)
    }
    name = loaded[0]
    if name not in by_name:
        # ComfyUI's validation of LoadImage: the file must be in its input folder.
        return SourcePlan(error=f"Prompt outputs failed validation: LoadImage: Invalid image file: {name}")
    text = by_name[name]
    # worker-comfyui strips everything up to the first comma (a data URI prefix), then decodes base64.
    payload = text.split(",", 1)[1] if "," in text else text
    try:
        return SourcePlan(data=base64.b64decode(payload, validate=True))
    except (ValueError, binascii.Error):
        return SourcePlan(error=f"Failed to upload one or more input images: Error decoding base64 for {name}")


def _loaded_image_names(workflow: Any) -> list[str]:
    """The file names the workflow's LoadImage nodes read."""
    if not isinstance(workflow, dict):
        return []
    return [
        node["inputs"]["image"]
        for node in workflow.values()
        if isinstance(node, dict)
        and node.get("class_type") == "LoadImage"
        and isinstance(node.get("inputs"), dict)
        and isinstance(node["inputs"].get("image"), str)
    ]


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    if depth > 8:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, depth + 1)


def _prompt_token(job_input: dict[str, Any]) -> str | None:
    for text in _strings(job_input):
        match = PROMPT_TOKEN.search(text)
        if match:
            return match.group(1)
    return None


def _prompt(job_input: dict[str, Any]) -> str:
    prompt = job_input.get("prompt")
    if isinstance(prompt, str):
        return prompt
    # A ComfyUI workflow: the first text-encoder node's text.
    workflow = job_input.get("workflow")
    if isinstance(workflow, dict):
        for node in workflow.values():
            inputs = node.get("inputs") if isinstance(node, dict) else None
            if isinstance(inputs, dict) and isinstance(inputs.get("text"), str):
                return str(inputs["text"])
    return ""


def _first_int(value: Any, keys: tuple[str, ...], depth: int = 0) -> int | None:
    """The first non-negative integer under one of `keys`, searching nested dicts (a ComfyUI KSampler's seed)."""
    if depth > 4 or not isinstance(value, dict):
        return None
    for key in keys:
        found = value.get(key)
        if isinstance(found, int) and not isinstance(found, bool) and found >= 0:
            return found
    for item in value.values():
        nested = _first_int(item, keys, depth + 1)
        if nested is not None:
            return nested
    return None


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
