"""A local RunPod-compatible Serverless endpoint for development and tests (see README.md here).

Never imported by production code: the tests, the benchmarks and `runpod-bot emulator` start it.
"""

from runpod_emulator.config import (
    DEFAULT_API_KEY,
    DEFAULT_ENDPOINT_ID,
    OPERATIONS,
    EmulatorConfig,
    FaultKind,
    FaultRates,
    ProgressStyle,
    RateLimit,
    Scenario,
)
from runpod_emulator.engine import Counters
from runpod_emulator.personalities import PERSONALITIES, Outcome, Personality
from runpod_emulator.server import Emulator, run_emulator

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_ENDPOINT_ID",
    "OPERATIONS",
    "PERSONALITIES",
    "Counters",
    "Emulator",
    "EmulatorConfig",
    "FaultKind",
    "FaultRates",
    "Outcome",
    "Personality",
    "ProgressStyle",
    "RateLimit",
    "Scenario",
    "run_emulator",
]
