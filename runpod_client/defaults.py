"""The defaults of the client's numbers that are also settings, in a module that imports nothing.

`FetchPolicy` (runpod_client/outputs.py) takes its defaults from here, and so does the bot's settings: each default
is written once, and reading the settings does not load the HTTP client (aiohttp) with it.
"""

# IMAGE_MAX_MB: the largest image downloaded from a URL in a worker's output.
DEFAULT_MAX_IMAGE_BYTES = 50 * 1024 * 1024
