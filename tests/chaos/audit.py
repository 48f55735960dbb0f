"""The end-of-run audit: what each member submitted, against what Discord shows, what Redis holds and what RunPod ran.

Definitions (docs/reliability.md states them for readers):
- A *submission* is one `/imagine` interaction the suite sent that reached a bot session. It becomes a *job* once
  the bot recorded it in Redis: from then on the bot owes the member an answer. A submission the bot never
  recorded (it died before, or just after, acknowledging it) is *unanswered*: Discord tells the member the
  application did not respond, and nothing was recorded or paid for (the audit checks that no RunPod job exists).
- *delivered*: the job's result message (images; its buttons name the job) exists; *duplicates*: more than one does.
- *explained*: no result, but the job card shows a final state with its reason (Failed, Cancelled, Timed out,
  Result expired, Outcome unknown), or the member got an ephemeral refusal.
- *lost*: anything else.
RunPod's side comes from the emulator: every job it created is matched to a submission, by the seed in its output
(each submission asks for its own seed) or by the RunPod id the bot stored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import asdict, dataclass, field
from typing import Any

from jobs.labels import STATE_LABELS
from jobs.reasons import Reason
from storage.models import JobState, TrackedJob
from tests.fakes.discord.views import InteractionView, MessageView, VersionView

BUTTON = 2
SUBMITTED_PREFIXES = ("Submitted", "Already submitted")
FINAL_TITLES = {
    STATE_LABELS[state]: state
    for state in (JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.EXPIRED, JobState.SUBMIT_UNKNOWN)
}
LIVE_TITLES = (STATE_LABELS[JobState.SUBMITTING], STATE_LABELS[JobState.QUEUED], STATE_LABELS[JobState.RUNNING])
EXPLAINING_FIELDS = ("Reason", "Cancelled by")


@dataclass(frozen=True)
class Submission:
    """One `/imagine` the suite sent: who, where, and the seed that identifies its RunPod job."""

    index: int
    interaction_id: int
    user_id: int
    channel_id: int
    seed: int
    prompt: str
    # When it was sent (monotonic seconds).
    sent_at: float = 0.0


@dataclass(frozen=True)
class RunPodJob:
    """A job the emulator created, with the seed of its output when it completed."""

    id: str
    status: str
    seed: int | None


@dataclass(frozen=True)
class Verdict:
    """What became of one submission."""

    submission: Submission
    kind: str  # delivered | explained | refused | unanswered | lost
    jid: str | None
    results: int
    runpod_jobs: int
    final_state: JobState | None
    detail: str = ""
    answer: str = ""


@dataclass
class ChaosReport:
    """The run's numbers. The first eight are the suite's contract; the rest explain them."""

    jobs: int
    delivered: int
    duplicates: int
    lost: int
    submit_unknown: int
    run_calls: int
    kills: int
    redis_restarts: int
    explained: int = 0
    refused: int = 0
    unanswered: int = 0
    cancel_clicks: int = 0
    cancelled: int = 0
    never_reached_runpod: int = 0
    paid_duplicates: int = 0
    unmatched_runpod_jobs: int = 0
    run_requests: int = 0
    run_rejected: int = 0
    run_resets: int = 0
    stale_cards: int = 0
    duplicate_cards: int = 0
    stuck_records: int = 0
    crashes: int = 0
    error_answers: int = 0
    submit_unknown_cut_short: int = 0
    settled: bool = True
    seed: int = 0
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """The JSON line: the contract's keys first, then the details, then the verdict."""
        data = asdict(self)
        data["ok"] = self.ok
        return data


def answer_text(view: InteractionView) -> str:
    """Everything the bot told the member in answer to the interaction."""
    parts: list[str] = []
    response = view["response"]
    if response is not None and response["data"]:
        parts.append(str(response["data"].get("content") or ""))
    if view["original_message"] is not None:
        parts.append(view["original_message"]["content"])
    parts += [message["content"] for message in view["followups"]]
    return "\n".join(part for part in parts if part)


def footer_job(message: MessageView) -> str | None:
    """The job a message is about: a card's embed footer (`job <jid>`), or a result's buttons (`job:<action>:<jid>`)."""
    for embed in message["embeds"]:
        text = str((embed.get("footer") or {}).get("text", ""))
        if text.startswith("job "):
            return text.removeprefix("job ")
    pending = list(message["components"])
    while pending:
        component = pending.pop(0)
        custom_id = str(component.get("custom_id") or "")
        if component.get("type") == BUTTON and custom_id.startswith("job:"):
            return custom_id.rsplit(":", 1)[1]
        pending += list(component.get("components") or [])
    return None


def _field_names(message: MessageView) -> set[str]:
    return {str(item.get("name")) for embed in message["embeds"] for item in embed.get("fields", [])}


def _version_title(version: VersionView) -> str:
    title = str(version["embeds"][0].get("title") or "") if version["embeds"] else ""
    return f"{title} @{version['at'][11:23]}"


