"""The emulator's settings: the fixed part (address, key, endpoint id) and the scenario, changeable at run time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# As long as a real RunPod key must be, so a bot pointed at the emulator accepts it in RUNPOD_API_KEY.
DEFAULT_API_KEY = "emulator-key-for-local-testing-only"
DEFAULT_ENDPOINT_ID = "emulator"

# Quick defaults: a job finishes in a few seconds, cold start included.
DEFAULT_WORKERS = 2
DEFAULT_COLD_START_S = 0.5
DEFAULT_QUEUE_DELAY_S = 0.2
DEFAULT_EXECUTION_S = 2.0
DEFAULT_IDLE_TIMEOUT_S = 5.0
DEFAULT_STEPS = 10
DEFAULT_PERSONALITY = "sdxl"
DEFAULT_IMAGE_SIZE = 512
# RunPod keeps /run results 30 minutes and /runsync results 1 minute.
DEFAULT_RETENTION_S = 1800.0
DEFAULT_RUNSYNC_RETENTION_S = 60.0
DEFAULT_TTL_MS = 24 * 3600 * 1000
DEFAULT_EXECUTION_TIMEOUT_MS = 600_000
# RunPod retries a webhook twice, 10 s apart.
DEFAULT_WEBHOOK_RETRIES = 2
DEFAULT_WEBHOOK_RETRY_DELAY_S = 10.0
DEFAULT_WEBHOOK_TIMEOUT_S = 10.0
DEFAULT_SLOW_REPLY_S = 5.0
DEFAULT_FAULT_RETRY_AFTER_S = 1
DEFAULT_OVERSIZED_BYTES = 25_000_000
# The most images a job can be made to return (`images` of the scenario or of `input.emulator`).
MAX_FORCED_IMAGES = 16

# Realistic timings, for benchmarks and manual checks of the waiting messages.
REALISTIC_TIMINGS: dict[str, Any] = {
    "cold_start_s": (8.0, 40.0),
    "queue_delay_s": (0.3, 2.0),
    "execution_s": (8.0, 25.0),
    "idle_timeout_s": 60.0,
    "steps": 30,
}

OPERATIONS = ("run", "runsync", "status", "stream", "cancel", "retry", "purge-queue", "health")


class FaultKind(StrEnum):
    """What an injected fault does to one request."""

    NONE = "none"
    SERVER_ERROR = "server_error"  # 500 before the request is handled: nothing happened
    RATE_LIMITED = "rate_limited"  # 429 with Retry-After and a non-JSON body, before the request is handled
    RESET = "reset"  # the request is handled, then the connection is reset: the reply is lost
    SLOW = "slow"  # the request is handled, then the reply waits `slow_reply_s`
    BAD_REQUEST = "bad_request"  # 400 `{"error": ...}` before the request is handled
    FORBIDDEN = "forbidden"  # 403 `{"error": ...}` before the request is handled (a key without access)
    GARBLED = "garbled"  # 200 with an HTML body (a proxy's page), before the request is handled


class ProgressStyle(StrEnum):
    """How a running job reports progress in `output`."""

    STEPS = "steps"  # "4/10", as diffusion workers report it
    DICT = "dict"  # {"step": 4, "steps": 10}
    PERCENT = "percent"  # "40%"
    NONE = "none"  # no output until the result


NonNegative = Annotated[float, Field(ge=0)]
# A fixed number of seconds, or [low, high] drawn uniformly from the seeded generator.
Duration = NonNegative | tuple[NonNegative, NonNegative]


def sample(duration: Duration, rng: random.Random) -> float:
    """A value of a duration: itself when fixed, a uniform draw when a range."""
    if isinstance(duration, tuple):
        low, high = duration
        return rng.uniform(low, high)
    return duration


class RateLimit(BaseModel):
    """At most `requests` per `per_s` seconds, and at most `concurrent` at once (None: no limit)."""

    model_config = ConfigDict(extra="forbid")

    requests: int = Field(ge=1)
    per_s: float = Field(default=10.0, gt=0)
    concurrent: int | None = Field(default=None, ge=1)


class FaultRates(BaseModel):
    """Probabilities that a request to an operation meets each fault (their sum at most 1)."""

    model_config = ConfigDict(extra="forbid")

    server_error: float = Field(default=0.0, ge=0, le=1)
    rate_limited: float = Field(default=0.0, ge=0, le=1)
    reset: float = Field(default=0.0, ge=0, le=1)
    slow: float = Field(default=0.0, ge=0, le=1)
    bad_request: float = Field(default=0.0, ge=0, le=1)
    forbidden: float = Field(default=0.0, ge=0, le=1)
    garbled: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _at_most_one(self) -> FaultRates:
        if sum(rate for _kind, rate in self._rates()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities add up to more than 1")
        return self

    def _rates(self) -> tuple[tuple[FaultKind, float], ...]:
        return (
            (FaultKind.SERVER_ERROR, self.server_error),
            (FaultKind.RATE_LIMITED, self.rate_limited),
            (FaultKind.RESET, self.reset),
            (FaultKind.SLOW, self.slow),
            (FaultKind.BAD_REQUEST, self.bad_request),
            (FaultKind.FORBIDDEN, self.forbidden),
            (FaultKind.GARBLED, self.garbled),
        )

    def pick(self, draw: float) -> FaultKind:
        """The fault for a uniform draw in [0, 1)."""
        threshold = 0.0
        for kind, rate in self._rates():
            threshold += rate
            if draw < threshold:
                return kind
        return FaultKind.NONE


def runpod_rate_limits() -> dict[str, RateLimit]:
    """RunPod's documented limits per operation."""
    return {
        "run": RateLimit(requests=1000, per_s=10, concurrent=200),
        "runsync": RateLimit(requests=2000, per_s=10, concurrent=400),
        "status": RateLimit(requests=2000, per_s=10, concurrent=400),
        "stream": RateLimit(requests=2000, per_s=10, concurrent=400),
        "cancel": RateLimit(requests=100, per_s=10, concurrent=20),
        "purge-queue": RateLimit(requests=2, per_s=10),
    }


