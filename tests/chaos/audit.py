"""The end-of-run audit: what each member submitted, against what Discord shows, what Redis holds and what RunPod ran.

Definitions (docs/reliability.md states them for readers):
- A *submission* is one `/imagine` interaction the suite sent that reached a bot session, or one *press* of a button
  on a result (V<n>, U<n>, Re-roll, or Remix and its form): each press is a submission of its own. It becomes a
  *job* once the bot recorded it in Redis: from then on the bot owes the member an answer. A submission the bot never
  recorded (it died before, or just after, acknowledging it) is *unanswered*: Discord tells the member the
  application did not respond, and nothing was recorded or paid for (the audit checks that no RunPod job exists).
- *delivered*: the job's result message (images; its buttons name the job) exists; *duplicates*: more than one does.
- *explained*: no result, but the job card shows a final state with its reason (Failed, Cancelled, Timed out,
  Result expired, Outcome unknown), or the member got an ephemeral refusal.
- *lost*: anything else.
RunPod's side comes from the emulator: every job it created is matched to a submission, by the RunPod id the bot
stored, else by what its input asked: the seed (each `/imagine` asks for its own; a press's is in its job's record)
or, for an upscale (whose input has no seed), the link of the image it enlarges.
A press's job must name the job it was pressed on (its record's parent, `jobs/lineage.py`), and the image of a
delivered V<n> or U<n> must be drawn from image n of that job's result (the emulator draws over, or enlarges, the
image it was given: `drawn_from` compares the pixels).
*GPU time counted once*: every job whose end the bot heard from RunPod (its record keeps RunPod's final status) and
that RunPod reports an `executionTime` for is marked counted, no other is, and the usage sums in Redis hold exactly
those jobs and the sum of their `executionTime` as the emulator reports it (`GpuUsage`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image, ImageChops, ImageStat

from cogs.jobs_ui import CARD_WAIT_NOTE_START
from jobs.labels import STATE_LABELS
from jobs.lineage import Derivation, Parent, parent_of
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
IMAGINE = "imagine"
# The buttons a member presses on a result, and how the job each press makes names the pressed job (jobs/lineage.py).
PRESS_DERIVATIONS = {
    "vary": Derivation.VARIATION,
    "upscale": Derivation.UPSCALE,
    "reroll": Derivation.REROLL,
    "remix": Derivation.REMIX,
}
# The presses that start from one image of the result: V<n> and U<n>.
IMAGE_PRESSES = ("vary", "upscale")
PRESS_LABELS = {"vary": "V{image}", "upscale": "U{image}", "reroll": "Re-roll", "remix": "Remix"}
# The emulator's caption sits at the bottom of an image; the top quarter shows what it was drawn from.
TOP_STRIP = 0.25
# The mean difference per channel (0-255) below which two top strips show the same picture: a variation's strip is
# its source's (resized at most), an upscale's its source's enlarged; two images of a job differ by far more.
SAME_PICTURE = 8.0


@dataclass(frozen=True)
class Submission:
    """One `/imagine` the suite sent (`action` "imagine": who, where, and the seed that identifies its RunPod job),
    or one press of a button on the result of submission `parent` (`action` "vary" or "upscale" on image `image`,
    "reroll" or "remix"; the bot draws a press's seed)."""

    index: int
    interaction_id: int
    user_id: int
    channel_id: int
    seed: int | None
    prompt: str
    # When it was sent (monotonic seconds).
    sent_at: float = 0.0
    action: str = IMAGINE
    parent: int | None = None
    image: int | None = None
    # Whether Discord gave it to a session of a bot process running then (not only to sessions of processes
    # stopped or killed, or ended by op 9, which Discord keeps for a while): such a submission must be answered.
    reached: bool = True

    @property
    def is_press(self) -> bool:
        return self.action != IMAGINE

    @property
    def label(self) -> str:
        """ "#0012", or for a press "#0304 (V2 on #0012)"."""
        if not self.is_press:
            return f"#{self.index:04d}"
        return f"#{self.index:04d} ({PRESS_LABELS[self.action].format(image=self.image)} on #{self.parent:04d})"


@dataclass(frozen=True)
class RunPodJob:
    """A job the emulator created: the seed its input asked for (or its output shows), and the link of the image it
    started from (an img2img or upscale input), when it had one."""

    id: str
    status: str
    seed: int | None
    source: str | None = None
    # The executionTime RunPod reports (None: no worker started it).
    execution_ms: int | None = None


@dataclass(frozen=True)
class GpuUsage:
    """What Redis holds of the run's GPU time: the usage sums (all months) and the jobs marked counted."""

    jobs: int
    gpu_ms: int
    counted: frozenset[str]


# RunPod's final states: a record that keeps one heard the job's end from RunPod (and its executionTime with it).
RUNPOD_FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})


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
    # The parent its record names (a press's job must name the job it was pressed on).
    recorded_parent: Parent | None = None


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
    # The presses among the submissions (V<n>, U<n>, Re-roll, Remix), by outcome and by button.
    presses: int = 0
    presses_delivered: int = 0
    presses_explained: int = 0
    presses_refused: int = 0
    presses_unanswered: int = 0
    press_actions: dict[str, int] = field(default_factory=dict)
    # Press jobs whose record names another parent, and V<n>/U<n> results not drawn from image n (both must be 0).
    wrong_parents: int = 0
    wrong_sources: int = 0
    # Jobs that used a GPU by RunPod's report and their executionTime, and what the usage sums counted (must match).
    gpu_jobs: int = 0
    gpu_ms: int = 0
    gpu_jobs_counted: int = 0
    gpu_ms_counted: int = 0
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
    # Discord's own failures: op 7 and op 9 sent to the gateway holder, injected 5xx and 429 answers to message
    # posts and card edits, interactions whose first answer came after Discord's 3 s deadline (refused: 10062),
    # and the 429s the fake's real rate limits sent. Submissions answered late must not have started a job that
    # shows nowhere: `late_jobs` counts those recorded anyway (each must then have its card or result).
    gateway_reconnects: int = 0
    gateway_invalid_sessions: int = 0
    discord_5xx: int = 0
    discord_429: int = 0
    late_callbacks: int = 0
    late_jobs: int = 0
    discord_rate_limited: int = 0
    # Submissions Discord gave to no running bot process (only to sessions of processes gone): never answered.
    unreached: int = 0
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
    """Everything the bot told the member in answer to the interaction (not its note that the card waits for its
    turn, which the answer replaces)."""
    parts: list[str] = []
    response = view["response"]
    if response is not None and response["data"]:
        parts.append(str(response["data"].get("content") or ""))
    if view["original_message"] is not None:
        parts.append(view["original_message"]["content"])
    parts += [message["content"] for message in view["followups"]]
    return "\n".join(part for part in parts if part and not part.startswith(CARD_WAIT_NOTE_START))


