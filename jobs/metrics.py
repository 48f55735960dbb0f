"""Prometheus metrics: what an operator needs to see the bot is healthy and RunPod is not struggling.

Each process has its own registry (tests make fresh ones); `/metrics` serves it in the text format. Counters count
what this process did; the gauges read the shared state in Redis when scraped, so every process reports the same
active-job and due-lag figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from storage.models import JobState
from storage.store import JobStore

PREFIX = "runpod_bot"
# Posting a result usually takes well under a second; a lag in minutes means trouble (RunPod keeps 30).
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0)
CYCLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Metrics:
    """The bot's metrics in one registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        registry = self.registry
        self.jobs_submitted = Counter(
            f"{PREFIX}_jobs_submitted", "Jobs sent to RunPod's /run, by model", ["model"], registry=registry
        )
        self.submits_refused_busy = Counter(
            f"{PREFIX}_submits_refused_busy",
            "Submits refused because no submit slot (SUBMIT_CONCURRENCY) freed up within SUBMIT_WAIT_S",
            registry=registry,
        )
        self.jobs_finished = Counter(
            f"{PREFIX}_jobs_finished", "Jobs delivered, by final state", ["state"], registry=registry
        )
        self.runpod_requests = Counter(
            f"{PREFIX}_runpod_requests",
            "HTTP requests to RunPod, by operation and status (status code, timeout or error)",
            ["operation", "status"],
            registry=registry,
        )
        self.runpod_rate_limited = Counter(
            f"{PREFIX}_runpod_rate_limited", "RunPod answers 429, by operation", ["operation"], registry=registry
        )
        # Labelled by models.toml's names only (`jobs.usage.metric_model`): never by member or server.
        self.gpu_seconds = Counter(
            f"{PREFIX}_gpu_seconds",
            "GPU time RunPod reported (executionTime) for the jobs this process finished, by model",
            ["model"],
            registry=registry,
        )
        self.queue_seconds = Counter(
            f"{PREFIX}_queue_seconds",
            "Time in RunPod's queue (delayTime) of the jobs that used a GPU this process finished, by model",
            ["model"],
            registry=registry,
        )
        self.delivery_failures = Counter(
            f"{PREFIX}_discord_delivery_failures", "Failed attempts to deliver a finished job", registry=registry
        )
        self.delivery_lag = Histogram(
            f"{PREFIX}_delivery_lag_seconds",
            "From the bot seeing a job finished at RunPod to its result being delivered",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.poll_cycle = Histogram(
            f"{PREFIX}_poll_cycle_seconds",
            "Duration of one claim-and-poll cycle",
            buckets=CYCLE_BUCKETS,
            registry=registry,
        )
        self.active_jobs = Gauge(
            f"{PREFIX}_active_jobs", "Unfinished jobs (all processes), by state", ["state"], registry=registry
        )
        self.due_lag = Gauge(
            f"{PREFIX}_due_lag_seconds",
            "How late the most overdue job of an endpoint is (near RunPod's 30-minute retention, results are lost)",
            ["endpoint"],
            registry=registry,
        )

    def record_runpod_response(self, operation: str, outcome: str) -> None:
        """The RunPod client's `on_response` hook."""
        self.runpod_requests.labels(operation=operation, status=outcome).inc()
        if outcome == "429":
            self.runpod_rate_limited.labels(operation=operation).inc()

    async def refresh(self, store: JobStore) -> None:
        """Read the shared gauges from Redis (called before each scrape)."""
        counts = await store.counts()
        for state in JobState:
            if state is not JobState.DELIVERED:
                self.active_jobs.labels(state=state.value).set(counts.get(f"state:{state.value}", 0))
        for endpoint_id in await store.endpoint_ids():
            self.due_lag.labels(endpoint=endpoint_id).set(await store.due_lag_ms(endpoint_id) / 1000)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
