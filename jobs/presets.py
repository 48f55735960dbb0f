"""Model presets: which options a model accepts, their bounds, and how the worker's input is built from them.

A preset knows one worker family (worker-sdxl, worker-stable_diffusion_v1, A1111, ComfyUI, public Flux…): the input
names it reads, the limits it documents (each with its source: repository, path, commit) and how it seeds a batch.
The operator's `models.toml` names models, picks a preset for each and may change its defaults and limits, but never
past what the worker accepts: a worker's own validator does not enforce every range (RunPod's `rp_validator` skips a
field's constraints when its type matches its default's), so an out-of-range value would run out of memory or give
worse images instead of being refused. docs/presets.md describes each preset and its sources.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobs.prices import DEFAULT_CURRENCY, Price, check_currency
from jobs.prompt_filter import visible_text
from jobs.text import N_, stored
from runpod_client.local import LOCAL_KEY_PREFIX, local_worker_key

# The templates of this module's texts for members (`jobs.text.stored`), registered when the module is
# imported, so any process recognises them in a kept text and translates them.
TO_CHARACTERS = stored("1 to {prompt_max} characters")
IS_CHARACTERS_LONG = stored("is {prompt_count} characters long")
AT_MOST_CHARACTERS = stored("at most {prompt_max} characters")
IS_CHARACTERS_LONG_2 = stored("is {negative_count} characters long")
AT_MOST_CHARACTERS_2 = stored("at most {negative_max} characters")
IS_NOT_OFFERED_BY = stored("{size_text} is not offered by {name}")
IS_OUT_OF_RANGE = stored("{steps} is out of range")
IS_OUT_OF_RANGE_2 = stored("{guidance:g} is out of range")
IS_OUT_OF_RANGE_3 = stored("{count} is out of range")
IS_OUT_OF_RANGE_4 = stored("{seed} is out of range")
UPSCALES_A_FINISHED_IMAGE_ITS = stored(
    "{name} upscales a finished image (its U buttons) and draws nothing from a prompt"
)
DOES_NOT_APPLY_TO_AN = stored("does not apply to {name}, an upscaler")
CANNOT_BE_USED_DOES_NOT = stored("cannot be used: {name} does not start from an image")
IS_OUT_OF_RANGE_5 = stored("{strength:g} is out of range")
LEAVES_NO_STEP_TO_RUN = stored("{strength:g} leaves no step to run at {steps} steps")
AT_STEPS = stored("{value} at {steps} steps")
IS_MORE_THAN_DRAWS_FROM = stored("{count} is more than {name} draws from an image")
STARTS_FROM_AN_IMAGE_ATTACH = stored("{name} starts from an image: attach one")
IS_NOT_CONFIGURED = stored("{name} is not configured")
# A range with an open or a missing end, as a refusal names what is allowed (`Range.describe`).
RANGE_WORDS: dict[tuple[bool | None, bool | None], str] = {
    (True, None): stored("more than {low:g}"),
    (False, None): stored("at least {low:g}"),
    (None, True): stored("less than {high:g}"),
    (None, False): stored("at most {high:g}"),
    (True, True): stored("more than {low:g} and less than {high:g}"),
    (True, False): stored("more than {low:g} and at most {high:g}"),
    (False, True): stored("at least {low:g} and less than {high:g}"),
}

MAX_SEED = 2**32 - 1
DEFAULT_PROMPT_MAX = 1500
DEFAULT_NEGATIVE_MAX = 1000
# Between a member's negative prompt and the server's default one added after it.
NEGATIVE_SEPARATOR = ", "
DEFAULT_MODEL_NAME = "default"
# The most images one job may deliver: a Discord message carries at most 10 attachments.
MAX_IMAGES_PER_JOB = 10
# How long a `sync = true` model's /runsync asks RunPod to hold the reply for the result. A warm sdxl-turbo or Flux
# Schnell worker answers within a few seconds; a cold start (10-40 s) outlives it and the job is followed by polling,
# at the cost of one request. It stays under the 10 s a closing bot waits for submits in flight.
DEFAULT_SYNC_WAIT_S = 8
# RunPod's range for /runsync's `wait`.
MIN_SYNC_WAIT_S = 1
MAX_SYNC_WAIT_S = 300

# How the worker seeds a batch: "batch" when one seed renders all images together (only the whole batch is
# reproducible from it), "image" when each image has a seed of its own.
SeedScope = Literal["batch", "image"]
SEED_SCOPE_BATCH: SeedScope = "batch"
SEED_SCOPE_IMAGE: SeedScope = "image"

# How a worker takes a source image: a URL it downloads itself, a data URI, or raw base64.
ImageEncoding = Literal["url", "data_uri", "base64"]
IMAGE_AS_URL: ImageEncoding = "url"
IMAGE_AS_DATA_URI: ImageEncoding = "data_uri"
IMAGE_AS_BASE64: ImageEncoding = "base64"
# The file name a ComfyUI workflow's LoadImage node reads the source image under (`{{image}}` in the template):
# worker-comfyui uploads each `images` entry to ComfyUI's input folder under its `name` (handler.py upload_images).
COMFYUI_SOURCE_IMAGE_NAME = "runpod_bot_source.png"

# What a model does: draw images from a prompt (`/imagine`, Vary), or enlarge one image of a finished job (Upscale).
Task = Literal["generate", "upscale"]
TASK_GENERATE: Task = "generate"
TASK_UPSCALE: Task = "upscale"
# The bot's own bounds on an upscaler's factor: more than 1 (less is no upscale) and at most 8 (as far as ComfyUI's
# ImageScaleBy goes); the worker's own limit applies on top.
MIN_UPSCALE_FACTOR = 1
MAX_UPSCALE_FACTOR = 8


class InvalidRequestError(Exception):
    """A request option is out of bounds; the message names the option and what is allowed."""

    def __init__(self, option: str, problem: str, allowed: str) -> None:
        super().__init__(f"`{option}` {problem}. Allowed: {allowed}.")
        self.option = option
        self.problem = problem
        self.allowed = allowed


class ModelsFileError(Exception):
    """models.toml cannot be used; the message names the file and the problem."""


class SourceImageNotPreparedError(RuntimeError):
    """A worker input was built for a request whose source image was not fetched and encoded first
    (`jobs.source_image.prepare_source_image`): a mistake of the caller, never of the member."""


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @classmethod
    def parse(cls, text: str) -> Size:
        match = re.fullmatch(r"\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})\s*", text)
        if not match:
            raise ValueError(f"{text!r} is not a size like 1024x1024")
        return cls(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class Range:
    """Allowed numbers: either end may be missing, and either may be open (the end itself excluded)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def within(self, outer: Range) -> bool:
        """Whether this range reaches no further than `outer` (an end equal to an open end of `outer` counts as in:
        intersecting the two opens it)."""
        low_in = outer.low is None or (self.low is not None and self.low >= outer.low)
        high_in = outer.high is None or (self.high is not None and self.high <= outer.high)
        return low_in and high_in

    def intersect(self, other: Range | None) -> Range:
        """The numbers in both ranges."""
        if other is None:
            return self
        low, low_open = _tighter(self.low, self.low_open, other.low, other.low_open, higher=True)
        high, high_open = _tighter(self.high, self.high_open, other.high, other.high_open, higher=False)
        return Range(low, high, low_open, high_open)

    def describe(self) -> str:
        """The range as a refusal names it: `1–8`, `2`, `more than 0 and less than 20`, `at most 2`."""
        if self.low is not None and self.high is not None and not self.low_open and not self.high_open:
            return f"{self.low:g}" if self.low == self.high else f"{self.low:g}–{self.high:g}"
        if self.low is None and self.high is None:
            return N_("any number")
        low_open = None if self.low is None else self.low_open
        high_open = None if self.high is None else self.high_open
        return RANGE_WORDS[low_open, high_open].format(low=self.low, high=self.high)