def is_answered(view: InteractionView) -> bool:
    """Whether the member got the bot's final answer (not just "thinking…", nor the note that the card waits)."""
    original = view["original_message"]
    shown = original is not None and bool(original["content"]) and not is_wait_note(original["content"])
    return bool(view["followups"]) or shown


def is_wait_note(content: str) -> bool:
    """The bot's note that the card waits for its turn in a busy channel (the answer replaces it)."""
    return content.startswith(CARD_WAIT_NOTE_START)


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


def result_messages(messages: Iterable[MessageView]) -> dict[str, list[MessageView]]:
    """The result messages (with images) of each job, by job id."""
    return _Discord.index(messages).results


def match_runpod_jobs(
    submissions: Sequence[Submission], runpod_jobs: Iterable[RunPodJob], records: Iterable[TrackedJob]
) -> tuple[dict[int, list[str]], list[str]]:
    """RunPod job ids per submission index, and the ids no submission accounts for: by the RunPod id a record
    stored, else by the input's seed (an `/imagine`'s own, or the one a press's record holds), else by the image an
    upscale's input enlarges (an upscale's record keeps its parent's seed, and its input has none)."""
    by_request = {str(submission.interaction_id): submission.index for submission in submissions}
    by_seed = {submission.seed: submission.index for submission in submissions if submission.seed is not None}
    by_runpod_id: dict[str, int] = {}
    by_source: dict[str, int] = {}
    for record in records:
        index = by_request.get(record.request_id or "")
        if index is None:
            continue
        if record.runpod_id:
            by_runpod_id[record.runpod_id] = index
        parent = parent_of(record)
        source = record.request.get("source_image_url")
        seed = record.request.get("seed")
        if parent is not None and parent.how is Derivation.UPSCALE:
            if isinstance(source, str):
                by_source[source] = index
        elif isinstance(seed, int):
            by_seed.setdefault(seed, index)
    matched: dict[int, list[str]] = defaultdict(list)
    unmatched: list[str] = []
    for job in runpod_jobs:
        index = by_runpod_id.get(job.id)
        if index is None and job.seed is not None:
            index = by_seed.get(job.seed)
        if index is None and job.source is not None:
            index = by_source.get(job.source)
        if index is None:
            unmatched.append(job.id)
        else:
            matched[index].append(job.id)
    return matched, unmatched


