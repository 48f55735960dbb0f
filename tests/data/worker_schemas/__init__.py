"""The input schemas of the workers the presets target, in the format of runpod's `rp_validator`.

Three are copied unchanged from MIT-licensed worker repositories (worker_sdxl, worker_sdxl_turbo,
worker_stable_diffusion_v1; licence in LICENSE-MIT.txt). The others were written for these tests from what a worker
documents or reads, because it has no such schema: public_flux (RunPod's docs and the endpoints' code), worker_a1111
and worker_comfyui. Each file names its source, path and commit.
"""