def _tighter(
    a: float | None, a_open: bool, b: float | None, b_open: bool, *, higher: bool
) -> tuple[float | None, bool]:
    """The tighter of two lower (`higher=True`) or upper ends; on a tie an open end wins."""
    if a is None:
        return b, b_open
    if b is None or a == b:
        return a, a_open or (b_open and a == b)
    if (a > b) == higher:
        return a, a_open
    return b, b_open


@dataclass(frozen=True)
class WorkerLimit:
    """A bound the worker documents, and where: repository@commit, path, and the rule as written there."""

    allowed: Range
    source: str


@dataclass(frozen=True)
class SizeRule:
    """The widths and heights the worker accepts, and where that is documented."""

    source: str
    sides: frozenset[int] = frozenset()
    min_side: int | None = None
    max_side: int | None = None
    multiple: int = 1
    max_pixels: int | None = None

    def allows(self, size: Size) -> bool:
        for side in (size.width, size.height):
            if self.sides and side not in self.sides:
                return False
            if side not in Range(self.min_side, self.max_side) or side % self.multiple:
                return False
        return self.max_pixels is None or size.width * size.height <= self.max_pixels

    def describe(self) -> str:
        parts = []
        if self.sides:
            parts.append("each side " + ", ".join(str(side) for side in sorted(self.sides)))
        if self.min_side is not None or self.max_side is not None:
            parts.append(f"each side {Range(self.min_side, self.max_side).describe()}")
        if self.multiple > 1:
            parts.append(f"a multiple of {self.multiple}")
        if self.max_pixels is not None:
            parts.append(f"at most {self.max_pixels} pixels")
        return ", ".join(parts)


@dataclass(frozen=True)
class WorkerSpec:
    """What a preset's worker documents: its limits, each with its source, and how it seeds a batch."""

    name: str
    steps: WorkerLimit | None = None
    guidance: WorkerLimit | None = None
    count: WorkerLimit | None = None
    sizes: SizeRule | None = None
    seed_scope: SeedScope = SEED_SCOPE_BATCH
    # How the worker takes a source image (img2img); None: it draws from text only.
    image: ImageInputSpec | None = None
    # How the worker enlarges an image (an upscaler); None: it cannot.
    upscale: UpscaleSpec | None = None
    # The worker only upscales: its models must say `task = "upscale"`.
    upscale_only: bool = False


@dataclass(frozen=True)
class ImageInputSpec:
    """How a worker takes a source image and how strongly it departs from it, each fact with its source.

    `image_key` and `strength_key` are the worker's input names (for ComfyUI, where both live in the workflow, the
    placeholders `{{image}}` and `{{strength}}` and the `images` upload list). With `steps_key`, the member's steps
    go to that input when a source image is given (worker-sdxl's img2img runs its refiner, which reads
    `refiner_inference_steps`). `strength_scales_steps`: diffusers' img2img pipelines run `int(steps * strength)`
    denoising steps and fail with none, so the bot refuses a strength that leaves no step. `max_source_pixels`: a
    worker fed a URL draws at the source image's own size (the bot cannot resize what it does not send), so larger
    sources are refused. `single_image`: the worker renders one image from a source, whatever the count.
    """

    image_key: str
    encoding: ImageEncoding
    strength_key: str
    strength: WorkerLimit
    default_strength: float
    source: str
    steps_key: str | None = None
    strength_scales_steps: bool = False
    max_source_pixels: int | None = None
    single_image: bool = False
    # ComfyUI: the image and strength go into the workflow template and the upload list, not into plain inputs.
    in_workflow: bool = False


@dataclass(frozen=True)
class UpscaleSpec:
    """How a worker enlarges an image, each fact with its source.

    `image_key` is the input the image goes in (for ComfyUI, where the image and the factor live in the workflow, the
    placeholders `{{image}}` and `{{scale}}` and the `images` upload list). The image is sent at its own size: an
    upscaler enlarges what it gets. `scale` is the factor the worker accepts, None when the factor is fixed by what
    the worker runs (a ComfyUI workflow without `{{scale}}`: the upscale model's own factor, which the operator
    states as the model's `scale`).
    """

    image_key: str
    encoding: ImageEncoding
    source: str
    scale_key: str | None = None
    scale: WorkerLimit | None = None
    in_workflow: bool = False