def _top(image: Image.Image) -> Image.Image:
    return image.convert("RGB").crop((0, 0, image.width, max(1, int(image.height * TOP_STRIP))))


def picture_difference(one: Image.Image, other: Image.Image) -> float:
    """The mean difference of two images' top strips per channel, `other` resized to `one` (0: the same)."""
    top, other_top = _top(one), _top(other)
    return sum(ImageStat.Stat(ImageChops.difference(top, other_top.resize(top.size))).mean) / 3


def drawn_from(image: Image.Image, candidates: Sequence[Image.Image]) -> int | None:
    """Which of `candidates` (1-based) `image` was drawn from or enlarged from: the closest whose picture it shows,
    or None when it shows none of them. CPU-bound: call it in a worker thread."""
    differences = [picture_difference(image, candidate) for candidate in candidates]
    if not differences or min(differences) >= SAME_PICTURE:
        return None
    return differences.index(min(differences)) + 1


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
    recorded_parent = parent_of(record) if record is not None else None

    def verdict(kind: str, detail: str = "") -> Verdict:
        return Verdict(submission, kind, jid, len(results), runpod_jobs, final_state, detail, answer, recorded_parent)

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
    sources: Mapping[int, int | None] | None = None,
    usage: GpuUsage | None = None,
    late: Set[int] = frozenset(),
) -> tuple[ChaosReport, list[Verdict]]:
    """Compare what was submitted with what Discord, Redis and RunPod show; the report lists every problem.

    `cut_short` are the submissions a killed gateway holder had not answered: the only ones that may end "outcome
    unknown" besides those whose /run was reset (their member is told at once). `sources` says, for each delivered
    V<n> or U<n> press, which image of its parent's result its image was drawn from (`drawn_from`; None: none).
    `usage` is what Redis counted of the GPU time (None: not checked).
    `late` are the submissions whose first answer reached Discord after its 3 s deadline (refused). A submission
    that reached a running bot must be answered, unless a kill cut it short or it came late.
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
    report.late_jobs = sum(1 for verdict in verdicts if verdict.submission.index in late and verdict.jid is not None)
    report.unreached = sum(1 for verdict in verdicts if not verdict.submission.reached)
    press_problems = _count_presses(report, verdicts, sources or {})
    gpu_problems = _count_gpu_time(report, records, runpod_jobs, usage) if usage is not None else []
    report.problems = _problems(report, verdicts, cut_short, late) + press_problems + gpu_problems
    label_of = {verdict.jid: verdict.submission.label for verdict in verdicts if verdict.jid}
    for jid, cards in discord.cards.items():
        if cards and _title(cards[-1]).startswith(LIVE_TITLES):
            record = next((record for record in records if record.jid == jid), None)
            state = record.final_state.value if record is not None else "no record"
            versions = " > ".join(_version_title(version) for version in cards[-1]["history"])
            report.problems.append(f"stale card: {label_of.get(jid, '?')} job {jid} ({state}): {versions}")
        if len(cards) > 1:
            report.problems.append(f"{len(cards)} cards for {label_of.get(jid, '?')} job {jid}")
    return report, verdicts


def _count_presses(report: ChaosReport, verdicts: Sequence[Verdict], sources: Mapping[int, int | None]) -> list[str]:
    """Fill in the report's press counts; the problems of the presses: a job naming another parent than the job
    pressed, a V<n> or U<n> result not drawn from image n."""
    jid_of = {verdict.submission.index: verdict.jid for verdict in verdicts}
    presses = [verdict for verdict in verdicts if verdict.submission.is_press]
    kinds = Counter(verdict.kind for verdict in presses)
    report.presses = len(presses)
    report.presses_delivered = kinds["delivered"]
    report.presses_explained = kinds["explained"]
    report.presses_refused = kinds["refused"]
    report.presses_unanswered = kinds["unanswered"]
    report.press_actions = dict(sorted(Counter(verdict.submission.action for verdict in presses).items()))
    problems: list[str] = []
    for verdict in presses:
        press = verdict.submission
        parent_jid = jid_of.get(press.parent) if press.parent is not None else None
        image = press.image if press.action in IMAGE_PRESSES else None
        expected = Parent(parent_jid, PRESS_DERIVATIONS[press.action], image) if parent_jid is not None else None
        if verdict.jid is not None and verdict.recorded_parent != expected:
            report.wrong_parents += 1
            problems.append(f"press {press.label} job {verdict.jid} names {verdict.recorded_parent}, not {expected}")
        if verdict.kind == "delivered" and press.action in IMAGE_PRESSES:
            drawn = sources.get(press.index)
            if drawn != press.image:
                report.wrong_sources += 1
                shown = f"image {drawn}" if drawn is not None else "none of its images"
                problems.append(f"press {press.label} job {verdict.jid}: its image shows {shown} of the parent")
    return problems


def _count_gpu_time(
    report: ChaosReport, records: Sequence[TrackedJob], runpod_jobs: Sequence[RunPodJob], usage: GpuUsage
) -> list[str]:
    """Fill in the GPU-time counts; the problems: a job whose GPU time was not counted, or counted though the bot
    never heard RunPod report it, and sums in Redis that differ from RunPod's executionTimes."""
    ran = {job.id: job.execution_ms for job in runpod_jobs}
    expected: dict[str, int] = {}
    for record in records:
        execution_ms = ran.get(record.runpod_id or "")
        if record.runpod_status in RUNPOD_FINAL and execution_ms is not None:
            expected[record.jid] = execution_ms
    report.gpu_jobs, report.gpu_ms = len(expected), sum(expected.values())
    report.gpu_jobs_counted, report.gpu_ms_counted = usage.jobs, usage.gpu_ms
    missing, extra = sorted(expected.keys() - usage.counted), sorted(usage.counted - expected.keys())
    problems = [f"GPU time of job {jid} ({expected[jid]} ms) not counted" for jid in missing]
    problems += [f"GPU time of job {jid} counted, but RunPod reported none" for jid in extra]
    if (usage.jobs, usage.gpu_ms) != (report.gpu_jobs, report.gpu_ms):
        problems.append(
            f"usage sums hold {usage.gpu_ms} ms for {usage.jobs} jobs; RunPod reported {report.gpu_ms} ms for "
            f"{report.gpu_jobs} jobs"
        )
    return problems


