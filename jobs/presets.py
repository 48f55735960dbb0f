"""Model presets: which options a model accepts, their bounds, and how the worker's input is built from them.

A preset knows one worker family (worker-sdxl, worker-stable_diffusion_v1, A1111, ComfyUI, public Flux…). The
operator's `models.toml` names models, picks a preset for each and may narrow its defaults and limits.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobs.prompt_filter import visible_text

MAX_SEED = 2**32 - 1
DEFAULT_PROMPT_MAX = 1500
DEFAULT_NEGATIVE_MAX = 1000
DEFAULT_MODEL_NAME = "default"
# The most images one job may deliver: a Discord message carries at most 10 attachments.
MAX_IMAGES_PER_JOB = 10


class InvalidRequestError(Exception):
    """A request option is out of bounds; the message names the option and what is allowed."""

    def __init__(self, option: str, problem: str, allowed: str) -> None:
        super().__init__(f"`{option}` {problem}. Allowed: {allowed}.")
        self.option = option
        self.problem = problem
        self.allowed = allowed


class ModelsFileError(Exception):
    """models.toml cannot be used; the message names the file and the problem."""


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
class ImageRequest:
    """A validated request, with every option resolved (defaults applied, seed chosen)."""

    prompt: str
    negative_prompt: str
    size: Size
    steps: int
    guidance: float
    seed: int
    count: int

    def as_dict(self) -> dict[str, Any]:
        """The parameters as stored with the job and shown to members."""
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "width": self.size.width,
            "height": self.size.height,
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": self.seed,
            "count": self.count,
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
    supports_negative: bool = True
    description: str = ""


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
    return {
        "prompt": request.prompt,
        "width": request.size.width,
        "height": request.size.height,
        "num_inference_steps": request.steps,
        "guidance": request.guidance,
        "seed": request.seed,
        "image_format": "png",
    }


PLACEHOLDER = re.compile(r"\{\{\s*(prompt|negative_prompt|seed|width|height|steps|guidance|count)\s*\}\}")


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
    return {"workflow": substitute_workflow(copy.deepcopy(workflow), values)}


SDXL_SIZES = ("1024x1024", "1152x896", "896x1152", "1216x832", "832x1216", "1344x768", "768x1344")
SD15_SIZES = ("512x512", "768x512", "512x768", "640x640")

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "sdxl",
            _diffusers("num_images"),
            Limits(sizes=SDXL_SIZES, max_steps=60, max_guidance=15.0),
            Defaults(size="1024x1024", steps=25, guidance=7.5),
            description="worker-sdxl",
        ),
        Preset(
            "sdxl-turbo",
            _diffusers("num_images"),
            Limits(sizes=("512x512", "768x768", "1024x1024"), max_steps=8, max_guidance=2.0),
            Defaults(size="512x512", steps=2, guidance=0.0),
            description="worker-sdxl-turbo",
        ),
        Preset(
            "sd15",
            _diffusers("num_outputs"),
            Limits(sizes=SD15_SIZES, max_steps=100, max_guidance=20.0),
            Defaults(size="512x512", steps=30, guidance=7.5),
            description="worker-stable_diffusion_v1",
        ),
        Preset(
            "flux",
            _flux,
            Limits(sizes=("1024x1024", "1024x768", "768x1024", "1280x768", "768x1280"), max_steps=50, max_count=1),
            Defaults(size="1024x1024", steps=28, guidance=3.5),
            supports_negative=False,
            description="public Flux endpoints",
        ),
        Preset(
            "a1111",
            _a1111,
            Limits(sizes=SDXL_SIZES + SD15_SIZES, max_steps=100, max_guidance=30.0),
            Defaults(size="1024x1024", steps=25, guidance=7.0),
            description="Automatic1111 workers",
        ),
        Preset(
            "comfyui",
            _comfyui,
            Limits(sizes=SDXL_SIZES, max_steps=100, max_guidance=30.0),
            Defaults(size="1024x1024", steps=25, guidance=7.0),
            description="worker-comfyui with a workflow template",
        ),
    )
}


class ModelEntry(BaseModel):
    """One `[[models]]` table of models.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    endpoint_id: str = Field(min_length=1)
    preset: str
    description: str = ""
    default: bool = False
    defaults: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, Any] = Field(default_factory=dict)
    workflow_file: str | None = None

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str) -> str:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}")
        return preset


