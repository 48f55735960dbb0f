"""The reply models: lenient where RunPod is inconsistent, and a short reason from any shape of error."""

from __future__ import annotations

import json

import pytest

from runpod_client import Health, Job, JobStatus, Policy, StreamResult
from runpod_client.models import MAX_DETAIL_CHARS, MAX_ERROR_MESSAGE_CHARS


@pytest.mark.parametrize("raw", ["RUNNING", "PAUSED", ""])
def test_unknown_states_become_unknown_instead_of_failing(raw: str) -> None:
    """A state RunPod documents but does not send, or adds later, parses as UNKNOWN."""
    job = Job.model_validate({"id": "a", "status": raw})
    assert job.status == JobStatus.UNKNOWN
    assert not job.is_finished


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("IN_QUEUE", False), ("IN_PROGRESS", False), ("COMPLETED", True), ("FAILED", True), ("CANCELLED", True)],
)
def test_terminal_states_are_the_last_four(status: str, terminal: bool) -> None:
    """COMPLETED, FAILED, CANCELLED and TIMED_OUT are terminal; live states are not."""
    assert Job.model_validate({"id": "a", "status": status}).is_finished is terminal


def test_timed_out_is_finished() -> None:
    """TIMED_OUT ends a job."""
    assert JobStatus("TIMED_OUT").is_finished


def test_job_keeps_unknown_fields_and_speaks_runpods_names() -> None:
    """Fields RunPod adds survive a round trip; times and worker use camelCase on the way out."""
    raw = {"id": "j-u1", "status": "COMPLETED", "delayTime": 812, "executionTime": 3391.6, "workerId": "w1", "x": 1}
    job = Job.model_validate(raw)
    assert (job.delay_time_ms, job.execution_time_ms, job.worker_id) == (812, 3392, "w1")
    assert job.to_api() == {**raw, "executionTime": 3392}


def test_only_id_and_status_are_required() -> None:
    """A bare /run reply is a whole job."""
    job = Job.model_validate({"id": "j", "status": "IN_QUEUE"})
    assert (job.output, job.error, job.retries, job.error_message) == (None, None, None, None)


def test_plain_error_is_its_own_message() -> None:
    """A plain error string is shown as it is."""
    assert Job(id="j", status=JobStatus.FAILED, error="CUDA out of memory").error_message == "CUDA out of memory"


def test_json_encoded_error_shows_its_error_message() -> None:
    """The SDK's JSON-encoded error shows error_message, not the traceback."""
    error = json.dumps(
        {
            "error_type": "<class 'ValueError'>",
            "error_message": "bad size",
            "error_traceback": "Traceback (most recent call last):\n  ...\nValueError: bad size",
        }
    )
    assert Job(id="j", status=JobStatus.FAILED, error=error).error_message == "bad size"


def test_list_error_is_joined() -> None:
    """A list of errors reads as one line."""
    job = Job(id="j", status=JobStatus.FAILED, error=["first problem", {"message": "second problem"}])
    assert job.error_message == "first problem; second problem"


def test_raw_traceback_is_cut_to_its_last_line() -> None:
    """A traceback sent as plain text shows only the exception line."""
    error = 'Traceback (most recent call last):\n  File "h.py", line 3, in h\n    x()\nRuntimeError: worker crashed\n'
    assert Job(id="j", status=JobStatus.FAILED, error=error).error_message == "RuntimeError: worker crashed"


def test_json_error_without_a_message_falls_back_to_its_type() -> None:
    """A JSON error with only a type still says something."""
    error = json.dumps({"error_type": "<class 'MemoryError'>", "error_traceback": "Traceback ..."})
    assert Job(id="j", status=JobStatus.FAILED, error=error).error_message == "<class 'MemoryError'>"


def test_long_error_is_shortened() -> None:
    """A reason longer than the cap is cut with an ellipsis."""
    message = Job(id="j", status=JobStatus.FAILED, error="x" * 5000).error_message
    assert message is not None
    assert len(message) == MAX_ERROR_MESSAGE_CHARS
    assert message.endswith("…")


COMFYUI_DETAILS = [
    "Workflow execution error: Node Type: CheckpointLoaderSimple, Node ID: 4, Message: HeaderTooLarge",
    "Failed to fetch image data for ComfyUI_00001_.png from /view endpoint.",
]


def test_comfyui_failure_details_follow_its_error() -> None:
    """worker-comfyui's FAILED job (error, and output `{"details": [...]}`) reads as the error and its details."""
    job = Job(id="j", status=JobStatus.FAILED, error="Job processing failed", output={"details": COMFYUI_DETAILS})
    assert job.error_message == f"Job processing failed: {COMFYUI_DETAILS[0]}; {COMFYUI_DETAILS[1]}"


def test_details_inside_the_error_are_shown_too() -> None:
    """An error that is itself `{"error": ..., "details": [...]}` shows both."""
    job = Job(
        id="j",
        status=JobStatus.FAILED,
        error={"error": "Failed to upload one or more input images", "details": ["a.png: bad base64"]},
    )
    assert job.error_message == "Failed to upload one or more input images: a.png: bad base64"


def test_long_details_are_shortened_each_and_together() -> None:
    """Each detail is cut so that several fit, and the whole reason stays under the cap."""
    details = ["a" * 1000, "b" * 1000, "c" * 1000]
    message = Job(id="j", status=JobStatus.FAILED, error="Job processing failed", output={"details": details})
    assert message.error_message is not None
    assert len(message.error_message) <= MAX_ERROR_MESSAGE_CHARS
    assert "a" * MAX_DETAIL_CHARS not in message.error_message
    assert "…; bbb" in message.error_message


def test_health_counts_default_to_zero() -> None:
    """Missing or null counts read as 0; unknown ones are kept."""
    health = Health.model_validate({"jobs": {"inQueue": 3, "failed": None}, "workers": None, "extra": True})
    assert (health.jobs.in_queue, health.jobs.failed, health.jobs.completed) == (3, 0, 0)
    assert health.workers.idle == 0
    assert health.model_extra == {"extra": True}


def test_policy_is_sent_in_camel_case_without_unset_fields() -> None:
    """Only the fields set are sent, under RunPod's names."""
    assert Policy(execution_timeout=60_000, low_priority=True).to_api() == {
        "executionTimeout": 60_000,
        "lowPriority": True,
    }
    assert Policy().to_api() == {}


def test_stream_without_items_is_empty() -> None:
    """A /stream reply with a null stream has no outputs."""
    result = StreamResult.model_validate({"status": "IN_PROGRESS", "stream": None})
    assert (result.status, result.outputs) == (JobStatus.IN_PROGRESS, [])