def _title(message: MessageView) -> str:
    return str(message["embeds"][0].get("title") or "") if message["embeds"] else ""


@dataclass
class _Discord:
    results: dict[str, list[MessageView]]
    cards: dict[str, list[MessageView]]

    @classmethod
    def index(cls, messages: Iterable[MessageView]) -> _Discord:
        results: dict[str, list[MessageView]] = defaultdict(list)
        cards: dict[str, list[MessageView]] = defaultdict(list)
        for message in messages:
            jid = footer_job(message)
            if jid is None or message["deleted"]:
                continue
            (results if message["attachments"] else cards)[jid].append(message)
        return cls(results, cards)


def card_explains(card: MessageView) -> JobState | None:
    """The final state a card shows with its explanation, or None when it shows none."""
    state = FINAL_TITLES.get(_title(card))
    if state is None:
        return None
    if state is JobState.CANCELLED or _field_names(card) & set(EXPLAINING_FIELDS):
        return state
    return None


def match_runpod_jobs(
    submissions: Sequence[Submission], runpod_jobs: Iterable[RunPodJob], records: Iterable[TrackedJob]
) -> tuple[dict[int, list[str]], list[str]]:
    """RunPod job ids per submission index, and the ids no submission accounts for."""
    by_seed = {submission.seed: submission.index for submission in submissions}
    by_request = {str(submission.interaction_id): submission.index for submission in submissions}
    by_runpod_id = {
        record.runpod_id: by_request[record.request_id]
        for record in records
        if record.runpod_id and record.request_id in by_request
    }
    matched: dict[int, list[str]] = defaultdict(list)
    unmatched: list[str] = []
    for job in runpod_jobs:
        index = by_runpod_id.get(job.id)
        if index is None and job.seed is not None:
            index = by_seed.get(job.seed)
        if index is None:
            unmatched.append(job.id)
        else:
            matched[index].append(job.id)
    return matched, unmatched


def judge(
    submission: Submission,
    interaction: InteractionView | None,
    record: TrackedJob | None,
    discord: _Discord,
    runpod_jobs: int,
) -> Verdict:
    """Classify one submission (see the module docstring)."""
    jid = record.jid if record is not None else None
    results = discord.results.get(jid, []) if jid else []
    cards = discord.cards.get(jid, []) if jid else []
    final_state = record.final_state if record is not None else None

    answer = answer_text(interaction) if interaction is not None else ""

    def verdict(kind: str, detail: str = "") -> Verdict:
        return Verdict(submission, kind, jid, len(results), runpod_jobs, final_state, detail, answer)

    if results:
        return verdict("delivered")
    if final_state is JobState.COMPLETED:
        # Finished with images that never reached the channel: no card or answer makes up for that.
        return verdict("lost", "completed, but no result message")
    for card in cards:
        shown = card_explains(card)
        if shown is not None:
            return verdict("explained", shown.value)
    if answer and not answer.startswith(SUBMITTED_PREFIXES):
        return verdict("refused", answer.splitlines()[0][:120])
    if record is None:
        acknowledged = interaction is not None and interaction["response"] is not None
        return verdict("unanswered", "acknowledged, never recorded" if acknowledged else "never acknowledged")
    titles = ", ".join(_title(card) for card in cards) or "no card"
    return verdict("lost", f"record {record.state.value}/{final_state}, {titles}, answer {answer[:80]!r}")