def _problems(report: ChaosReport, verdicts: Sequence[Verdict], cut_short: Set[int], late: Set[int]) -> list[str]:
    problems: list[str] = []
    expected_runs = report.jobs - report.never_reached_runpod
    checks = [
        (report.lost == 0, f"{report.lost} job(s) lost"),
        (report.duplicates == 0, f"{report.duplicates} job(s) with more than one result message"),
        (report.run_calls == expected_runs, f"RunPod ran {report.run_calls} jobs for {expected_runs} submissions"),
        (report.paid_duplicates == 0, f"{report.paid_duplicates} submission(s) paid for more than once"),
        (report.unmatched_runpod_jobs == 0, f"{report.unmatched_runpod_jobs} RunPod job(s) match no submission"),
        (
            # A kill cuts short every submit in flight then (several, when members' commands came together); a
            # reset /run ends one job. Each outcome-unknown job is also checked on its own below.
            report.submit_unknown <= report.submit_unknown_cut_short + report.run_resets,
            f"{report.submit_unknown} outcome-unknown jobs: {report.submit_unknown_cut_short} cut short by kills, "
            f"{report.run_resets} /run resets",
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
            problems.append(f"outcome unknown with no kill or /run reset to explain it: {verdict.submission.label}")
        if verdict.runpod_jobs > 1:
            problems.append(f"RunPod ran {verdict.runpod_jobs} jobs for {verdict.submission.label} job {verdict.jid}")
        if verdict.kind == "lost":
            problems.append(f"lost: {verdict.submission.label} job {verdict.jid}: {verdict.detail}")
        elif verdict.kind == "unanswered" and verdict.runpod_jobs:
            problems.append(f"paid but never recorded: {verdict.submission.label}")
        elif (
            verdict.kind == "unanswered"
            and verdict.submission.reached
            and verdict.submission.index not in cut_short
            and verdict.submission.index not in late
        ):
            problems.append(f"never answered, though a running bot received it: {verdict.submission.label}")
        elif verdict.kind == "delivered" and verdict.runpod_jobs == 0:
            problems.append(f"delivered without a RunPod job: {verdict.submission.label} job {verdict.jid}")
        elif (
            verdict.kind == "refused"
            and verdict.runpod_jobs
            and verdict.final_state is not JobState.SUBMIT_UNKNOWN
            and verdict.final_state is not JobState.CANCELLED
        ):
            problems.append(
                f"refused but RunPod ran it: {verdict.submission.label} job {verdict.jid} ({verdict.detail})"
            )
    return problems
