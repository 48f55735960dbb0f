"""worker-esrgan's INPUT_SCHEMA, copied unchanged.

Source: runpod-workers/worker-esrgan, src/rp_schemas.py, commit 5e5d6a029420b7c1f9fe833adf8b9f692049c512 (2024-10-24).
Licence: MIT, Copyright (c) 2023 runpod-workers (see LICENSE-MIT.txt in this directory).
src/rp_handler.py validates `job["input"]` against it with runpod's rp_validator, downloads `data_url` with the SDK's
`rp_download.file` (an http(s) URL; a zip of images is unpacked) and enlarges each image with Real-ESRGAN's
`enhance(img, outscale=scale)`, so the output is `scale` times the input's width and height whichever model runs. It
returns the list of URLs `rp_upload.files` gives (a bucket's presigned URLs). On a validation error the handler reads
`validated_input["validated_input"]` before it checks for `errors`, so the job fails with a KeyError.
"""

# fmt: off
INPUT_SCHEMA = {
    'data_url': {
        'type': str,
        'required': True
    },
    'model': {
        'type': str,
        'required': False,
        'default': 'RealESRGAN_x4plus',
        'constraints': lambda model: model in [
            'RealESRGAN_x4plus',
            'RealESRNet_x4plus',
            'RealESRGAN_x4plus_anime_6B',
            'RealESRGAN_x2plus',
        ]
    },
    'scale': {
        'type': float,
        'required': False,
        'default': 4,
        'constraints': lambda scale: 0 < scale < 16
    },
    'tile': {
        'type': int,
        'required': False,
        'default': 0,
    },
    'tile_pad': {
        'type': int,
        'required': False,
        'default': 10,
    },
    'pre_pad': {
        'type': int,
        'required': False,
        'default': 0,
    },
    'output_type': {
        'type': str,
        'required': False,
        'default': 'individual',
        'constraints': lambda output_type: output_type in ['individual', 'zip']
    },
}
