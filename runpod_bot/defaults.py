"""The defaults of the HTTP app's numbers that are also settings, in a module that imports nothing.

`runpod_bot.web.serve` takes its defaults from here, and so does `runpod_bot/settings.py`: each default is written
once, and reading the settings does not load aiohttp's server with it.
"""

# HTTP_HOST, HTTP_PORT: where /healthz, /readyz, /metrics and the webhooks are served.
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
