"""The defaults of the storage's numbers that are also settings, in a module that imports nothing.

`StoreConfig`, `Keys` and the Redis connections (storage/connection.py) take their defaults from here, and so does
`runpod_bot/settings.py`: each default is written once, and reading the settings does not load redis-py with it.
"""

DAY_S = 24 * 3600
# REDIS_PREFIX: every key starts with it (storage/keys.py).
DEFAULT_PREFIX = "rpb"
# JOB_RECORD_TTL_DAYS: how long a delivered job's record is kept.
DEFAULT_RECORD_TTL_S = 7 * DAY_S
# SUBMIT_LEASE_MS: longer than a /run request with its retries can take, so a submit still in flight is never
# mistaken for a crash.
DEFAULT_SUBMIT_LEASE_MS = 120_000
# REDIS_MAX_CONNECTIONS: the pool is bounded, and a command waits for a free connection instead of failing, so a
# burst of commands queues rather than opening a connection each. This covers the poller (POLL_CONCURRENCY, 32) and
# the submits admitted at once (SUBMIT_CONCURRENCY, 16), with room for everything else (deny-lists, buttons, /readyz).
DEFAULT_MAX_CONNECTIONS = 64
# What one image is taken to cost in GPU time when a budget applies and the model has no recent run times yet (a
# first job on a new endpoint): enough for a typical Stable Diffusion image with a cold start.
DEFAULT_GPU_ESTIMATE_MS = 30_000
