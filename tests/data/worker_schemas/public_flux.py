"""Schemas for RunPod's public Flux endpoints, written for these tests (the endpoints publish no INPUT_SCHEMA).

Sources:
- RunPod's documentation, runpod/docs at a900806e253c4f8c16da27d1a4370e72456da4cb (2026-08-20):
  public-endpoints/models/flux-dev.mdx and public-endpoints/models/flux-schnell.mdx. Both document `prompt`
  (required), `negative_prompt`, `width` and `height` (default 1024, "Must be divisible by 64. Range: 256-1536"),
  `num_inference_steps` (dev: default 28, range 1-50; schnell: default 4, range 1-8), `guidance` (default 7.5,
  range 0.0-10.0), `seed` (default -1, random) and `image_format` (default jpeg; png or jpeg). Output:
  `{"image_url": ..., "cost": ...}`, one image.
- The endpoints' code, runpod-workers/public-ep at b4ef5008bed4f1345b41a78682ed0ac7155aabb3 (2025-06-06), MIT:
  flux-dev/src/txt2img_flux_dev.py and flux-schnell/src/txt2img_flux_schnell.py read `guidance_scale` (default 3.5
  for dev, 0.0 for schnell), never `guidance`; flux-*/src/handler.py read `width` and `height` without a default.
  `guidance_scale` has no documented range; it carries the same value as `guidance`, so it gets the same one.
"""

from typing import Any


def _side(value: int) -> bool:
    return 256 <= value <= 1536 and value % 64 == 0


def _schema(steps_default: int, max_steps: int, guidance_scale_default: float) -> dict[str, Any]:
    return {
        "prompt": {"type": str, "required": True},
        "negative_prompt": {"type": str, "required": False, "default": ""},
        "width": {"type": int, "required": False, "default": 1024, "constraints": _side},
        "height": {"type": int, "required": False, "default": 1024, "constraints": _side},
        "num_inference_steps": {
            "type": int,
            "required": False,
            "default": steps_default,
            "constraints": lambda steps: 1 <= steps <= max_steps,
        },
        "guidance": {"type": float, "required": False, "default": 7.5, "constraints": lambda g: 0.0 <= g <= 10.0},
        "guidance_scale": {
            "type": float,
            "required": False,
            "default": guidance_scale_default,
            "constraints": lambda g: 0.0 <= g <= 10.0,
        },
        "seed": {"type": int, "required": False, "default": -1},
        "image_format": {
            "type": str,
            "required": False,
            "default": "jpeg",
            "constraints": lambda fmt: fmt in ("png", "jpeg"),
        },
    }


FLUX_DEV_SCHEMA = _schema(steps_default=28, max_steps=50, guidance_scale_default=3.5)
FLUX_SCHNELL_SCHEMA = _schema(steps_default=4, max_steps=8, guidance_scale_default=0.0)
