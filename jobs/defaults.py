"""The defaults of the job core's numbers that are also settings, in a module that imports nothing.

`PollPolicy`, `PollerSettings` and `RunSettings` take their defaults from here, and so does `runpod_bot/settings.py`:
each default is written once, and reading the settings does not load the core (the poller, the HTTP client, the
prompt filter) with it.
"""

# PollPolicy (jobs/policy.py): POLL_*, DELIVERY_LEASE_MS.
DEFAULT_FIRST_POLL_MS = 2_000
DEFAULT_QUEUED_MIN_MS = 2_000
DEFAULT_QUEUED_MAX_MS = 15_000
DEFAULT_RUNNING_MIN_MS = 500
DEFAULT_RUNNING_MAX_MS = 5_000
DEFAULT_DELIVERY_LEASE_MS = 60_000
DEFAULT_JITTER = 0.1

# PollerSettings (jobs/poller.py): POLL_CONCURRENCY, POLL_LEASE_MS, STATUS_BUDGET_PER_S.
DEFAULT_CONCURRENCY = 32
DEFAULT_CLAIM_LEASE_MS = 30_000
# 80% of RunPod's 2000 /status per 10 s, shared by every process through Redis.
DEFAULT_STATUS_BUDGET_PER_S = 160

# RunSettings (jobs/service.py): EXECUTION_TIMEOUT_S, MAX_QUEUE_WAIT_S, SUBMIT_CONCURRENCY, SUBMIT_WAIT_S.
DEFAULT_EXECUTION_TIMEOUT_MS = 10 * 60 * 1000
# A job no worker has started after this long is cancelled: past it, the member has likely given up waiting.
DEFAULT_MAX_QUEUE_WAIT_MS = 30 * 60 * 1000
# Submits in progress at once per process. Each holds at most one Redis connection, one Discord request and one /run
# at a time, so this stays well inside the Redis pool, the HTTP session's 100 connections and RunPod's 200 /run at once.
DEFAULT_SUBMIT_CONCURRENCY = 16
# How long a submit waits for its turn before the member is told the bot is busy. The interaction is already
# acknowledged (Discord's 3 s apply to the defer only), and its followup token lasts 15 minutes.
DEFAULT_SUBMIT_WAIT_S = 30.0

# RunPod's policy.ttl (`jobs.service.policy_ttl_ms`), which bounds MAX_QUEUE_WAIT_S + EXECUTION_TIMEOUT_S.
# RunPod keeps a /run job's result this long after it finishes, but deletes every job when its policy.ttl runs out,
# whatever its state: the ttl must leave the whole retention after the latest possible finish.
RUNPOD_RETENTION_MS = 30 * 60 * 1000
# Covers what can push a finish past queue wait + execution timeout: the poll that notices an over-long wait comes a
# little after the limit (up to a minute with webhooks) and the /cancel takes time, during which a worker may start
# the job; RunPod's clock starts before the bot records the submit.
TTL_MARGIN_MS = 5 * 60 * 1000
# RunPod's allowed range for policy.ttl.
MIN_POLICY_TTL_MS = 10_000
MAX_POLICY_TTL_MS = 7 * 24 * 3600 * 1000