def _check_operations(value: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(value) - set(OPERATIONS))
    if unknown:
        raise ValueError(f"unknown operation(s) {', '.join(unknown)}; known: {', '.join(OPERATIONS)}")
    return value


class Scenario(BaseModel):
    """Everything about how the emulated endpoint behaves; replaceable while it runs (`/_emulator/scenario`).

    Timings apply to jobs submitted after a change; the worker count applies at once.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    workers: int = Field(default=DEFAULT_WORKERS, ge=0)
    throttled_workers: int = Field(default=0, ge=0)
    unhealthy_workers: int = Field(default=0, ge=0)
    cold_start_s: Duration = DEFAULT_COLD_START_S
    queue_delay_s: Duration = DEFAULT_QUEUE_DELAY_S
    execution_s: Duration = DEFAULT_EXECUTION_S
    idle_timeout_s: float = Field(default=DEFAULT_IDLE_TIMEOUT_S, ge=0)
    steps: int = Field(default=DEFAULT_STEPS, ge=1)
    progress: ProgressStyle = ProgressStyle.STEPS
    personality: str = DEFAULT_PERSONALITY
    image_size: int = Field(default=DEFAULT_IMAGE_SIZE, ge=16, le=4096)
    # Every job returns this many images whatever its input asks for: a worker that ignores the requested count.
    images: int | None = Field(default=None, ge=1, le=MAX_FORCED_IMAGES)
    oversized_bytes: int = Field(default=DEFAULT_OVERSIZED_BYTES, ge=1)
    retention_s: float = Field(default=DEFAULT_RETENTION_S, gt=0)
    runsync_retention_s: float = Field(default=DEFAULT_RUNSYNC_RETENTION_S, gt=0)
    strict_limits: bool = True
    # False: jobs outlive their `policy.ttl` (a RunPod that misbehaves), to test a client's own deadline.
    enforce_ttl: bool = True
    webhook_retries: int = Field(default=DEFAULT_WEBHOOK_RETRIES, ge=0)
    webhook_retry_delay_s: float = Field(default=DEFAULT_WEBHOOK_RETRY_DELAY_S, ge=0)
    webhook_timeout_s: float = Field(default=DEFAULT_WEBHOOK_TIMEOUT_S, gt=0)
    rate_limits: dict[str, RateLimit] = Field(default_factory=runpod_rate_limits)
    faults: dict[str, FaultRates] = Field(default_factory=dict)
    fault_script: dict[str, list[FaultKind]] = Field(default_factory=dict)
    slow_reply_s: float = Field(default=DEFAULT_SLOW_REPLY_S, ge=0)
    fault_retry_after_s: int = Field(default=DEFAULT_FAULT_RETRY_AFTER_S, ge=0)
    # The `output` of jobs of the `custom` personality, verbatim: for testing how clients cope with odd outputs.
    custom_output: Any = None

    @field_validator("cold_start_s", "queue_delay_s", "execution_s")
    @classmethod
    def _ordered_range(cls, value: Duration) -> Duration:
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError("a range is [low, high] with low <= high")
        return value

    @field_validator("rate_limits", "faults", "fault_script")
    @classmethod
    def _known_operations(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_operations(value)

    @field_validator("personality")
    @classmethod
    def _known_personality(cls, value: str) -> str:
        from runpod_emulator.personalities import PERSONALITIES

        if value not in PERSONALITIES:
            raise ValueError(f"unknown personality {value!r}; known: {', '.join(PERSONALITIES)}")
        return value

    @classmethod
    def realistic(cls, **changes: Any) -> Scenario:
        """RunPod-like timings: cold starts of 8–40 s, runs of 8–25 s in 30 steps."""
        return cls.model_validate({**REALISTIC_TIMINGS, **changes})


@dataclass
class EmulatorConfig:
    """How to start an emulator. Port 0 picks a free port."""

    host: str = DEFAULT_HOST
    port: int = 0
    api_key: str = DEFAULT_API_KEY
    endpoint_id: str = DEFAULT_ENDPOINT_ID
    scenario: Scenario = field(default_factory=Scenario)
    # The address image URLs point at, when clients reach the emulator by another name (a container, a proxy).
    public_url: str | None = None
    access_log: bool = False
