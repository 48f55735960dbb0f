"""A schema for worker-comfyui's input, written for these tests (the worker checks its input in code, not a schema).

Source: runpod-workers/worker-comfyui, handler.py (`validate_input`), commit d2a557235b3800d68dcc6fa3259125fdf4bed8a6
(2026-03-20). Licence of the source: AGPL-3.0; nothing is copied, this only restates what `validate_input` accepts:
`workflow` (required; a dict, or a JSON string of one), `images` (optional list of `{"name", "image"}`) and
`comfy_org_api_key` (optional). Sizes, steps and the like live inside the workflow, so the worker documents no limits
for them. On failure the handler returns `{"error": "...", "details": [...]}`.
"""

from typing import Any

INPUT_SCHEMA: dict[str, Any] = {
    "workflow": {"type": dict, "required": True},
    "images": {"type": list, "required": False, "default": None},
    "comfy_org_api_key": {"type": str, "required": False, "default": None},
}
