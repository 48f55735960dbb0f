"""RunPod's worker SDK (the `runpod` package), installed by `make install` in its own virtualenv, `.venv-worker`.

It is kept out of the bot's environment so the bot is tested with the packages it ships with; the tests reach it
through that virtualenv's Python (`RUNPOD_WORKER_PYTHON` overrides where it is).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKER_PYTHON_VARIABLE = "RUNPOD_WORKER_PYTHON"
DEFAULT_WORKER_PYTHON = REPO / ".venv-worker" / "bin" / "python"


class WorkerSdkMissingError(RuntimeError):
    """The worker SDK's virtualenv is not there: the tests that need it fail instead of skipping."""


def worker_python() -> Path:
    """The Python of the virtualenv that has the `runpod` package."""
    # Absolute: the tests start the worker SDK from other working directories.
    path = Path(os.environ.get(WORKER_PYTHON_VARIABLE) or DEFAULT_WORKER_PYTHON).absolute()
    if not path.exists():
        raise WorkerSdkMissingError(
            f"RunPod's worker SDK is not installed at {path}: run `make install` (it builds .venv-worker from "
            f"worker-requirements.txt), or set {WORKER_PYTHON_VARIABLE} to a Python that has runpod installed"
        )
    return path


@functools.cache
def runpod_package_dir() -> Path:
    """Where the `runpod` package's files are, found without importing it (its import reads ~/.runpod)."""
    found = subprocess.run(
        [
            str(worker_python()),
            "-c",
            "import importlib.util; print(importlib.util.find_spec('runpod').submodule_search_locations[0])",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return Path(found.stdout.strip())