@dataclass(frozen=True)
class SourceImage:
    """The image an img2img job starts from.

    `url` is where it was fetched from (a Discord attachment, a posted result): the job record keeps only this, so
    Redis never holds image bytes and a re-roll fetches it again. `encoded` is the value the worker's input takes
    (the checked URL, a data URI or base64 of the resized image); it lives in memory only, between the fetch and the
    `/run` that carries it, and is kept out of comparisons and reprs (it can be megabytes, and reprs reach logs).
    """

    url: str
    encoded: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ImageRequest:
    """A validated request, with every option resolved (defaults applied, seed chosen)."""

    prompt: str
    negative_prompt: str
    size: Size
    steps: int
    guidance: float
    seed: int
    count: int
    seed_scope: SeedScope = SEED_SCOPE_BATCH
    # img2img: the source image and how far the result departs from it (0: unchanged, 1: redrawn).
    source: SourceImage | None = None
    strength: float | None = None
    # An upscale: the factor the source image is enlarged by (`size` is then the enlarged size).
    scale: float | None = None
    # The server's default negative prompt (`/settings negative`), already at the end of `negative_prompt`, which is
    # what the worker gets. Kept apart so that asking again (Re-roll, Retry, Remix, Vary) starts from the member's
    # own part and the server's current one is added again, once.
    server_negative: str = ""

    @property
    def own_negative(self) -> str:
        """The negative prompt without the server's default one: what the member (or the model's default) gave."""
        if not self.server_negative:
            return self.negative_prompt
        if self.negative_prompt == self.server_negative:
            return ""
        suffix = NEGATIVE_SEPARATOR + self.server_negative
        return self.negative_prompt.removesuffix(suffix)

    def with_server_negative(self, server_negative: str) -> ImageRequest:
        """The request with the server's default negative prompt added after the member's own."""
        own = self.own_negative
        if not server_negative:
            return replace(self, negative_prompt=own, server_negative="")
        combined = own + NEGATIVE_SEPARATOR + server_negative if own else server_negative
        return replace(self, negative_prompt=combined, server_negative=server_negative)

    def as_dict(self) -> dict[str, Any]:
        """The parameters as stored with the job and shown to members (`seed_scope` says how to label seeds).

        A source image is stored by its URL only, never its bytes (`SourceImage`)."""
        img2img: dict[str, Any] = {}
        if self.source is not None:
            img2img = {"source_image_url": self.source.url, "strength": self.strength}
        if self.scale is not None:
            img2img["upscale"] = self.scale
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "width": self.size.width,
            "height": self.size.height,
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": self.seed,
            "count": self.count,
            "seed_scope": self.seed_scope,
            **img2img,
            **({"server_negative": self.server_negative} if self.server_negative else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageRequest:
        return cls(
            prompt=str(data["prompt"]),
            negative_prompt=str(data.get("negative_prompt", "")),
            size=Size(int(data["width"]), int(data["height"])),
            steps=int(data["steps"]),
            guidance=float(data["guidance"]),
            seed=int(data["seed"]),
            count=int(data["count"]),
            seed_scope=SEED_SCOPE_IMAGE if data.get("seed_scope") == SEED_SCOPE_IMAGE else SEED_SCOPE_BATCH,
            source=SourceImage(str(data["source_image_url"])) if data.get("source_image_url") else None,
            strength=float(data["strength"]) if data.get("strength") is not None else None,
            scale=float(data["upscale"]) if data.get("upscale") is not None else None,
            server_negative=str(data.get("server_negative") or ""),
        )

    def as_options(self, *, keep_seed: bool) -> RequestOptions:
        """The options that ask for this request again (Re-roll and Retry), with a new seed unless `keep_seed`."""
        return RequestOptions(
            prompt=self.prompt,
            negative_prompt=self.own_negative or None,
            size=str(self.size),
            steps=self.steps,
            guidance=self.guidance,
            seed=self.seed if keep_seed else None,
            count=self.count,
            source_image_url=self.source.url if self.source is not None else None,
            strength=self.strength,
        )


class RequestOptions(BaseModel):
    """What a member (or the CLI) asked for; unset options take the model's defaults."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    negative_prompt: str | None = None
    size: str | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    count: int | None = None
    # img2img: the http(s) URL of the image to start from (a Discord attachment), and the strength.
    source_image_url: str | None = None
    strength: float | None = None


class Limits(BaseModel):
    """Bounds a model accepts; every option outside them is refused with the allowed range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sizes: tuple[str, ...]
    min_steps: int = 1
    max_steps: int = 50
    min_guidance: float = 0.0
    max_guidance: float = 20.0
    max_count: int = 4
    prompt_max: int = DEFAULT_PROMPT_MAX
    negative_max: int = DEFAULT_NEGATIVE_MAX

    @field_validator("sizes")
    @classmethod
    def _sizes_parse(cls, sizes: tuple[str, ...]) -> tuple[str, ...]:
        if not sizes:
            raise ValueError("at least one size is needed")
        return tuple(str(Size.parse(size)) for size in sizes)

    @field_validator("max_count")
    @classmethod
    def _max_count_fits_a_message(cls, max_count: int) -> int:
        if max_count > MAX_IMAGES_PER_JOB:
            raise ValueError(f"max_count is {max_count}; at most {MAX_IMAGES_PER_JOB} images can be posted per job")
        return max_count

    @model_validator(mode="after")
    def _ranges_are_ranges(self) -> Limits:
        if self.min_steps > self.max_steps or self.min_guidance > self.max_guidance or self.max_count < 1:
            raise ValueError("each minimum must not exceed its maximum, and max_count must be at least 1")
        return self


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    size: str
    steps: int
    guidance: float
    negative_prompt: str = ""
    count: int = 1


InputBuilder = Callable[[ImageRequest, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Preset:
    """One worker family: its input format and its default bounds."""

    name: str
    build_input: InputBuilder
    limits: Limits
    defaults: Defaults
    worker: WorkerSpec


def _diffusers(count_key: str) -> InputBuilder:
    def build(request: ImageRequest, _extra: Mapping[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.size.width,
            "height": request.size.height,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
            "seed": request.seed,
            count_key: request.count,
        }
        if request.negative_prompt:
            payload["negative_prompt"] = request.negative_prompt
        return payload

    return build


def _a1111(request: ImageRequest, _extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "steps": request.steps,
        "cfg_scale": request.guidance,
        "width": request.size.width,
        "height": request.size.height,
        "seed": request.seed,
        "batch_size": request.count,
    }


def _flux(request: ImageRequest, _extra: Mapping[str, Any]) -> dict[str, Any]:
    # RunPod documents `guidance` for its public Flux endpoints, but their code reads `guidance_scale` and ignores
    # `guidance` (runpod-workers/public-ep flux-*/src/txt2img_flux_*.py); it ignores unknown keys, so both are sent
    # with the same value and whichever the deployed endpoint reads gets it.
    payload: dict[str, Any] = {
        "prompt": request.prompt,
        "width": request.size.width,
        "height": request.size.height,
        "num_inference_steps": request.steps,
        "guidance": request.guidance,
        "guidance_scale": request.guidance,
        "seed": request.seed,
        "image_format": "png",
    }
    if request.negative_prompt:
        payload["negative_prompt"] = request.negative_prompt
    return payload


PLACEHOLDER = re.compile(
    r"\{\{\s*(prompt|negative_prompt|seed|width|height|steps|guidance|count|image|strength|scale)\s*\}\}"
)
# The placeholders of an img2img workflow: the LoadImage node's file name and the sampler's denoise.
IMAGE_PLACEHOLDERS = frozenset({"image", "strength"})


def workflow_placeholders(template: Any) -> set[str]:
    """The names of the placeholders a ComfyUI workflow template uses."""
    if isinstance(template, dict):
        return set().union(*(workflow_placeholders(value) for value in template.values()))
    if isinstance(template, list):
        return set().union(*(workflow_placeholders(value) for value in template))
    if isinstance(template, str):
        return {match.group(1) for match in PLACEHOLDER.finditer(template)}
    return set()


def substitute_workflow(template: Any, values: Mapping[str, Any]) -> Any:
    """Put the request's values at the named places (`"{{seed}}"`) of a ComfyUI workflow template.

    A string that is exactly one placeholder takes the value with its type (a number stays a number); a placeholder
    inside a longer string is replaced by the value's text.
    """
    if isinstance(template, dict):
        return {key: substitute_workflow(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [substitute_workflow(value, values) for value in template]
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)
    return template


def _comfyui(request: ImageRequest, extra: Mapping[str, Any]) -> dict[str, Any]:
    workflow = extra.get("workflow")
    if not isinstance(workflow, dict):
        raise ModelsFileError("a comfyui model needs a workflow template (workflow_file in models.toml)")
    values = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "width": request.size.width,
        "height": request.size.height,
        "steps": request.steps,
        "guidance": request.guidance,
        "count": request.count,
    }
    if request.source is None:
        return {"workflow": substitute_workflow(copy.deepcopy(workflow), values)}
    # worker-comfyui uploads each `images` entry under its `name`; the workflow's LoadImage node reads that name.
    # An upscaler's workflow may feed `{{scale}}` to ImageScaleBy's `scale_by`.
    values.update(image=COMFYUI_SOURCE_IMAGE_NAME, strength=request.strength, scale=request.scale)
    encoded = source_value(request, IMAGE_AS_DATA_URI)
    return {
        "workflow": substitute_workflow(copy.deepcopy(workflow), values),
        "images": [{"name": COMFYUI_SOURCE_IMAGE_NAME, "image": encoded}],
    }


def source_value(request: ImageRequest, encoding: ImageEncoding) -> str:
    """The worker's value for the request's source image: what `prepare_source_image` encoded.

    A worker that takes a URL gets the URL as given when nothing was prepared (the worker fetches it itself); one that
    takes the image's bytes cannot be sent anything, and that is the caller's mistake."""
    source = request.source
    if source is None:
        raise SourceImageNotPreparedError("the request has no source image")
    if source.encoded is not None:
        return source.encoded
    if encoding == IMAGE_AS_URL:
        return source.url
    raise SourceImageNotPreparedError(
        "the source image was not fetched and encoded: call jobs.source_image.prepare_source_image before submitting"
    )


def add_source_image(payload: dict[str, Any], request: ImageRequest, spec: ImageInputSpec) -> dict[str, Any]:
    """The input of a worker that takes its source image and strength as plain inputs (worker-sdxl, SD 1.5)."""
    payload[spec.image_key] = source_value(request, spec.encoding)
    payload[spec.strength_key] = request.strength
    if spec.steps_key is not None:
        payload[spec.steps_key] = request.steps
    return payload


def _esrgan(request: ImageRequest, _extra: Mapping[str, Any]) -> dict[str, Any]:
    """worker-esrgan's input: the image's URL, which it downloads, and the factor (its schema's `scale` is a float)."""
    if request.scale is None:
        raise SourceImageNotPreparedError("worker-esrgan only upscales: the request has no scale")
    return {"data_url": source_value(request, IMAGE_AS_URL), "scale": float(request.scale)}


SDXL_SIZES = ("1024x1024", "1152x896", "896x1152", "1216x832", "832x1216", "1344x768", "768x1344")
SD15_SIZES = ("512x512", "768x512", "512x768", "640x640")
FLUX_SIZES = ("1024x1024", "1024x768", "768x1024", "1280x768", "768x1280")

# Where each limit below comes from (docs/presets.md has the details). Commits are those the presets were checked
# against; tests/data/worker_schemas holds the schemas, and tests/unit/jobs/test_worker_schemas.py checks each limit.
SDXL_SOURCE = "runpod-workers/worker-sdxl@94b18ff schemas.py"
SDXL_TURBO_SOURCE = "runpod-workers/worker-sdxl-turbo@8b93a56 schemas.py"
SD15_SOURCE = "runpod-workers/worker-stable_diffusion_v1@ba94608 src/rp_schema.py"
SD15_PREDICT_SOURCE = "runpod-workers/worker-stable_diffusion_v1@ba94608 src/rp_schema.py, src/predict.py"
FLUX_DEV_SOURCE = "runpod/docs@a900806 public-endpoints/models/flux-dev.mdx"
FLUX_SCHNELL_SOURCE = "runpod/docs@a900806 public-endpoints/models/flux-schnell.mdx"
FLUX_SIZE_RULE = "Must be divisible by 64. Range: 256-1536"
SD15_SIDES = frozenset({128, 256, 384, 448, 512, 576, 640, 704, 768})
SD15_MAX_PIXELS = 786432
# img2img (docs/presets.md, "Source images"). diffusers' img2img pipelines refuse a strength outside [0, 1]
# (huggingface/diffusers src/diffusers/pipelines/*/pipeline_*img2img.py check_inputs) and run int(steps * strength)
# steps; diffusers.utils.load_image opens http(s) URLs and files only, never data URIs (src/diffusers/utils/
# loading_utils.py).
DIFFUSERS_STRENGTH_SOURCE = "huggingface/diffusers pipeline_stable_diffusion_xl_img2img.py check_inputs"
SDXL_HANDLER_SOURCE = "runpod-workers/worker-sdxl@94b18ff handler.py"
SD15_HANDLER_SOURCE = "runpod-workers/worker-stable_diffusion_v1@ba94608 src/rp_handler.py, src/predict.py"
COMFYUI_IMAGES_SOURCE = "runpod-workers/worker-comfyui@d2a5572 README.md (input.images), handler.py upload_images"
COMFYUI_DENOISE_SOURCE = "comfyanonymous/ComfyUI nodes.py KSampler"
# Upscalers (docs/presets.md, "Upscalers").
ESRGAN_SOURCE = "runpod-workers/worker-esrgan@5e5d6a0 src/rp_schemas.py"
ESRGAN_HANDLER_SOURCE = "runpod-workers/worker-esrgan@5e5d6a0 src/rp_handler.py"
COMFYUI_SCALE_BY_SOURCE = "comfyanonymous/ComfyUI@0109431 nodes.py ImageScaleBy"
# The bot's own bound for a source image worker-sdxl's refiner draws at its own size (the worker documents none):
# twice the pixels of SDXL's 1024x1024.
SDXL_MAX_SOURCE_PIXELS = 2 * 1024 * 1024
# ComfyUI's KSampler defaults denoise to 1.0, which draws over the source entirely; the bot's default keeps its
# composition.
COMFYUI_DEFAULT_STRENGTH = 0.75

SDXL_IMAGE = ImageInputSpec(
    image_key="image_url",
    encoding=IMAGE_AS_URL,
    strength_key="strength",
    strength=WorkerLimit(Range(0, 1), f"{DIFFUSERS_STRENGTH_SOURCE}: strength in [0.0, 1.0]"),
    # schemas.py: strength default 0.3.
    default_strength=0.3,
    source=f"{SDXL_HANDLER_SOURCE}: image_url through diffusers load_image, refiner only",
    steps_key="refiner_inference_steps",
    strength_scales_steps=True,
    max_source_pixels=SDXL_MAX_SOURCE_PIXELS,
    single_image=True,
)
SD15_IMAGE = ImageInputSpec(
    image_key="init_image",
    encoding=IMAGE_AS_URL,
    strength_key="prompt_strength",
    strength=WorkerLimit(Range(0, 1), f"{SD15_SOURCE}: prompt_strength 0 <= s <= 1"),
    # src/rp_schema.py: prompt_strength default 0.8.
    default_strength=0.8,
    source=f"{SD15_HANDLER_SOURCE}: init_image downloaded by rp_download.download_files_from_urls",
    strength_scales_steps=True,
    max_source_pixels=SD15_MAX_PIXELS,
)
COMFYUI_IMAGE = ImageInputSpec(
    image_key="images",
    encoding=IMAGE_AS_DATA_URI,
    strength_key="{{strength}}",
    strength=WorkerLimit(Range(0, 1), f"{COMFYUI_DENOISE_SOURCE}: denoise min 0.0, max 1.0"),
    default_strength=COMFYUI_DEFAULT_STRENGTH,
    in_workflow=True,
    source=f"{COMFYUI_IMAGES_SOURCE}: images [{{name, image}}], base64 with an optional data URI prefix",
)

ESRGAN_UPSCALE = UpscaleSpec(
    image_key="data_url",
    encoding=IMAGE_AS_URL,
    source=f"{ESRGAN_HANDLER_SOURCE}: data_url downloaded by rp_download.file, enhanced with outscale=scale",
    scale_key="scale",
    scale=WorkerLimit(Range(0, 16, low_open=True, high_open=True), f"{ESRGAN_SOURCE}: scale 0 < scale < 16"),
)
COMFYUI_UPSCALE = UpscaleSpec(
    image_key="images",
    encoding=IMAGE_AS_DATA_URI,
    source=f"{COMFYUI_IMAGES_SOURCE}: the image loaded by LoadImage, enlarged by the workflow's upscale nodes",
    scale_key="{{scale}}",
    scale=WorkerLimit(Range(0.01, 8), f"{COMFYUI_SCALE_BY_SOURCE}: scale_by min 0.01, max 8.0"),
    in_workflow=True,
)

WORKER_SDXL = WorkerSpec(
    "worker-sdxl",
    count=WorkerLimit(Range(1, 2), f"{SDXL_SOURCE}: num_images 3 > n > 0"),
    image=SDXL_IMAGE,
)
WORKER_SDXL_TURBO = WorkerSpec(
    "worker-sdxl-turbo",
    steps=WorkerLimit(Range(1, 8), f"{SDXL_TURBO_SOURCE}: num_inference_steps 1 <= n <= 8"),
    guidance=WorkerLimit(Range(0, 2), f"{SDXL_TURBO_SOURCE}: guidance_scale 0.0 <= g <= 2.0"),
    count=WorkerLimit(Range(1, 4), f"{SDXL_TURBO_SOURCE}: num_images 5 > n > 0"),
    sizes=SizeRule(f"{SDXL_TURBO_SOURCE}: width == 512, height == 512", sides=frozenset({512})),
)
WORKER_SD15 = WorkerSpec(
    "worker-stable_diffusion_v1",
    steps=WorkerLimit(Range(1, 499), f"{SD15_SOURCE}: num_inference_steps 0 < n < 500"),
    guidance=WorkerLimit(Range(0, 20, low_open=True, high_open=True), f"{SD15_SOURCE}: guidance_scale 0 < g < 20"),
    count=WorkerLimit(Range(1, 9), f"{SD15_SOURCE}: num_outputs 10 > n > 0"),
    sizes=SizeRule(
        f"{SD15_PREDICT_SOURCE}: width, height in [128, 256, …, 768]; width * height <= 786432",
        sides=SD15_SIDES,
        max_pixels=SD15_MAX_PIXELS,
    ),
    image=SD15_IMAGE,
)
WORKER_FLUX_DEV = WorkerSpec(
    "RunPod's public Flux Dev endpoint",
    steps=WorkerLimit(Range(1, 50), f"{FLUX_DEV_SOURCE}: num_inference_steps Range: 1-50"),
    guidance=WorkerLimit(Range(0, 10), f"{FLUX_DEV_SOURCE}: guidance Range: 0.0-10.0"),
    count=WorkerLimit(Range(1, 1), f"{FLUX_DEV_SOURCE}: one image_url per request"),
    sizes=SizeRule(f"{FLUX_DEV_SOURCE}: width, height {FLUX_SIZE_RULE}", min_side=256, max_side=1536, multiple=64),
)
WORKER_FLUX_SCHNELL = WorkerSpec(
    "RunPod's public Flux Schnell endpoint",
    steps=WorkerLimit(Range(1, 8), f"{FLUX_SCHNELL_SOURCE}: num_inference_steps Range: 1-8"),
    guidance=WorkerLimit(Range(0, 10), f"{FLUX_SCHNELL_SOURCE}: guidance Range: 0.0-10.0"),
    count=WorkerLimit(Range(1, 1), f"{FLUX_SCHNELL_SOURCE}: one image_url per request"),
    sizes=SizeRule(f"{FLUX_SCHNELL_SOURCE}: width, height {FLUX_SIZE_RULE}", min_side=256, max_side=1536, multiple=64),
)
# worker-a1111 passes its input unchanged to A1111's /sdapi/v1/txt2img and documents no limits; A1111 renders image
# i of a batch from seed + i, so each image's seed is its own.
WORKER_A1111 = WorkerSpec("Automatic1111 (worker-a1111)", seed_scope=SEED_SCOPE_IMAGE)
# worker-comfyui takes a whole workflow; sizes and steps live in it, so the worker documents no limits for them.
WORKER_COMFYUI = WorkerSpec("worker-comfyui", image=COMFYUI_IMAGE, upscale=COMFYUI_UPSCALE)
# worker-esrgan runs Real-ESRGAN on one downloaded image and draws nothing from a prompt.
WORKER_ESRGAN = WorkerSpec("worker-esrgan", upscale=ESRGAN_UPSCALE, upscale_only=True)

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        # Defaults are the worker's own (schemas.py: num_inference_steps 25, guidance_scale 7.5). Steps and guidance
        # bounds are the bot's: the worker documents none.
        Preset(
            "sdxl",
            _diffusers("num_images"),
            Limits(sizes=SDXL_SIZES, max_steps=60, max_guidance=15.0, max_count=2),
            Defaults(size="1024x1024", steps=25, guidance=7.5),
            WORKER_SDXL,
        ),
        # Defaults are the worker's own: 1 step, guidance 0.0, 512x512.
        Preset(
            "sdxl-turbo",
            _diffusers("num_images"),
            Limits(sizes=("512x512",), max_steps=8, max_guidance=2.0, max_count=4),
            Defaults(size="512x512", steps=1, guidance=0.0),
            WORKER_SDXL_TURBO,
        ),
        # Defaults are the worker's own (50 steps, guidance 7.5); steps and images are kept below its limits.
        Preset(
            "sd15",
            _diffusers("num_outputs"),
            Limits(sizes=SD15_SIZES, max_steps=100, max_guidance=20.0, max_count=4),
            Defaults(size="512x512", steps=50, guidance=7.5),
            WORKER_SD15,
        ),
        # The docs default guidance to 7.5, the endpoint's code to 3.5 (public-ep flux-dev/src/txt2img_flux_dev.py);
        # the bot always sends a value, and keeps the one the endpoint itself falls back to.
        Preset(
            "flux",
            _flux,
            Limits(sizes=FLUX_SIZES, max_steps=50, max_guidance=10.0, max_count=1),
            Defaults(size="1024x1024", steps=28, guidance=3.5),
            WORKER_FLUX_DEV,
        ),
        # Schnell: 4 steps (docs and code); guidance 0.0 as the endpoint's code defaults it (public-ep
        # flux-schnell/src/txt2img_flux_schnell.py: "Default for schnell is 0"; the docs say 7.5).
        Preset(
            "flux-schnell",
            _flux,
            Limits(sizes=FLUX_SIZES, max_steps=8, max_guidance=10.0, max_count=1),
            Defaults(size="1024x1024", steps=4, guidance=0.0),
            WORKER_FLUX_SCHNELL,
        ),
        Preset(
            "a1111",
            _a1111,
            Limits(sizes=SDXL_SIZES + SD15_SIZES, max_steps=100, max_guidance=30.0),
            Defaults(size="1024x1024", steps=25, guidance=7.0),
            WORKER_A1111,
        ),
        Preset(
            "comfyui",
            _comfyui,
            Limits(sizes=SDXL_SIZES, max_steps=100, max_guidance=30.0),
            Defaults(size="1024x1024", steps=25, guidance=7.0),
            WORKER_COMFYUI,
        ),
        # An upscaler takes no prompt, size, steps or guidance: these bounds only fill the preset's shape.
        Preset(
            "esrgan",
            _esrgan,
            Limits(sizes=("1024x1024",), max_count=1),
            Defaults(size="1024x1024", steps=1, guidance=0.0),
            WORKER_ESRGAN,
        ),
    )
}


class ModelEntry(BaseModel):
    """One `[[models]]` table of models.toml: a RunPod endpoint (`endpoint_id`) or RunPod's local worker server
    (`local_worker_url`), one or the other."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    endpoint_id: str | None = Field(default=None, min_length=1)
    local_worker_url: str | None = None
    preset: str
    description: str = ""
    default: bool = False
    defaults: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, Any] = Field(default_factory=dict)
    workflow_file: str | None = None
    # Sent with /runsync, the result taken from its reply when the job finishes within `sync_wait_s`.
    sync: bool = False
    sync_wait_s: float | None = None
    # "upscale": the model enlarges one image of a finished job by `scale` (the U buttons), and draws nothing.
    task: Task = TASK_GENERATE
    scale: float | None = None
    # What its GPU time costs (one of the two; none: usage shows seconds only), in `currency` (default: the file's
    # `currency`, else USD).
    price_per_gpu_hour: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    price_per_second: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    currency: str | None = None

    @model_validator(mode="after")
    def _one_price(self) -> ModelEntry:
        if self.price_per_gpu_hour is not None and self.price_per_second is not None:
            raise ValueError(
                f"model {self.name}: give price_per_gpu_hour or price_per_second, not both (one is the other x 3600)"
            )
        if self.currency is not None:
            check_currency(self.currency)
            if self.price_per_gpu_hour is None and self.price_per_second is None:
                raise ValueError(
                    f"model {self.name}: currency applies only with a price; add price_per_gpu_hour or price_per_second"
                )
        return self

    def price(self, file_currency: str = DEFAULT_CURRENCY) -> Price | None:
        """The model's price, in its own currency or else the file's; None when it gives none."""
        return Price.of(
            per_second=self.price_per_second,
            per_gpu_hour=self.price_per_gpu_hour,
            currency=self.currency or file_currency,
        )

    @model_validator(mode="after")
    def _upscaler_shape(self) -> ModelEntry:
        worker = PRESETS[self.preset].worker if self.preset in PRESETS else None
        if self.task == TASK_UPSCALE:
            if worker is not None and worker.upscale is None:
                able = ", ".join(name for name, preset in PRESETS.items() if preset.worker.upscale is not None)
                raise ValueError(
                    f"model {self.name}: preset {self.preset} cannot upscale an image; upscalers use one of: {able}"
                )
            if self.scale is None:
                raise ValueError(
                    f"model {self.name} is an upscaler and needs `scale`, the factor it enlarges by (like scale = 2)"
                )
            if self.default:
                raise ValueError(
                    f"model {self.name} is an upscaler and cannot be the default: /imagine draws with the default"
                )
        else:
            if worker is not None and worker.upscale_only:
                raise ValueError(
                    f'model {self.name}: preset {self.preset} only upscales images; add task = "upscale" and a scale'
                )
            if self.scale is not None:
                raise ValueError(f'model {self.name}: scale applies only to an upscaler; add task = "upscale"')
        return self

    @field_validator("sync_wait_s")
    @classmethod
    def _sync_wait_in_runpods_range(cls, wait_s: float | None) -> float | None:
        if wait_s is not None and not MIN_SYNC_WAIT_S <= wait_s <= MAX_SYNC_WAIT_S:
            raise ValueError(
                f"sync_wait_s is {wait_s:g}; RunPod's /runsync waits between {MIN_SYNC_WAIT_S} and "
                f"{MAX_SYNC_WAIT_S} seconds"
            )
        return wait_s

    @model_validator(mode="after")
    def _sync_wait_needs_sync(self) -> ModelEntry:
        if self.sync_wait_s is not None and not self.sync:
            raise ValueError(f"sync_wait_s applies only with sync = true (model {self.name}); add sync = true")
        return self

    @property
    def sync_wait_ms(self) -> int | None:
        """How long /runsync waits for this model's result; None: the model is sent with /run."""
        if not self.sync:
            return None
        return round((self.sync_wait_s if self.sync_wait_s is not None else DEFAULT_SYNC_WAIT_S) * 1000)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str) -> str:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}")
        return preset

    @field_validator("endpoint_id")
    @classmethod
    def _not_a_local_key(cls, endpoint_id: str | None) -> str | None:
        if endpoint_id is not None and endpoint_id.startswith(LOCAL_KEY_PREFIX):
            raise ValueError(
                f"endpoint_id {endpoint_id!r} starts with {LOCAL_KEY_PREFIX!r}, which the bot keeps for the keys of "
                "local worker servers (for a local worker server, set local_worker_url instead)"
            )
        return endpoint_id

    @field_validator("local_worker_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        return None if url is None else check_local_worker_url(url)

    @model_validator(mode="after")
    def _one_place(self) -> ModelEntry:
        if (self.endpoint_id is None) == (self.local_worker_url is None):
            raise ValueError(
                "give either endpoint_id (a RunPod Serverless endpoint) or local_worker_url (RunPod's local worker "
                "server, like http://127.0.0.1:8000), not both and not neither"
            )
        return self


def check_local_worker_url(url: str) -> str:
    """A local worker server's URL without its trailing slash; refused unless http(s) with a host."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"{url!r} is not the http(s) URL of a server, like http://127.0.0.1:8000 (the address "
            "that `python handler.py --rp_serve_api` serves)"
        )
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return url


@dataclass(frozen=True)
class ModelConfig:
    """A configured model: an endpoint, its preset, and its effective defaults and limits.

    A model on RunPod's local worker server has its `local_worker_url`, and `endpoint_id` is then the key that stands
    for that server (`local_worker_key`: `local-<host>-<port>`) wherever an endpoint id is used.
    """

    name: str
    endpoint_id: str
    preset: Preset
    limits: Limits
    defaults: Defaults
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    local_worker_url: str | None = None
    # Set for `sync = true`: the job goes through /runsync with this wait (ms); None: through /run.
    sync_wait_ms: int | None = None
    # An upscaler (`task = "upscale"`) enlarges one image by `scale` and draws nothing from a prompt.
    task: Task = TASK_GENERATE
    scale: float | None = None
    # The catalog's models that can start from an image, named when this one cannot (set by `ModelCatalog`).
    image_models: tuple[str, ...] = ()
    # What a GPU-second of it costs; None: its usage is shown in seconds only.
    price: Price | None = None

    @property
    def image_input(self) -> ImageInputSpec | None:
        """How this model takes a source image to draw from; None when it cannot (a ComfyUI workflow without
        `{{image}}`, an upscaler)."""
        spec = self.preset.worker.image
        if self.is_upscaler:
            return None
        if spec is not None and spec.in_workflow and "image" not in workflow_placeholders(self.extra.get("workflow")):
            return None
        return spec

    @property
    def is_upscaler(self) -> bool:
        """Whether this model enlarges an image (`task = "upscale"`) rather than draw from a prompt."""
        return self.task == TASK_UPSCALE

    @property
    def upscale_input(self) -> UpscaleSpec | None:
        """How this upscaler takes its image; None for a model that draws."""
        return self.preset.worker.upscale if self.is_upscaler else None

    @property
    def scale_range(self) -> Range | None:
        """The factors this upscaler may be set to: the bot's bounds within the worker's, when the factor is sent to
        the worker (worker-esrgan's `scale`, a workflow's `{{scale}}`); None for a model that draws."""
        if self.upscale_input is None:
            return None
        worker = self.worker_scale_limit
        mine = Range(MIN_UPSCALE_FACTOR, MAX_UPSCALE_FACTOR, low_open=True)
        return mine if worker is None else mine.intersect(worker.allowed)

    @property
    def worker_scale_limit(self) -> WorkerLimit | None:
        """The worker's limit on the factor, when the factor is sent to it (worker-esrgan's `scale`, a workflow's
        `{{scale}}`); None when the worker runs a fixed factor (a workflow's upscale model)."""
        spec = self.upscale_input
        if spec is None or (spec.in_workflow and "scale" not in workflow_placeholders(self.extra.get("workflow"))):
            return None
        return spec.scale

    @property
    def requires_image(self) -> bool:
        """Whether every request needs a source image (a ComfyUI workflow built around `{{image}}`)."""
        spec = self.image_input
        return spec is not None and spec.in_workflow

    @property
    def strength_range(self) -> Range | None:
        """The strengths allowed with a source image; None when the model takes no image."""
        spec = self.image_input
        return None if spec is None else spec.strength.allowed

    @property
    def sizes(self) -> tuple[str, ...]:
        return self.limits.sizes

    def resolve(self, options: RequestOptions, *, random_seed: Callable[[], int] | None = None) -> ImageRequest:
        """Apply defaults and check every option against the limits; refusals name the option and the range."""
        if self.is_upscaler:
            return self._resolve_upscale(options, random_seed)
        limits, defaults = self.limits, self.defaults
        prompt = clean_prompt(options.prompt)
        if not prompt:
            raise InvalidRequestError("prompt", N_("is empty"), TO_CHARACTERS.format(prompt_max=limits.prompt_max))
        if len(prompt) > limits.prompt_max:
            raise InvalidRequestError(
                "prompt",
                IS_CHARACTERS_LONG.format(prompt_count=len(prompt)),
                AT_MOST_CHARACTERS.format(prompt_max=limits.prompt_max),
            )
        negative = clean_prompt(options.negative_prompt) if options.negative_prompt else defaults.negative_prompt
        if len(negative) > limits.negative_max:
            raise InvalidRequestError(
                "negative",
                IS_CHARACTERS_LONG_2.format(negative_count=len(negative)),
                AT_MOST_CHARACTERS_2.format(negative_max=limits.negative_max),
            )
        size_text = options.size or defaults.size
        try:
            size = Size.parse(size_text)
        except ValueError:
            size = None
        if size is None or str(size) not in limits.sizes:
            raise InvalidRequestError(
                "size",
                IS_NOT_OFFERED_BY.format(size_text=repr(size_text), name=self.name),
                ", ".join(limits.sizes),
            )
        worker = self.preset.worker
        steps = defaults.steps if options.steps is None else options.steps
        allowed_steps = self.steps_range
        if steps not in allowed_steps:
            raise InvalidRequestError("steps", IS_OUT_OF_RANGE.format(steps=steps), allowed_steps.describe())
        guidance = defaults.guidance if options.guidance is None else options.guidance
        allowed_guidance = self.guidance_range
        if guidance not in allowed_guidance:
            raise InvalidRequestError(
                "guidance",
                IS_OUT_OF_RANGE_2.format(guidance=guidance),
                allowed_guidance.describe(),
            )
        count = defaults.count if options.count is None else options.count
        allowed_count = self.count_range
        if count not in allowed_count:
            raise InvalidRequestError("count", IS_OUT_OF_RANGE_3.format(count=count), allowed_count.describe())
        if options.seed is not None and not 0 <= options.seed <= MAX_SEED:
            raise InvalidRequestError("seed", IS_OUT_OF_RANGE_4.format(seed=options.seed), f"0–{MAX_SEED}")
        seed = options.seed if options.seed is not None else (random_seed or new_seed)()
        source, strength = self._resolve_source(options, steps, count)
        return ImageRequest(
            prompt, negative, size, steps, float(guidance), seed, count, worker.seed_scope, source, strength
        )

    def _resolve_upscale(self, options: RequestOptions, random_seed: Callable[[], int] | None) -> ImageRequest:
        """An upscale asked again (Retry, Re-roll of an upscale job: its stored request): the image's link and the
        parent's parameters, this model's factor. Without an image there is nothing to enlarge."""
        url = (options.source_image_url or "").strip()
        if not url:
            raise InvalidRequestError(
                "model",
                UPSCALES_A_FINISHED_IMAGE_ITS.format(name=self.name),
                N_("a model that draws"),
            )
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise InvalidRequestError("image", N_("is not an http(s) link"), N_("an uploaded image or an image's link"))
        if options.strength is not None:
            raise InvalidRequestError("strength", DOES_NOT_APPLY_TO_AN.format(name=self.name), N_("no strength"))
        try:
            # The enlarged size as recorded; the fetched image's own size replaces it before /run.
            size = Size.parse(options.size or self.defaults.size)
        except ValueError:
            size = Size.parse(self.defaults.size)
        return ImageRequest(
            prompt=clean_prompt(options.prompt),
            negative_prompt=clean_prompt(options.negative_prompt or ""),
            size=size,
            steps=self.defaults.steps if options.steps is None else options.steps,
            guidance=float(self.defaults.guidance if options.guidance is None else options.guidance),
            seed=options.seed if options.seed is not None else (random_seed or new_seed)(),
            count=1,
            source=SourceImage(url),
            scale=self.scale,
        )

    def _resolve_source(
        self, options: RequestOptions, steps: int, count: int
    ) -> tuple[SourceImage | None, float | None]:
        """The source image and strength of an img2img request, checked against what the worker takes."""
        spec = self.image_input
        if options.source_image_url is None:
            if options.strength is not None:
                raise InvalidRequestError(
                    "strength", N_("applies only when starting from an image"), N_("attach an image")
                )
            if self.requires_image:
                raise InvalidRequestError("image", N_("is missing"), STARTS_FROM_AN_IMAGE_ATTACH.format(name=self.name))
            return None, None
        if spec is None:
            able = ", ".join(self.image_models) if self.image_models else "none of the configured models"
            raise InvalidRequestError("image", CANNOT_BE_USED_DOES_NOT.format(name=self.name), able)
        url = options.source_image_url.strip()
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise InvalidRequestError("image", N_("is not an http(s) link"), N_("an uploaded image or an image's link"))
        strength = spec.default_strength if options.strength is None else float(options.strength)
        allowed = spec.strength.allowed
        if strength not in allowed:
            raise InvalidRequestError("strength", IS_OUT_OF_RANGE_5.format(strength=strength), allowed.describe())
        if spec.strength_scales_steps and int(steps * strength) < 1:
            # The pipeline runs int(steps * strength) steps and refuses to run none.
            least = Range(1 / steps, allowed.high)
            raise InvalidRequestError(
                "strength",
                LEAVES_NO_STEP_TO_RUN.format(strength=strength, steps=steps),
                AT_STEPS.format(value=least.describe(), steps=steps),
            )
        if spec.single_image and count > 1:
            raise InvalidRequestError(
                "count",
                IS_MORE_THAN_DRAWS_FROM.format(count=count, name=self.preset.worker.name),
                "1 with an image",
            )
        return SourceImage(url), strength

    @property
    def steps_range(self) -> Range:
        """The steps allowed: the model's limits within the worker's."""
        return Range(self.limits.min_steps, self.limits.max_steps).intersect(_allowed(self.preset.worker.steps))

    @property
    def guidance_range(self) -> Range:
        """The guidance allowed: the model's limits within the worker's (whose ends may be exclusive)."""
        limits = self.limits
        return Range(limits.min_guidance, limits.max_guidance).intersect(_allowed(self.preset.worker.guidance))

    @property
    def count_range(self) -> Range:
        """The images per job allowed: the model's limit within the worker's."""
        return Range(1, self.limits.max_count).intersect(_allowed(self.preset.worker.count))

    def build_input(self, request: ImageRequest) -> dict[str, Any]:
        """The worker's `input` for this request (an img2img request's source image prepared first: see
        `jobs.source_image.prepare_source_image`)."""
        payload = self.preset.build_input(request, self.extra)
        if self.is_upscaler:
            return payload
        spec = self.image_input
        if request.source is not None and spec is not None and not spec.in_workflow:
            add_source_image(payload, request, spec)
        return payload


def _allowed(limit: WorkerLimit | None) -> Range | None:
    return None if limit is None else limit.allowed


def check_within_worker(name: str, preset: Preset, limits: Limits) -> None:
    """Refuse limits that reach past what the preset's worker accepts, naming the worker's limit and its source."""
    worker = preset.worker
    wanted = (
        ("steps", Range(limits.min_steps, limits.max_steps), worker.steps),
        ("guidance", Range(limits.min_guidance, limits.max_guidance), worker.guidance),
        ("images per job", Range(1, limits.max_count), worker.count),
    )
    for option, mine, theirs in wanted:
        if theirs is not None and not mine.within(theirs.allowed):
            raise ModelsFileError(
                f"model {name}: {option} {mine.describe()} goes beyond what {worker.name} accepts "
                f"({theirs.allowed.describe()}; {theirs.source})"
            )
    rule = worker.sizes
    if rule is not None:
        for size in limits.sizes:
            if not rule.allows(Size.parse(size)):
                raise ModelsFileError(
                    f"model {name}: size {size} is not accepted by {worker.name} ({rule.describe()}; {rule.source})"
                )


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def clean_prompt(text: str) -> str:
    """The prompt without control and invisible characters (they would reach the worker and the card unseen),
    trimmed."""
    return visible_text(text).strip()


@dataclass(frozen=True)
class ModelCatalog:
    """Every configured model, by name, with one default."""

    models: tuple[ModelConfig, ...]
    default_name: str

    def __post_init__(self) -> None:
        # Each model learns which of its peers take a source image, to name them when it cannot.
        able = tuple(model.name for model in self.models if model.image_input is not None)
        object.__setattr__(self, "models", tuple(replace(model, image_models=able) for model in self.models))
        if self.get(self.default_name).is_upscaler:
            raise ModelsFileError(f"model {self.default_name} is an upscaler and cannot be the default")

    @property
    def drawing_models(self) -> list[ModelConfig]:
        """The models `/imagine` may offer: all but the upscalers, which draw nothing from a prompt."""
        return [model for model in self.models if not model.is_upscaler]

    @property
    def upscalers(self) -> list[ModelConfig]:
        """The models that enlarge a finished image (`task = "upscale"`), in the order of models.toml."""
        return [model for model in self.models if model.is_upscaler]

    @property
    def image_models(self) -> list[str]:
        """The models that can start from a source image (img2img)."""
        return [model.name for model in self.models if model.image_input is not None]

    def get(self, name: str | None) -> ModelConfig:
        """The named model (case-insensitive), or the default; unknown names are refused with the list."""
        wanted = (name or self.default_name).strip().lower()
        for model in self.models:
            if model.name.lower() == wanted:
                return model
        raise InvalidRequestError("model", IS_NOT_CONFIGURED.format(name=repr(name)), ", ".join(self.names))

    @property
    def default(self) -> ModelConfig:
        return self.get(None)

    @property
    def names(self) -> list[str]:
        return [model.name for model in self.models]

    @property
    def drawing_names(self) -> list[str]:
        """The names of the models that draw (what `/imagine`'s model option lists)."""
        return [model.name for model in self.drawing_models]

    @property
    def endpoint_ids(self) -> list[str]:
        return sorted({model.endpoint_id for model in self.models})

    @property
    def local_worker_urls(self) -> dict[str, str]:
        """The local worker servers, by the key that stands for each (`ModelConfig.endpoint_id`)."""
        return {model.endpoint_id: model.local_worker_url for model in self.models if model.local_worker_url}

    @property
    def runpod_endpoint_ids(self) -> list[str]:
        """The RunPod endpoints (those that need RUNPOD_API_KEY)."""
        return sorted({model.endpoint_id for model in self.models if not model.local_worker_url})


def build_model(entry: ModelEntry, base_dir: Path | None = None, currency: str = DEFAULT_CURRENCY) -> ModelConfig:
    """The model of a models.toml entry; `currency` is the file's, for a price that names none."""
    return replace(_build_model(entry, base_dir), price=entry.price(currency))


def _build_model(entry: ModelEntry, base_dir: Path | None) -> ModelConfig:
    preset = PRESETS[entry.preset]
    limits = Limits.model_validate({**preset.limits.model_dump(), **entry.limits})
    defaults = Defaults.model_validate({**preset.defaults.model_dump(), **entry.defaults})
    extra: dict[str, Any] = {}
    if entry.workflow_file:
        path = Path(entry.workflow_file)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            extra["workflow"] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelsFileError(f"model {entry.name}: cannot read workflow_file {path}: {exc}") from None
    elif entry.preset == "comfyui":
        raise ModelsFileError(f"model {entry.name}: the comfyui preset needs workflow_file")
    placeholders = workflow_placeholders(extra.get("workflow"))
    if entry.task == TASK_UPSCALE:
        return _build_upscaler(entry, preset, limits, defaults, extra, placeholders)
    if "scale" in placeholders:
        raise ModelsFileError(
            f'model {entry.name}: the workflow has {{{{scale}}}}, which only an upscaler fills; add task = "upscale" '
            "and a scale, or remove it"
        )
    if "strength" in placeholders and "image" not in placeholders:
        raise ModelsFileError(
            f"model {entry.name}: the workflow has {{{{strength}}}} but no {{{{image}}}}; the strength applies to a "
            "source image, which the workflow's LoadImage node must name with {{image}}"
        )
    check_within_worker(entry.name, preset, limits)
    url = entry.local_worker_url
    endpoint_id = local_worker_key(url) if url else str(entry.endpoint_id)
    model = ModelConfig(
        entry.name,
        endpoint_id,
        preset,
        limits,
        defaults,
        entry.description,
        extra,
        local_worker_url=url,
        sync_wait_ms=entry.sync_wait_ms,
    )
    # The defaults must themselves be valid, or every request without options would be refused.
    source = "https://example.com/check.png" if model.requires_image else None
    model.resolve(RequestOptions(prompt="check", source_image_url=source), random_seed=lambda: 0)
    return model


def _build_upscaler(
    entry: ModelEntry,
    preset: Preset,
    limits: Limits,
    defaults: Defaults,
    extra: dict[str, Any],
    placeholders: set[str],
) -> ModelConfig:
    """An upscaler (`task = "upscale"`): its image input and its factor checked against what the worker takes."""
    spec = preset.worker.upscale
    if spec is None or entry.scale is None:  # pragma: no cover - ModelEntry refuses both
        raise ModelsFileError(f"model {entry.name}: preset {entry.preset} cannot upscale")
    if spec.in_workflow and "image" not in placeholders:
        raise ModelsFileError(
            f"model {entry.name}: an upscaler's workflow needs {{{{image}}}} in its LoadImage node, where the image "
            "to enlarge is loaded"
        )
    url = entry.local_worker_url
    model = ModelConfig(
        entry.name,
        local_worker_key(url) if url else str(entry.endpoint_id),
        preset,
        # One image comes back: the enlarged one.
        limits.model_copy(update={"max_count": 1}),
        defaults,
        entry.description,
        extra,
        local_worker_url=url,
        task=TASK_UPSCALE,
        scale=entry.scale,
    )
    allowed = model.scale_range
    if allowed is not None and entry.scale not in allowed:
        limit = model.worker_scale_limit
        worker = f"; {limit.source}" if limit is not None else ""
        raise ModelsFileError(
            f"model {entry.name}: scale {entry.scale:g} is out of range (allowed: {allowed.describe()}{worker})"
        )
    return model


def default_catalog(
    endpoint_id: str | None, preset: str = "sdxl", *, local_worker_url: str | None = None
) -> ModelCatalog:
    """One model on `RUNPOD_ENDPOINT_ID` (or `RUNPOD_LOCAL_WORKER_URL`) when no models.toml exists."""
    place = {"local_worker_url": local_worker_url} if local_worker_url else {"endpoint_id": endpoint_id}
    entry = ModelEntry.model_validate({"name": DEFAULT_MODEL_NAME, "preset": preset, "default": True, **place})
    return ModelCatalog((build_model(entry),), DEFAULT_MODEL_NAME)


def load_catalog(path: Path, fallback_endpoint_id: str, fallback_local_worker_url: str | None = None) -> ModelCatalog:
    """The models of `path`, or a single default model on the fallback endpoint (or local worker server) when the
    file does not exist."""
    if not path.exists():
        return default_catalog(fallback_endpoint_id, local_worker_url=fallback_local_worker_url)
    try:
        data = tomllib.loads(path.read_text())
        entries = [ModelEntry.model_validate(raw) for raw in data.get("models", [])]
        currency = check_currency(str(data.get("currency", DEFAULT_CURRENCY)))
    except tomllib.TOMLDecodeError as exc:
        raise ModelsFileError(f"{path} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ModelsFileError(f"{path}: {problems}") from None
    except ValueError as exc:
        raise ModelsFileError(f"{path}: {exc}") from None
    if not entries:
        raise ModelsFileError(f"{path} lists no [[models]]")
    names = [entry.name.lower() for entry in entries]
    if len(set(names)) != len(names):
        raise ModelsFileError(f"{path}: model names must be unique")
    try:
        models = tuple(build_model(entry, path.parent, currency) for entry in entries)
    except (ValidationError, InvalidRequestError) as exc:
        raise ModelsFileError(f"{path}: {exc}") from None
    servers: dict[str, str] = {}
    for model in models:
        if model.local_worker_url and servers.setdefault(model.endpoint_id, model.local_worker_url) != (
            model.local_worker_url
        ):
            raise ModelsFileError(
                f"{path}: local_worker_url {servers[model.endpoint_id]} and {model.local_worker_url} name the same "
                "host and port; give both models the same URL"
            )
    defaults = [entry.name for entry in entries if entry.default]
    if len(defaults) > 1:
        raise ModelsFileError(f"{path}: only one model may be the default (found {', '.join(defaults)})")
    drawing = [entry.name for entry in entries if entry.task != TASK_UPSCALE]
    if not drawing:
        raise ModelsFileError(f"{path}: every model is an upscaler; at least one must draw images for /imagine")
    return ModelCatalog(models, defaults[0] if defaults else drawing[0])
