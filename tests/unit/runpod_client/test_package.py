"""The package's names: loaded on first use, so a light module comes without the HTTP client."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import runpod_client

REPO = Path(__file__).resolve().parents[3]


def test_importing_errors_and_models_loads_no_http_client() -> None:
    """`runpod_client.errors` and `runpod_client.models` come without aiohttp (the client loads it when used)."""
    code = "import sys, runpod_client.errors, runpod_client.models; print('aiohttp' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "False"


def test_every_exported_name_is_the_one_its_module_defines() -> None:
    """Each name of `__all__` is served, and is the same object as in the module the type checkers are shown."""
    tree = ast.parse((REPO / "runpod_client" / "__init__.py").read_text())
    shown = {
        alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("runpod_client.")
        for alias in node.names
    }
    assert sorted(shown) == sorted(runpod_client.__all__)
    for name, module in shown.items():
        assert getattr(runpod_client, name) is getattr(importlib.import_module(module), name), name