def audit(
    submissions: Sequence[Submission],
    interactions: Mapping[int, InteractionView],
    messages: Iterable[MessageView],
    records: Sequence[TrackedJob],
    runpod_jobs: Sequence[RunPodJob],
    counters: Mapping[str, Any],
    *,
    kills: int,
    redis_restarts: int,
    run_resets: int,
    crashes: int,
    cut_short: Set[int],
    settled: bool,
    seed: int,
) -> tuple[ChaosReport, list[Verdict]]:
    """Compare what was submitted with what Discord, Redis and RunPod show; the report lists every problem.

    `cut_short` are the submissions a killed gateway holder had not answered: the only ones that may end "outcome
    unknown" besides those whose /run was reset (their member is told at once).
    """
    discord = _Discord.index(messages)
    by_request = {record.request_id: record for record in records if record.request_id}
    matched, unmatched = match_runpod_jobs(submissions, runpod_jobs, records)
    verdicts = [
        judge(
            submission,
            interactions.get(submission.interaction_id),
            by_request.get(str(submission.interaction_id)),
            discord,
            len(matched.get(submission.index, [])),
        )
        for submission in submissions
    ]
    kinds = Counter(verdict.kind for verdict in verdicts)
    requests = counters.get("requests", {}).get("run", {})
    rejected = sum(count for status, count in requests.items() if status == "429" or status.startswith("5"))
    report = ChaosReport(
        jobs=len(submissions),
        delivered=kinds["delivered"],
        duplicates=sum(1 for verdict in verdicts if verdict.results > 1),
        lost=kinds["lost"],
        submit_unknown=sum(1 for record in records if record.final_state is JobState.SUBMIT_UNKNOWN),
        run_calls=int(counters.get("totals", {}).get("submitted", 0)),
        kills=kills,
        redis_restarts=redis_restarts,
        explained=kinds["explained"],
        refused=kinds["refused"],
        unanswered=kinds["unanswered"],
        cancelled=sum(1 for record in records if record.final_state is JobState.CANCELLED),
        never_reached_runpod=sum(1 for verdict in verdicts if verdict.runpod_jobs == 0),
        paid_duplicates=sum(max(0, verdict.runpod_jobs - 1) for verdict in verdicts),
        unmatched_runpod_jobs=len(unmatched),
        run_requests=int(counters.get("received", {}).get("run", 0)),
        run_rejected=rejected,
        run_resets=run_resets,
        stale_cards=sum(1 for cards in discord.cards.values() if cards and _title(cards[-1]).startswith(LIVE_TITLES)),
        duplicate_cards=sum(1 for cards in discord.cards.values() if len(cards) > 1),
        stuck_records=sum(1 for record in records if record.state is not JobState.DELIVERED),
        crashes=crashes,
        error_answers=sum(1 for verdict in verdicts if "error id" in verdict.answer),
        settled=settled,
        seed=seed,
    )
    report.submit_unknown_cut_short = sum(
        1
        for verdict in verdicts
        if verdict.final_state is JobState.SUBMIT_UNKNOWN and verdict.submission.index in cut_short
    )
    report.problems = _problems(report, verdicts, cut_short)
    index_of = {verdict.jid: verdict.submission.index for verdict in verdicts if verdict.jid}
    for jid, cards in discord.cards.items():
        if cards and _title(cards[-1]).startswith(LIVE_TITLES):
            record = next((record for record in records if record.jid == jid), None)
            state = record.final_state.value if record is not None else "no record"
            versions = " > ".join(_version_title(version) for version in cards[-1]["history"])
            report.problems.append(f"stale card: #{index_of.get(jid, '?')} job {jid} ({state}): {versions}")
        if len(cards) > 1:
            report.problems.append(f"{len(cards)} cards for #{index_of.get(jid, '?')} job {jid}")
    return report, verdicts


def _problems(report: ChaosReport, verdicts: Sequence[Verdict], cut_short: Set[int]) -> list[str]:
    problems: list[str] = []
    expected_runs = report.jobs - report.never_reached_runpod
    checks = [
        (report.lost == 0, f"{report.lost} job(s) lost"),
        (report.duplicates == 0, f"{report.duplicates} job(s) with more than one result message"),
        (report.run_calls == expected_runs, f"RunPod ran {report.run_calls} jobs for {expected_runs} submissions"),
        (report.paid_duplicates == 0, f"{report.paid_duplicates} submission(s) paid for more than once"),
        (report.unmatched_runpod_jobs == 0, f"{report.unmatched_runpod_jobs} RunPod job(s) match no submission"),
        (
            report.submit_unknown <= report.kills + report.run_resets,
            f"{report.submit_unknown} outcome-unknown jobs for {report.kills} kills, {report.run_resets} /run resets",
        ),
        (report.stale_cards == 0, f"{report.stale_cards} card(s) still show a live job after the run settled"),
        (report.duplicate_cards == 0, f"{report.duplicate_cards} job(s) with more than one card"),
        (report.stuck_records == 0, f"{report.stuck_records} job record(s) never reached DELIVERED"),
        (report.crashes == 0, f"{report.crashes} bot process(es) exited on their own"),
        (report.settled, "the system did not settle before the deadline"),
    ]
    problems += [message for passed, message in checks if not passed]
    for verdict in verdicts:
        if (
            verdict.final_state is JobState.SUBMIT_UNKNOWN
            and verdict.submission.index not in cut_short
            and Reason.SUBMIT_UNKNOWN not in verdict.answer
        ):
            problems.append(f"outcome unknown with no kill or /run reset to explain it: #{verdict.submission.index}")
        if verdict.kind == "lost":
            problems.append(f"lost: #{verdict.submission.index} job {verdict.jid}: {verdict.detail}")
        elif verdict.kind == "unanswered" and verdict.runpod_jobs:
            problems.append(f"paid but never recorded: #{verdict.submission.index}")
        elif verdict.kind == "delivered" and verdict.runpod_jobs == 0:
            problems.append(f"delivered without a RunPod job: #{verdict.submission.index} job {verdict.jid}")
        elif (
            verdict.kind == "refused"
            and verdict.runpod_jobs
            and verdict.final_state is not JobState.SUBMIT_UNKNOWN
            and verdict.final_state is not JobState.CANCELLED
        ):
            problems.append(
                f"refused but RunPod ran it: #{verdict.submission.index} job {verdict.jid} ({verdict.detail})"
            )
    return problems