@dataclass(frozen=True)
class ModelConfig:
    """A configured model: an endpoint, its preset, and its effective defaults and limits."""

    name: str
    endpoint_id: str
    preset: Preset
    limits: Limits
    defaults: Defaults
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> tuple[str, ...]:
        return self.limits.sizes

    def resolve(self, options: RequestOptions, *, random_seed: Callable[[], int] | None = None) -> ImageRequest:
        """Apply defaults and check every option against the limits; refusals name the option and the range."""
        limits, defaults = self.limits, self.defaults
        prompt = clean_prompt(options.prompt)
        if not prompt:
            raise InvalidRequestError("prompt", "is empty", f"1 to {limits.prompt_max} characters")
        if len(prompt) > limits.prompt_max:
            raise InvalidRequestError(
                "prompt", f"is {len(prompt)} characters long", f"at most {limits.prompt_max} characters"
            )
        negative = clean_prompt(options.negative_prompt) if options.negative_prompt else defaults.negative_prompt
        if negative and not self.preset.supports_negative and options.negative_prompt:
            raise InvalidRequestError("negative", f"is not supported by {self.name}", "leave it empty")
        if len(negative) > limits.negative_max:
            raise InvalidRequestError(
                "negative", f"is {len(negative)} characters long", f"at most {limits.negative_max} characters"
            )
        size_text = options.size or defaults.size
        try:
            size = Size.parse(size_text)
        except ValueError:
            size = None
        if size is None or str(size) not in limits.sizes:
            raise InvalidRequestError("size", f"{size_text!r} is not offered by {self.name}", ", ".join(limits.sizes))
        steps = defaults.steps if options.steps is None else options.steps
        if not limits.min_steps <= steps <= limits.max_steps:
            raise InvalidRequestError("steps", f"{steps} is out of range", f"{limits.min_steps}–{limits.max_steps}")
        guidance = defaults.guidance if options.guidance is None else options.guidance
        if not limits.min_guidance <= guidance <= limits.max_guidance:
            raise InvalidRequestError(
                "guidance", f"{guidance:g} is out of range", f"{limits.min_guidance:g}–{limits.max_guidance:g}"
            )
        count = defaults.count if options.count is None else options.count
        if not 1 <= count <= limits.max_count:
            raise InvalidRequestError("count", f"{count} is out of range", f"1–{limits.max_count}")
        if options.seed is not None and not 0 <= options.seed <= MAX_SEED:
            raise InvalidRequestError("seed", f"{options.seed} is out of range", f"0–{MAX_SEED}")
        seed = options.seed if options.seed is not None else (random_seed or new_seed)()
        return ImageRequest(prompt, negative, size, steps, float(guidance), seed, count)

    def build_input(self, request: ImageRequest) -> dict[str, Any]:
        """The worker's `input` for this request."""
        return self.preset.build_input(request, self.extra)


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

    def get(self, name: str | None) -> ModelConfig:
        """The named model (case-insensitive), or the default; unknown names are refused with the list."""
        wanted = (name or self.default_name).strip().lower()
        for model in self.models:
            if model.name.lower() == wanted:
                return model
        raise InvalidRequestError("model", f"{name!r} is not configured", ", ".join(self.names))

    @property
    def default(self) -> ModelConfig:
        return self.get(None)

    @property
    def names(self) -> list[str]:
        return [model.name for model in self.models]

    @property
    def endpoint_ids(self) -> list[str]:
        return sorted({model.endpoint_id for model in self.models})


def build_model(entry: ModelEntry, base_dir: Path | None = None) -> ModelConfig:
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
    model = ModelConfig(entry.name, entry.endpoint_id, preset, limits, defaults, entry.description, extra)
    # The defaults must themselves be valid, or every request without options would be refused.
    model.resolve(RequestOptions(prompt="check"), random_seed=lambda: 0)
    return model


def default_catalog(endpoint_id: str, preset: str = "sdxl") -> ModelCatalog:
    """One model on `RUNPOD_ENDPOINT_ID` when no models.toml exists."""
    entry = ModelEntry(name=DEFAULT_MODEL_NAME, endpoint_id=endpoint_id, preset=preset, default=True)
    return ModelCatalog((build_model(entry),), DEFAULT_MODEL_NAME)


def load_catalog(path: Path, fallback_endpoint_id: str) -> ModelCatalog:
    """The models of `path`, or a single default model on the fallback endpoint when the file does not exist."""
    if not path.exists():
        return default_catalog(fallback_endpoint_id)
    try:
        data = tomllib.loads(path.read_text())
        entries = [ModelEntry.model_validate(raw) for raw in data.get("models", [])]
    except tomllib.TOMLDecodeError as exc:
        raise ModelsFileError(f"{path} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ModelsFileError(f"{path}: {problems}") from None
    if not entries:
        raise ModelsFileError(f"{path} lists no [[models]]")
    names = [entry.name.lower() for entry in entries]
    if len(set(names)) != len(names):
        raise ModelsFileError(f"{path}: model names must be unique")
    try:
        models = tuple(build_model(entry, path.parent) for entry in entries)
    except (ValidationError, InvalidRequestError) as exc:
        raise ModelsFileError(f"{path}: {exc}") from None
    defaults = [entry.name for entry in entries if entry.default]
    if len(defaults) > 1:
        raise ModelsFileError(f"{path}: only one model may be the default (found {', '.join(defaults)})")
    return ModelCatalog(models, defaults[0] if defaults else entries[0].name)
