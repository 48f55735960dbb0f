"""The emulator's pure parts: scenario validation, command-line options, job planning and image drawing."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image
from pydantic import ValidationError

from runpod_emulator import FaultKind, FaultRates, ProgressStyle, Scenario
from runpod_emulator.__main__ import build_parser, config_from_args
from runpod_emulator.engine import progress_value
from runpod_emulator.images import render_png
from runpod_emulator.personalities import InvalidJobInput, plan_job


@pytest.mark.parametrize(
    "fields",
    [
        {"personality": "no-such-worker"},
        {"faults": {"poll": {"reset": 0.1}}},
        {"faults": {"status": {"reset": 0.6, "slow": 0.6}}},
        {"execution_s": [3, 1]},
        {"workers": -1},
    ],
)
def test_invalid_scenarios_are_refused(fields: dict[str, object]) -> None:
    """Unknown personalities or operations, impossible probabilities and reversed ranges do not validate."""
    with pytest.raises(ValidationError):
        Scenario.model_validate(fields)


@pytest.mark.parametrize(
    ("draw", "kind"),
    [(0.0, FaultKind.SERVER_ERROR), (0.15, FaultKind.RATE_LIMITED), (0.35, FaultKind.RESET), (0.65, FaultKind.SLOW)],
)
def test_fault_rates_split_the_unit_interval(draw: float, kind: FaultKind) -> None:
    """Each fault takes its share of [0, 1) in a fixed order; the rest is no fault."""
    rates = FaultRates(server_error=0.1, rate_limited=0.2, reset=0.3, slow=0.1)
    assert rates.pick(draw) == kind
    assert rates.pick(0.75) == FaultKind.NONE


def parse(*argv: str) -> Scenario:
    return config_from_args(build_parser().parse_args(list(argv))).scenario


def test_options_set_ranges_faults_and_limits() -> None:
    """`--execution 1-3`, `--fault`, `--fault-script` and `--rate-limit` land in the scenario."""
    scenario = parse(
        "--execution", "1-3", "--fault", "status:server_error=0.05", "--fault-script", "run=reset,none",
        "--rate-limit", "status=20/10/4",
    )  # fmt: skip
    assert scenario.execution_s == (1.0, 3.0)
    assert scenario.faults["status"].server_error == 0.05
    assert scenario.fault_script["run"] == [FaultKind.RESET, FaultKind.NONE]
    assert (scenario.rate_limits["status"].requests, scenario.rate_limits["status"].concurrent) == (20, 4)
    assert scenario.rate_limits["run"].requests == 1000


def test_explicit_options_override_the_realistic_preset() -> None:
    """`--realistic` brings long timings; an explicit option still wins."""
    scenario = parse("--realistic", "--cold-start", "2")
    assert scenario.cold_start_s == 2.0
    assert scenario.execution_s == (8.0, 25.0)


def test_no_rate_limits_removes_them_all() -> None:
    """`--no-rate-limits` leaves every operation unlimited."""
    assert parse("--no-rate-limits").rate_limits == {}


@pytest.mark.parametrize("argv", [["--execution", "soon"], ["--fault", "status=0.1"], ["--rate-limit", "run=ten/10"]])
def test_malformed_options_exit_with_usage(argv: list[str]) -> None:
    """A malformed option stops with argparse's usage error (exit status 2)."""
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2


def test_personality_comes_from_input_then_prompt_token_then_scenario() -> None:
    """input.emulator.personality beats a [emulator:NAME] token, which beats the scenario's default."""
    rng = random.Random(0)
    scenario = Scenario(personality="flux")
    token = {"prompt": "x [emulator:a1111]"}
    assert plan_job({**token, "emulator": {"personality": "comfyui"}}, scenario, rng).personality.name == "comfyui"
    assert plan_job(token, scenario, rng).personality.name == "a1111"
    assert plan_job({"prompt": "x"}, scenario, rng).personality.name == "flux"


def test_plan_reads_seed_size_and_count_from_the_input() -> None:
    """Seed, size and image count follow the worker inputs; single-image shapes cap the count."""
    rng = random.Random(0)
    plan = plan_job({"prompt": "p", "seed": 9, "width": 320, "height": 200, "batch_size": 3}, Scenario(), rng)
    single = plan_job({"prompt": "p", "num_outputs": 3, "emulator": {"personality": "flux"}}, Scenario(), rng)
    assert (plan.seed, plan.width, plan.height, plan.images) == (9, 320, 200, 3)
    assert single.images == 1


def test_no_progress_personality_overrides_the_progress_style() -> None:
    """The no-progress worker never reports progress, whatever the scenario says."""
    plan = plan_job({"emulator": {"personality": "no-progress", "progress": "dict"}}, Scenario(), random.Random(0))
    assert plan.progress == ProgressStyle.NONE


@pytest.mark.parametrize("options", [{"personality": "nope"}, {"steps": 0}, {"colour": "red"}, "fast"])
def test_invalid_emulator_options_are_refused(options: object) -> None:
    """Unknown personalities, bad values and unknown fields in input.emulator are errors, not silence."""
    with pytest.raises(InvalidJobInput):
        plan_job({"prompt": "p", "emulator": options}, Scenario(), random.Random(0))


@pytest.mark.parametrize(
    ("style", "value"),
    [(ProgressStyle.STEPS, "3/10"), (ProgressStyle.DICT, {"step": 3, "steps": 10}), (ProgressStyle.PERCENT, "30%")],
)
def test_progress_values_look_like_workers_report_them(style: ProgressStyle, value: object) -> None:
    """Each progress style writes what real workers put in output."""
    assert progress_value(style, 3, 10) == value


def test_drawn_image_is_a_png_of_the_requested_size() -> None:
    """The worker's picture is a real PNG of the asked size."""
    image = Image.open(io.BytesIO(render_png("a cat", 1, 200, 120)))
    assert (image.format, image.size) == ("PNG", (200, 120))


def test_drawing_depends_on_prompt_and_seed_only() -> None:
    """The same prompt and seed draw the same picture; another seed or prompt draws another."""
    first = render_png("a cat", 1, 96, 96)
    assert render_png("a cat", 1, 96, 96) == first
    assert render_png("a cat", 2, 96, 96) != first
    assert render_png("a dog", 1, 96, 96) != first


def test_min_bytes_makes_an_oversized_png() -> None:
    """Asking for at least N bytes gives a valid PNG at least that large."""
    data = render_png("big", 3, 64, 64, min_bytes=3_000_000)
    assert len(data) >= 3_000_000
    assert Image.open(io.BytesIO(data)).format == "PNG"
