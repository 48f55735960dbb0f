"""A server's own settings (`/settings`), and what they mean for its next job under the operator's caps.

A server may choose its default model and which of the bot's drawing models it offers; limit active jobs per member
and for the server, and set a cooldown, never looser than the operator's (USER_ACTIVE_JOBS, GUILD_ACTIVE_JOBS,
USER_COOLDOWN_S); add a default negative prompt to every job; say whether results ping their owner; and choose its
NSFW rules (`NsfwSettings`: where NSFW prompts are allowed, and its own NSFW terms; `jobs.nsfw`).

- `ServerSettings` is what a server chose (each unset choice is the bot's own), parsed from its stored fields.
- `resolve` turns it into `ServerRules`, what the next job of that server obeys, under the operator's caps *as they
  are now*: a cap lowered after a server chose a higher value wins (and the server's view says so), a model the
  operator removed is no longer offered.
- `ServerSettingsService` reads the rules for every submit (one HGETALL, no cache: see docs/architecture.md), checks
  and makes changes (each refusal names what was wrong and what is allowed), and logs each change with who made it.

Upscalers are not a server's choice: they draw nothing, have no default and are not offered by `/imagine`; the
operator's models.toml decides them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from jobs.nsfw import NsfwMode, nsfw_refusal, nsfw_term
from jobs.presets import NEGATIVE_SEPARATOR, ImageRequest, InvalidRequestError, ModelCatalog, ModelConfig, clean_prompt
from jobs.prompt_filter import PromptRules, term_key
from jobs.text import N_, stored
from storage.server_settings import SettingsVersionError, StoredSettings
from storage.store import Limits

# The templates of this module's texts for members (`jobs.text.stored`), registered when the module is
# imported, so any process recognises them in a kept text and translates them.
IS_NOT_OFFERED_ON_THIS = stored("{name} is not offered on this server")
IS_CHARACTERS_LONG_AND_THIS = stored(
    "is {own_negative_count} characters long, and this server adds its default negative prompt "
    "({server_count} characters) to it"
)
AT_MOST_CHARACTERS_ON_THIS = stored("at most {room} characters on this server with {name}")
NONE_OF_THE_MODELS_THIS = stored(
    "None of the models this server chose ({value}) is offered by the bot any more, so every model is offered."
)
THE_DEFAULT_MODEL_IS_NO = stored("The default model {default_model} is no longer offered by the bot: {default} is.")
ACTIVE_JOBS_PER_MEMBER_THIS = stored(
    "Active jobs per member: this server chose {member_active_jobs}, above the bot's cap of {user_active}, so "
    "{user_active} applies."
)
ACTIVE_JOBS_FOR_THE_SERVER = stored(
    "Active jobs for the server: this server chose {server_active_jobs}, above the bot's cap of "
    "{guild_active}, so {guild_active} applies."
)
COOLDOWN_THIS_SERVER_CHOSE_S = stored(
    "Cooldown: this server chose {cooldown_s:g} s, shorter than the bot's {cooldown_ms:g} s, so "
    "{cooldown_ms:g} s applies."
)
THE_DEFAULT_MODEL_IS_NOT = stored("The default model {named} is not among this server's models: {default} is used.")
THIS_SERVER_CHOSE_S_ABOVE = stored(
    "{what}: this server chose {chosen_s} s, above the bot's cap of {cap_ms} s, so {cap_ms} s applies."
)
CAN_T_BE = stored("{what} can't be {value}")
IS_ABOVE_THE_BOT_S = stored("{what}: {value} is above the bot's cap of {cap}")
IS_MORE_THAN_THIS_BOT = stored("{what}: {value} is more than this bot takes")
CAN_T_BE_S = stored("{what} can't be {value} s")
S_IS_ABOVE_THE_BOT = stored("{what}: {value} s is above the bot's cap of {top} s")
S_IS_MORE_THAN_THIS = stored("{what}: {value} s is more than this bot takes")
TO_SECONDS = stored("{floor:g} to {MAX_SERVER_COOLDOWN_S} seconds")
A_COOLDOWN_OF_S_IS = stored("a cooldown of {value:g} s is no duration")
A_COOLDOWN_OF_S_IS_2 = stored("a cooldown of {value:g} s is shorter than the bot's cooldown of {floor:g} s")
A_COOLDOWN_OF_S_IS_3 = stored("a cooldown of {value:g} s is longer than a day")
LIMITS_CHANGED = stored("limits: {changes}")
BUDGET_CHANGED = stored("budget: {changes}")
# Two or more changes of one command, each a kept text of its own (their list is recognised one change at a time).
CHANGES = stored("{change}; {changes}")
MODELS_OFFERED = stored("models: {name} {verb} (offered: {value})")
NSFW_PROMPTS = stored("NSFW prompts: {nsfw_mode_words} → {nsfw_mode_words2}")
NSFW_TERM_REMOVED = stored("NSFW term “{found}” removed")
THE_DEFAULT_MODEL_IS_ALREADY = stored("The default model is already {name}.")
DEFAULT_MODEL_2 = stored("default model: {default_model} → {name}")
IS_ALREADY_ON_THIS_SERVER = stored("{name} is already {value} on this server.")
THE_DEFAULT_NEGATIVE_PROMPT_IS = stored("the default negative prompt is {cleaned_count} characters long")
AT_MOST_CHARACTERS = stored("at most {limit} characters")
DEFAULT_NEGATIVE_PROMPT = stored("default negative prompt: “{cleaned}”")
RESULTS_ALREADY_THEIR_OWNER = stored("Results already {value} their owner.")
RESULTS_PING_THEIR_OWNER = stored("results ping their owner: {state}")
NSFW_PROMPTS_ALREADY = stored("NSFW prompts: already {nsfw_mode_words}.")
IS_NOT_ONE_OF_THIS = stored("“{cleaned}” is not one of this server's NSFW terms.")
ALREADY_THE_BOT_S = stored("{value}: already the bot's.")
RESET_TO_THE_BOT_S = stored("reset: {value} to the bot's")
IS_NOT_ONE_OF_THE = stored("{name} is not one of the bot's drawing models")
THE_DEFAULT_MODEL_IS_ALREADY_2 = stored("The default model is already the bot's ({default_model}).")
DEFAULT_MODEL_THE_BOT_S = stored("default model: {default_model} → the bot's ({default_model2})")
ACTIVE_JOBS_PER_MEMBER = stored("active jobs per member {before_after}")
ACTIVE_JOBS_FOR_THE_SERVER_2 = stored("active jobs for the server {before_after}")
COOLDOWN_S_S = stored("cooldown {cooldown_s:g} s → {cooldown_s2:g} s")
GPU_PER_MEMBER_PER_DAY = stored("GPU per member per day {seconds_words} → {member_daily_s} s")
GPU_FOR_THE_SERVER_PER = stored("GPU for the server per month {before} → {server_monthly_s} s")
THE_DEFAULT_NEGATIVE_PROMPT_HOLDS = stored(
    "the default negative prompt holds “{denied}”, which the deny-list refuses in prompts"
)
THE_TERM_IS_CHARACTERS_LONG = stored("the term is {cleaned_count} characters long")
AT_MOST_CHARACTERS_2 = stored("at most {MAX_NSFW_TERM_CHARS} characters")
IS_ALREADY_ONE_OF_THIS = stored("“{found}” is already one of this server's NSFW terms.")
NSFW_TERM_ADDED = stored("NSFW term “{cleaned}” added")
IS_THE_ONLY_MODEL_THIS = stored("{name} is the only model this server offers, and a server needs one")
IS_THIS_SERVER_S_DEFAULT = stored("{name} is this server's default model")
CHOOSE_ANOTHER_DEFAULT_MODEL_FIRST = stored("choose another default model first (one of {value})")
THIS_SERVER_HAS_NSFW_TERMS = stored("this server has {terms_count} NSFW terms already")
AT_MOST_REMOVE_ONE_FIRST = stored("at most {MAX_NSFW_TERMS}: remove one first")

log = logging.getLogger(__name__)

# A job's record says whether its result pings its owner (`extra`), decided at submit from its server's settings,
# so whichever process delivers it follows the setting the job was started under.
MENTION_OWNER_FIELD = "mention_owner"

# The stored fields of a server's settings hash (storage/server_settings.py keeps them as text).
DEFAULT_MODEL = "default_model"
ALLOWED_MODELS = "allowed_models"
MEMBER_ACTIVE_JOBS = "member_active_jobs"
SERVER_ACTIVE_JOBS = "server_active_jobs"
COOLDOWN_S = "cooldown_s"
MEMBER_DAILY_GPU_S = "member_daily_gpu_s"
SERVER_MONTHLY_GPU_S = "server_monthly_gpu_s"
NEGATIVE_PROMPT = "negative_prompt"
MENTIONS = "mention_owner"
# Whether each job of the server gets a thread of its own by default ("1"; /imagine's `thread` option decides first).
THREADS = "thread_per_job"
# The NSFW rules' fields are named `nsfw.<name>`, in the same hash.
NSFW_PREFIX = "nsfw."
NSFW_MODE = NSFW_PREFIX + "mode"
NSFW_TERMS = NSFW_PREFIX + "terms"
# A server's own NSFW terms: as many and as long as a moderator needs, few enough to check on every submit.
MAX_NSFW_TERMS = 100
MAX_NSFW_TERM_CHARS = 100

# Bounds of a server's own values where the operator sets none (a cap of 0: no limit).
MAX_SERVER_JOBS = 1000
# A day: a longer wait between two images is no cooldown but a ban.
MAX_SERVER_COOLDOWN_S = 24 * 3600
# A server's own GPU-time budgets where the operator sets none: a member's day cannot hold more GPU time than the day
# has seconds; a server's month, a year of GPU time (more would be no budget).
MAX_MEMBER_DAILY_GPU_S = 24 * 3600
MAX_SERVER_MONTHLY_GPU_S = 365 * 24 * 3600
# Long enough for a list of things to keep out; short enough to leave the member room in the model's limit.
MAX_SERVER_NEGATIVE = 500
# How many changes `/settings log` shows (the store keeps more: storage.server_settings.SETTINGS_LOG_MAX).
LOG_SHOWN = 20
# A change decided from settings that another change overtook is decided again, at most this many times.
CHANGE_ATTEMPTS = 5


class SettingRefusedError(Exception):
    """A change a server may not make: the message says what was wrong and what is allowed."""

    def __init__(self, problem: str, allowed: str) -> None:
        super().__init__(f"{problem}. Allowed: {allowed}.")
        self.problem = problem
        self.allowed = allowed


class Section(StrEnum):
    """What `/settings reset` can put back to the bot's own settings."""

    ALL = N_("everything")
    MODEL = N_("default model")
    MODELS = N_("models")
    LIMITS = N_("limits")
    BUDGET = N_("budget")
    NEGATIVE = N_("default negative prompt")
    MENTIONS = N_("mentions")
    NSFW = N_("NSFW rules")
    THREADS = N_("thread per job")


SECTION_FIELDS: dict[Section, tuple[str, ...]] = {
    Section.MODEL: (DEFAULT_MODEL,),
    Section.MODELS: (ALLOWED_MODELS,),
    Section.LIMITS: (MEMBER_ACTIVE_JOBS, SERVER_ACTIVE_JOBS, COOLDOWN_S),
    Section.BUDGET: (MEMBER_DAILY_GPU_S, SERVER_MONTHLY_GPU_S),
    Section.NEGATIVE: (NEGATIVE_PROMPT,),
    Section.MENTIONS: (MENTIONS,),
    Section.NSFW: (NSFW_MODE, NSFW_TERMS),
    Section.THREADS: (THREADS,),
}


@dataclass(frozen=True)
class NsfwSettings:
    """A server's NSFW rules (`jobs.nsfw`): where NSFW prompts are allowed, and its own NSFW terms (added to the
    bot's default ones), in the moderators' words."""

    mode: NsfwMode = NsfwMode.AGE_RESTRICTED
    terms: tuple[str, ...] = ()

    def refusal(self, prompt: str, age_restricted: bool) -> str | None:
        """Why this prompt may not run where its result would be shown (`age_restricted`: there), or None."""
        if age_restricted and self.mode is NsfwMode.AGE_RESTRICTED:
            return None
        term = nsfw_term(prompt, self.terms)
        return None if term is None else nsfw_refusal(term, self.mode)


@dataclass(frozen=True)
class ServerSettings:
    """What a server chose; None (or the default) for each choice it left to the bot."""

    default_model: str | None = None
    # None: every drawing model of the bot, including models the operator adds later.
    allowed_models: tuple[str, ...] | None = None
    member_active_jobs: int | None = None
    server_active_jobs: int | None = None
    cooldown_s: float | None = None
    # GPU-time budgets in seconds: a member's per UTC day, the server's per UTC month.
    member_daily_gpu_s: int | None = None
    server_monthly_gpu_s: int | None = None
    negative_prompt: str = ""
    mention_owner: bool = True
    nsfw: NsfwSettings = field(default_factory=NsfwSettings)
    thread_per_job: bool = False

    @classmethod
    def parse(cls, fields: Mapping[str, str]) -> ServerSettings:
        """The settings from their stored text; a value that cannot be read is ignored (and logged), so a damaged
        field falls back to the bot's setting rather than stopping every job of the server."""
        settings = cls()
        for name, text in fields.items():
            try:
                settings = _parsed(settings, name, text)
            except (ValueError, TypeError):
                log.warning("ignoring the server setting %s=%r: it cannot be read", name, text)
        return settings


def _parsed(settings: ServerSettings, name: str, text: str) -> ServerSettings:
    if name == DEFAULT_MODEL:
        return replace(settings, default_model=text or None)
    if name == ALLOWED_MODELS:
        names = json.loads(text)
        if not isinstance(names, list) or not all(isinstance(item, str) for item in names):
            raise ValueError("not a list of names")
        return replace(settings, allowed_models=tuple(names))
    if name == MEMBER_ACTIVE_JOBS:
        return replace(settings, member_active_jobs=_positive(int(text)))
    if name == SERVER_ACTIVE_JOBS:
        return replace(settings, server_active_jobs=_positive(int(text)))
    if name == COOLDOWN_S:
        value = float(text)
        if not math.isfinite(value) or value < 0:
            raise ValueError("not a duration")
        return replace(settings, cooldown_s=value)
    if name == MEMBER_DAILY_GPU_S:
        return replace(settings, member_daily_gpu_s=_positive(int(text)))
    if name == SERVER_MONTHLY_GPU_S:
        return replace(settings, server_monthly_gpu_s=_positive(int(text)))
    if name == NEGATIVE_PROMPT:
        return replace(settings, negative_prompt=text)
    if name == MENTIONS:
        return replace(settings, mention_owner=text != "0")
    if name == THREADS:
        return replace(settings, thread_per_job=text == "1")
    if name == NSFW_MODE:
        return replace(settings, nsfw=replace(settings.nsfw, mode=NsfwMode(text)))
    if name == NSFW_TERMS:
        terms = json.loads(text)
        if not isinstance(terms, list) or not all(isinstance(item, str) for item in terms):
            raise ValueError("not a list of terms")
        return replace(settings, nsfw=replace(settings.nsfw, terms=tuple(terms)))
    return settings  # a field of a later version: kept in Redis, not read here


def _positive(value: int) -> int:
    if value < 1:
        raise ValueError("not a positive number")
    return value


@dataclass(frozen=True)
class ServerRules:
    """What a server's next job obeys: its settings resolved under the operator's caps (or the operator's alone, for
    a job in a DM or from the command line)."""

    guild_id: int | None
    default_model: str
    # The drawing models the server offers, in models.toml's order.
    allowed_models: tuple[str, ...]
    # Whether the server chose its models (False: all of the bot's, including ones added later).
    restricted: bool
    # What admission checks (`storage.store.Limits`): the operator's everywhere, and the server's stricter ones.
    limits: Limits
    negative_prompt: str = ""
    mention_owner: bool = True
    nsfw: NsfwSettings = field(default_factory=NsfwSettings)
    # Whether a job started here gets a thread of its own unless its member says otherwise.
    thread_per_job: bool = False
    # What the server chose that does not apply as chosen (a cap lowered since, a model removed), in words.
    notes: tuple[str, ...] = ()

    @property
    def member_jobs(self) -> int:
        """Active jobs a member may have here (0: no limit)."""
        return _lowest(self.limits.user_active, self.limits.member_active)

    @property
    def server_jobs(self) -> int:
        """Active jobs the server may have (0: no limit)."""
        return self.limits.guild_active

    @property
    def cooldown_s(self) -> float:
        """Seconds a member waits between two jobs here."""
        return max(self.limits.cooldown_ms, self.limits.member_cooldown_ms) / 1000

    @property
    def member_budget_s(self) -> int:
        """GPU seconds a member may use per UTC day to start a job here (0: no budget)."""
        return self.limits.member_daily_gpu_ms // 1000

    @property
    def server_budget_s(self) -> int:
        """GPU seconds the server may use per UTC month (0: no budget)."""
        return self.limits.guild_monthly_gpu_ms // 1000

    def check_model(self, model: ModelConfig) -> None:
        """Raise `InvalidRequestError` when the server does not offer this drawing model (upscalers pass: they are
        the operator's), naming the models it does."""
        if model.is_upscaler or model.name in self.allowed_models:
            return
        raise InvalidRequestError("model", IS_NOT_OFFERED_ON_THIS.format(name=model.name), self.allowed_list)

    @property
    def allowed_list(self) -> str:
        return ", ".join(self.allowed_models)

    def apply_negative(self, model: ModelConfig, request: ImageRequest) -> ImageRequest:
        """The request with this server's default negative prompt after the member's own (none for an upscaler,
        which draws nothing); `InvalidRequestError` when the two together pass the model's limit."""
        server = "" if model.is_upscaler else self.negative_prompt
        combined = request.with_server_negative(server)
        limit = model.limits.negative_max
        if server and len(combined.negative_prompt) > limit:
            room = max(0, limit - len(server) - len(NEGATIVE_SEPARATOR))
            raise InvalidRequestError(
                "negative",
                IS_CHARACTERS_LONG_AND_THIS.format(
                    own_negative_count=len(combined.own_negative), server_count=len(server)
                ),
                AT_MOST_CHARACTERS_ON_THIS.format(room=room, name=model.name),
            )
        return combined

    def job_extra(self) -> dict[str, bool]:
        """What the job's record keeps of these rules for its delivery (any process delivers it)."""
        return {MENTION_OWNER_FIELD: self.mention_owner}


def _lowest(*limits: int) -> int:
    """The strictest of some limits where 0 means none."""
    set_ = [limit for limit in limits if limit > 0]
    return min(set_) if set_ else 0


def operator_rules(catalog: ModelCatalog, caps: Limits) -> ServerRules:
    """The rules where no server decides: a DM, the command line."""
    return resolve(ServerSettings(), caps, catalog, None)


def resolve(settings: ServerSettings, caps: Limits, catalog: ModelCatalog, guild_id: int | None) -> ServerRules:
    """What the server's next job obeys, from what it chose, the operator's caps and the models configured now."""
    notes: list[str] = []
    drawing = catalog.drawing_names
    allowed, restricted = list(drawing), False
    if settings.allowed_models is not None:
        chosen = {name.lower() for name in settings.allowed_models}
        kept = [name for name in drawing if name.lower() in chosen]
        if kept:
            allowed, restricted = kept, True
        else:
            notes.append(NONE_OF_THE_MODELS_THIS.format(value=", ".join(settings.allowed_models)))
    default = catalog.default_name if catalog.default_name in allowed else allowed[0]
    if settings.default_model is not None:
        named = next((name for name in drawing if name.lower() == settings.default_model.lower()), None)
        if named is None:
            notes.append(THE_DEFAULT_MODEL_IS_NO.format(default_model=settings.default_model, default=default))
        elif named not in allowed:  # pragma: no cover - no change leaves it so; a hand-edited hash may
            notes.append(THE_DEFAULT_MODEL_IS_NOT.format(named=named, default=default))
        else:
            default = named
    member_active = 0
    if settings.member_active_jobs is not None:
        if caps.user_active and settings.member_active_jobs > caps.user_active:
            notes.append(
                ACTIVE_JOBS_PER_MEMBER_THIS.format(
                    member_active_jobs=settings.member_active_jobs, user_active=caps.user_active
                )
            )
        else:
            member_active = settings.member_active_jobs
    guild_active = caps.guild_active
    if settings.server_active_jobs is not None:
        if caps.guild_active and settings.server_active_jobs > caps.guild_active:
            notes.append(
                ACTIVE_JOBS_FOR_THE_SERVER.format(
                    server_active_jobs=settings.server_active_jobs, guild_active=caps.guild_active
                )
            )
        else:
            guild_active = settings.server_active_jobs
    member_cooldown_ms = 0
    if settings.cooldown_s is not None:
        chosen_ms = round(settings.cooldown_s * 1000)
        if chosen_ms < caps.cooldown_ms:
            notes.append(
                COOLDOWN_THIS_SERVER_CHOSE_S.format(cooldown_s=settings.cooldown_s, cooldown_ms=caps.cooldown_ms / 1000)
            )
        elif chosen_ms > caps.cooldown_ms:
            member_cooldown_ms = chosen_ms
    member_budget_ms = _budget(
        settings.member_daily_gpu_s, caps.member_daily_gpu_ms, "GPU budget per member per day", notes
    )
    server_budget_ms = _budget(
        settings.server_monthly_gpu_s, caps.guild_monthly_gpu_ms, "GPU budget for the server per month", notes
    )
    limits = replace(
        caps,
        guild_active=guild_active,
        member_active=member_active,
        member_cooldown_ms=member_cooldown_ms,
        member_daily_gpu_ms=member_budget_ms,
        guild_monthly_gpu_ms=server_budget_ms,
    )
    return ServerRules(
        guild_id=guild_id,
        default_model=default,
        allowed_models=tuple(allowed),
        restricted=restricted,
        limits=limits,
        negative_prompt=settings.negative_prompt,
        mention_owner=settings.mention_owner,
        nsfw=settings.nsfw,
        thread_per_job=settings.thread_per_job,
        notes=tuple(notes),
    )


def _budget(chosen_s: int | None, cap_ms: int, what: str, notes: list[str]) -> int:
    """A budget that applies (ms; 0: none): the server's own when it chose one under the operator's cap."""
    if chosen_s is None:
        return cap_ms
    if cap_ms and chosen_s * 1000 > cap_ms:
        notes.append(THIS_SERVER_CHOSE_S_ABOVE.format(what=what, chosen_s=chosen_s, cap_ms=cap_ms // 1000))
        return cap_ms
    return chosen_s * 1000


def _listed(changes: Sequence[str]) -> str:
    """The changes of one command as one kept text: "a; b; c"."""
    if len(changes) == 1:
        return changes[0]
    return CHANGES.format(change=changes[0], changes=_listed(changes[1:]))


# --- changes ------------------------------------------------------------------------------------------------------


def check_jobs_limit(value: int, cap: int, what: str) -> None:
    """A server's active-jobs limit: at least 1, at most the operator's cap (or `MAX_SERVER_JOBS` without one)."""
    top = cap or MAX_SERVER_JOBS
    if value < 1:
        raise SettingRefusedError(CAN_T_BE.format(what=what, value=value), f"1 to {top}")
    if cap and value > cap:
        raise SettingRefusedError(
            IS_ABOVE_THE_BOT_S.format(what=what, value=value, cap=cap),
            f"1 to {cap}",
        )
    if value > top:
        raise SettingRefusedError(IS_MORE_THAN_THIS_BOT.format(what=what, value=value), f"1 to {top}")


def check_budget(value: int, cap_ms: int, top_s: int, what: str) -> None:
    """A server's GPU-time budget: at least 1 s, at most the operator's cap (or `top_s` without one)."""
    top = cap_ms // 1000 if cap_ms else top_s
    if value < 1:
        raise SettingRefusedError(CAN_T_BE_S.format(what=what, value=value), f"1 to {top} s")
    if cap_ms and value * 1000 > cap_ms:
        raise SettingRefusedError(
            S_IS_ABOVE_THE_BOT.format(what=what, value=value, top=top),
            f"1 to {top} s",
        )
    if value > top:
        raise SettingRefusedError(S_IS_MORE_THAN_THIS.format(what=what, value=value), f"1 to {top} s")


def check_cooldown(value: float, floor_ms: int) -> None:
    """A server's cooldown: at least the operator's, at most `MAX_SERVER_COOLDOWN_S`."""
    floor = floor_ms / 1000
    allowed = TO_SECONDS.format(floor=floor, MAX_SERVER_COOLDOWN_S=MAX_SERVER_COOLDOWN_S)
    if not math.isfinite(value) or value < 0:
        raise SettingRefusedError(A_COOLDOWN_OF_S_IS.format(value=value), allowed)
    if round(value * 1000) < floor_ms:
        raise SettingRefusedError(
            A_COOLDOWN_OF_S_IS_2.format(value=value, floor=floor),
            allowed,
        )
    if value > MAX_SERVER_COOLDOWN_S:
        raise SettingRefusedError(A_COOLDOWN_OF_S_IS_3.format(value=value), allowed)


def negative_limit(catalog: ModelCatalog) -> int:
    """How long a server's default negative prompt may be: `MAX_SERVER_NEGATIVE`, or less when a model takes fewer
    characters, leaving the member half of the tightest model's room."""
    tightest = min((model.limits.negative_max for model in catalog.drawing_models), default=MAX_SERVER_NEGATIVE * 2)
    return min(MAX_SERVER_NEGATIVE, tightest // 2)


@dataclass(frozen=True)
class Edit:
    """A change decided from the current settings: fields to write and remove, and what it does, in words."""

    what: str
    changed: Mapping[str, str] = field(default_factory=dict)
    removed: Sequence[str] = ()
    clear: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a change request did: `changed` False when the settings already were so (nothing was written)."""

    changed: bool
    what: str


@dataclass(frozen=True)
class Change:
    """One entry of a server's settings log."""

    at: datetime
    user_id: int
    what: str

    def encode(self) -> str:
        return json.dumps({"at": int(self.at.timestamp() * 1000), "by": self.user_id, "what": self.what})

    @classmethod
    def decode(cls, text: str) -> Change | None:
        try:
            data = json.loads(text)
            return cls(datetime.fromtimestamp(int(data["at"]) / 1000, UTC), int(data["by"]), str(data["what"]))
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class SettingsView:
    """A server's settings for its moderators: what it chose, what applies, and the operator's caps."""

    settings: ServerSettings
    rules: ServerRules
    caps: Limits
    negative_max: int


class SettingsStore(Protocol):
    """Where servers' settings are kept (`storage.server_settings.ServerSettingsStore`)."""

    async def read(self, guild_id: int) -> StoredSettings: ...

    async def change(
        self,
        guild_id: int,
        read: StoredSettings,
        entry: str,
        *,
        changed: Mapping[str, str] | None = None,
        removed: Sequence[str] = (),
        clear: bool = False,
    ) -> int: ...

    async def history(self, guild_id: int, limit: int) -> list[str]: ...


Decide = Callable[[ServerSettings], Edit | str]


class ServerSettingsService:
    """Servers' settings: the rules each submit obeys, and changes made by their moderators, each logged."""

    def __init__(
        self,
        store: SettingsStore | None,
        catalog: ModelCatalog,
        caps: Limits,
        *,
        prompt_rules: PromptRules | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        # No store: every server has the operator's rules (a core built without Redis settings, in tests).
        self.store = store
        self.catalog = catalog
        self.caps = caps
        self.prompt_rules = prompt_rules
        self.clock = clock or (lambda: datetime.now(UTC))

    async def rules(self, guild_id: int | None) -> ServerRules:
        """What the server's next job obeys, read from Redis now (so a change applies to the very next job, in
        every process); the operator's rules outside a server."""
        if guild_id is None or self.store is None:
            return operator_rules(self.catalog, self.caps)
        stored = await self.store.read(guild_id)
        return resolve(ServerSettings.parse(stored.fields), self.caps, self.catalog, guild_id)

    async def view(self, guild_id: int) -> SettingsView:
        settings = await self._settings(guild_id)
        rules = resolve(settings, self.caps, self.catalog, guild_id)
        return SettingsView(settings, rules, self.caps, negative_limit(self.catalog))

    async def history(self, guild_id: int, limit: int = LOG_SHOWN) -> list[Change]:
        """The latest changes, newest first."""
        if self.store is None:
            return []
        entries = [Change.decode(text) for text in await self.store.history(guild_id, limit)]
        return [entry for entry in entries if entry is not None]

    # --- the changes a moderator makes ---------------------------------------------------------------------------

    async def set_default_model(self, guild_id: int, user_id: int, name: str | None) -> Outcome:
        """The server's default model (one it offers), or None: the bot's default again."""

        def decide(settings: ServerSettings) -> Edit | str:
            rules = resolve(settings, self.caps, self.catalog, guild_id)
            if name is None:
                if settings.default_model is None:
                    return THE_DEFAULT_MODEL_IS_ALREADY_2.format(default_model=rules.default_model)
                after = resolve(replace(settings, default_model=None), self.caps, self.catalog, guild_id)
                return Edit(
                    DEFAULT_MODEL_THE_BOT_S.format(
                        default_model=rules.default_model, default_model2=after.default_model
                    ),
                    removed=[DEFAULT_MODEL],
                )
            model = self._drawing_model(name, rules)
            if model.name not in rules.allowed_models:
                raise SettingRefusedError(IS_NOT_OFFERED_ON_THIS.format(name=model.name), rules.allowed_list)
            if settings.default_model == model.name:
                return THE_DEFAULT_MODEL_IS_ALREADY.format(name=model.name)
            return Edit(
                DEFAULT_MODEL_2.format(default_model=rules.default_model, name=model.name),
                {DEFAULT_MODEL: model.name},
            )

        return await self._change(guild_id, user_id, decide)

    async def allow_model(self, guild_id: int, user_id: int, name: str, allowed: bool) -> Outcome:
        """Offer (or stop offering) one of the bot's drawing models on this server."""

        def decide(settings: ServerSettings) -> Edit | str:
            rules = resolve(settings, self.caps, self.catalog, guild_id)
            model = self._drawing_model(name, rules)
            current = list(rules.allowed_models)
            if allowed == (model.name in current):
                return IS_ALREADY_ON_THIS_SERVER.format(
                    name=model.name, value=N_("offered") if allowed else N_("not offered")
                )
            if allowed:
                wanted = [each for each in self.catalog.drawing_names if each in current or each == model.name]
            else:
                wanted = [each for each in current if each != model.name]
                if not wanted:
                    raise SettingRefusedError(
                        IS_THE_ONLY_MODEL_THIS.format(name=model.name),
                        N_("offer another model first"),
                    )
                if settings.default_model == model.name:
                    raise SettingRefusedError(
                        IS_THIS_SERVER_S_DEFAULT.format(name=model.name),
                        CHOOSE_ANOTHER_DEFAULT_MODEL_FIRST.format(value=", ".join(wanted)),
                    )
            verb = N_("now offered") if allowed else N_("no longer offered")
            what = MODELS_OFFERED.format(name=model.name, verb=verb, value=", ".join(wanted))
            if wanted == self.catalog.drawing_names:
                # Every model again: stored as no choice, so models the operator adds later are offered too.
                return Edit(what, removed=[ALLOWED_MODELS])
            return Edit(what, {ALLOWED_MODELS: json.dumps(wanted)})

        return await self._change(guild_id, user_id, decide)

    async def set_limits(
        self,
        guild_id: int,
        user_id: int,
        *,
        member_jobs: int | None = None,
        server_jobs: int | None = None,
        cooldown_s: float | None = None,
    ) -> Outcome:
        """The server's own limits, each within the operator's caps; those not given stay as they are."""
        if member_jobs is None and server_jobs is None and cooldown_s is None:
            raise SettingRefusedError(
                N_("no limit was given"), N_("member_jobs, server_jobs or cooldown (one or more of them)")
            )
        if member_jobs is not None:
            check_jobs_limit(member_jobs, self.caps.user_active, "Active jobs per member")
        if server_jobs is not None:
            check_jobs_limit(server_jobs, self.caps.guild_active, "Active jobs for the server")
        if cooldown_s is not None:
            check_cooldown(cooldown_s, self.caps.cooldown_ms)

        def decide(settings: ServerSettings) -> Edit | str:
            rules = resolve(settings, self.caps, self.catalog, guild_id)
            wanted = replace(
                settings,
                member_active_jobs=settings.member_active_jobs if member_jobs is None else member_jobs,
                server_active_jobs=settings.server_active_jobs if server_jobs is None else server_jobs,
                cooldown_s=settings.cooldown_s if cooldown_s is None else cooldown_s,
            )
            after = resolve(wanted, self.caps, self.catalog, guild_id)
            changes = []
            fields: dict[str, str] = {}
            if member_jobs is not None and member_jobs != settings.member_active_jobs:
                before_after = f"{jobs_words(rules.member_jobs)} → {jobs_words(after.member_jobs)}"
                changes.append(ACTIVE_JOBS_PER_MEMBER.format(before_after=before_after))
                fields[MEMBER_ACTIVE_JOBS] = str(member_jobs)
            if server_jobs is not None and server_jobs != settings.server_active_jobs:
                before_after = f"{jobs_words(rules.server_jobs)} → {jobs_words(after.server_jobs)}"
                changes.append(ACTIVE_JOBS_FOR_THE_SERVER_2.format(before_after=before_after))
                fields[SERVER_ACTIVE_JOBS] = str(server_jobs)
            if cooldown_s is not None and cooldown_s != settings.cooldown_s:
                changes.append(COOLDOWN_S_S.format(cooldown_s=rules.cooldown_s, cooldown_s2=after.cooldown_s))
                fields[COOLDOWN_S] = f"{cooldown_s:g}"
            if not fields:
                return N_("These limits are already set.")
            return Edit(LIMITS_CHANGED.format(changes=_listed(changes)), fields)

        return await self._change(guild_id, user_id, decide)

    async def set_budget(
        self, guild_id: int, user_id: int, *, member_daily_s: int | None = None, server_monthly_s: int | None = None
    ) -> Outcome:
        """The server's own GPU-time budgets (seconds), each within the operator's caps; those not given stay."""
        if member_daily_s is None and server_monthly_s is None:
            raise SettingRefusedError(N_("no budget was given"), N_("member_daily or server_monthly (one or both)"))
        if member_daily_s is not None:
            check_budget(
                member_daily_s, self.caps.member_daily_gpu_ms, MAX_MEMBER_DAILY_GPU_S, "GPU budget per member per day"
            )
        if server_monthly_s is not None:
            check_budget(
                server_monthly_s,
                self.caps.guild_monthly_gpu_ms,
                MAX_SERVER_MONTHLY_GPU_S,
                "GPU budget for the server per month",
            )

        def decide(settings: ServerSettings) -> Edit | str:
            rules = resolve(settings, self.caps, self.catalog, guild_id)
            changes = []
            fields: dict[str, str] = {}
            if member_daily_s is not None and member_daily_s != settings.member_daily_gpu_s:
                changes.append(
                    GPU_PER_MEMBER_PER_DAY.format(
                        seconds_words=seconds_words(rules.member_budget_s), member_daily_s=member_daily_s
                    )
                )
                fields[MEMBER_DAILY_GPU_S] = str(member_daily_s)
            if server_monthly_s is not None and server_monthly_s != settings.server_monthly_gpu_s:
                before = seconds_words(rules.server_budget_s)
                changes.append(GPU_FOR_THE_SERVER_PER.format(before=before, server_monthly_s=server_monthly_s))
                fields[SERVER_MONTHLY_GPU_S] = str(server_monthly_s)
            if not fields:
                return N_("This budget is already set.")
            return Edit(BUDGET_CHANGED.format(changes=_listed(changes)), fields)

        return await self._change(guild_id, user_id, decide)

    async def set_negative(self, guild_id: int, user_id: int, text: str | None) -> Outcome:
        """The default negative prompt added to every job of the server (None or blank: none), checked against the
        deny-lists like a prompt."""
        cleaned = clean_prompt(text or "")
        limit = negative_limit(self.catalog)
        if len(cleaned) > limit:
            raise SettingRefusedError(
                THE_DEFAULT_NEGATIVE_PROMPT_IS.format(cleaned_count=len(cleaned)),
                AT_MOST_CHARACTERS.format(limit=limit),
            )
        if cleaned and self.prompt_rules is not None:
            denied = await self.prompt_rules.denied_term(cleaned, guild_id)
            if denied is not None:
                raise SettingRefusedError(
                    THE_DEFAULT_NEGATIVE_PROMPT_HOLDS.format(denied=denied),
                    N_("a text without the deny-list's terms"),
                )

        def decide(settings: ServerSettings) -> Edit | str:
            if cleaned == settings.negative_prompt:
                return (
                    N_("The default negative prompt is already so.")
                    if cleaned
                    else N_("There is no default negative prompt.")
                )
            if not cleaned:
                return Edit(N_("default negative prompt removed"), removed=[NEGATIVE_PROMPT])
            return Edit(DEFAULT_NEGATIVE_PROMPT.format(cleaned=cleaned), {NEGATIVE_PROMPT: cleaned})

        return await self._change(guild_id, user_id, decide)

    async def set_mentions(self, guild_id: int, user_id: int, ping: bool) -> Outcome:
        """Whether the server's results ping their owner."""

        def decide(settings: ServerSettings) -> Edit | str:
            if settings.mention_owner == ping:
                return RESULTS_ALREADY_THEIR_OWNER.format(value=N_("ping") if ping else N_("do not ping"))
            state = N_("on") if ping else N_("off")
            return Edit(RESULTS_PING_THEIR_OWNER.format(state=state), {MENTIONS: "1" if ping else "0"})

        return await self._change(guild_id, user_id, decide)

    async def set_thread_per_job(self, guild_id: int, user_id: int, on: bool) -> Outcome:
        """Whether the server's jobs get a thread each by default."""

        def decide(settings: ServerSettings) -> Edit | str:
            if settings.thread_per_job == on:
                return N_("A thread per job is already on.") if on else N_("A thread per job is already off.")
            if not on:
                return Edit(N_("a thread per job: off"), removed=[THREADS])
            return Edit(N_("a thread per job: on"), {THREADS: "1"})

        return await self._change(guild_id, user_id, decide)

    async def set_nsfw_mode(self, guild_id: int, user_id: int, mode: NsfwMode) -> Outcome:
        """Where the server allows NSFW prompts (`jobs.nsfw.NsfwMode`)."""

        def decide(settings: ServerSettings) -> Edit | str:
            if settings.nsfw.mode is mode:
                return NSFW_PROMPTS_ALREADY.format(nsfw_mode_words=_nsfw_mode_words(mode))
            what = NSFW_PROMPTS.format(
                nsfw_mode_words=_nsfw_mode_words(settings.nsfw.mode), nsfw_mode_words2=_nsfw_mode_words(mode)
            )
            if mode is NsfwMode.AGE_RESTRICTED:
                return Edit(what, removed=[NSFW_MODE])
            return Edit(what, {NSFW_MODE: mode.value})

        return await self._change(guild_id, user_id, decide)

    async def nsfw_term(self, guild_id: int, user_id: int, term: str, listed: bool) -> Outcome:
        """Add a term to the server's own NSFW terms (`listed`), or remove it however it is spelled."""
        cleaned = " ".join(clean_prompt(term).split())
        if listed:
            if not term_key(cleaned):
                raise SettingRefusedError(N_("the term has nothing visible in it"), N_("a word or words"))
            if len(cleaned) > MAX_NSFW_TERM_CHARS:
                raise SettingRefusedError(
                    THE_TERM_IS_CHARACTERS_LONG.format(cleaned_count=len(cleaned)),
                    AT_MOST_CHARACTERS_2.format(MAX_NSFW_TERM_CHARS=MAX_NSFW_TERM_CHARS),
                )

        def decide(settings: ServerSettings) -> Edit | str:
            terms = list(settings.nsfw.terms)
            found = next((each for each in terms if term_key(each) == term_key(cleaned)), None)
            if listed:
                if found is not None:
                    return IS_ALREADY_ONE_OF_THIS.format(found=found)
                if len(terms) >= MAX_NSFW_TERMS:
                    raise SettingRefusedError(
                        THIS_SERVER_HAS_NSFW_TERMS.format(terms_count=len(terms)),
                        AT_MOST_REMOVE_ONE_FIRST.format(MAX_NSFW_TERMS=MAX_NSFW_TERMS),
                    )
                return Edit(
                    NSFW_TERM_ADDED.format(cleaned=cleaned),
                    {NSFW_TERMS: json.dumps([*terms, cleaned])},
                )
            if found is None:
                return IS_NOT_ONE_OF_THIS.format(cleaned=cleaned)
            kept = [each for each in terms if each != found]
            what = NSFW_TERM_REMOVED.format(found=found)
            return Edit(what, {NSFW_TERMS: json.dumps(kept)}) if kept else Edit(what, removed=[NSFW_TERMS])

        return await self._change(guild_id, user_id, decide)

    async def reset(self, guild_id: int, user_id: int, section: Section) -> Outcome:
        """Put one section (or everything) back to the bot's own settings."""

        def decide(settings: ServerSettings) -> Edit | str:
            if section is Section.ALL:
                if settings == ServerSettings():
                    return N_("This server already uses the bot's own settings.")
                return Edit(N_("reset: everything to the bot's settings"), clear=True)
            fields = SECTION_FIELDS[section]
            if _without(settings, fields) == settings:
                return ALREADY_THE_BOT_S.format(value=section.value.capitalize())
            return Edit(RESET_TO_THE_BOT_S.format(value=section.value), removed=list(fields))

        return await self._change(guild_id, user_id, decide)

    async def record(self, guild_id: int, user_id: int, what: str) -> None:
        """Log a change of this server's settings made elsewhere (its deny-list, `/denylist`)."""

        def decide(settings: ServerSettings) -> Edit | str:
            return Edit(what)

        await self._change(guild_id, user_id, decide)

    # --- how a change is made ------------------------------------------------------------------------------------

    async def _settings(self, guild_id: int) -> ServerSettings:
        if self.store is None:
            return ServerSettings()
        return ServerSettings.parse((await self.store.read(guild_id)).fields)

    async def _change(self, guild_id: int, user_id: int, decide: Decide) -> Outcome:
        """Decide from the settings as they are, write with the log entry if they are still so (else decide again)."""
        if self.store is None:
            raise SettingRefusedError(N_("this bot keeps no server settings"), N_("the bot's own settings"))
        for _ in range(CHANGE_ATTEMPTS):
            stored = await self.store.read(guild_id)
            edit = decide(ServerSettings.parse(stored.fields))
            if isinstance(edit, str):
                return Outcome(False, edit)
            entry = Change(self.clock(), user_id, edit.what)
            try:
                await self.store.change(
                    guild_id, stored, entry.encode(), changed=edit.changed, removed=edit.removed, clear=edit.clear
                )
            except SettingsVersionError:
                continue
            log.info("server %s: settings changed by user %s: %s", guild_id, user_id, edit.what)
            return Outcome(True, edit.what)
        raise SettingRefusedError(
            N_("the settings kept changing under this change (other moderators are changing them)"), N_("try again")
        )

    def _drawing_model(self, name: str, rules: ServerRules) -> ModelConfig:
        try:
            model = self.catalog.get(name)
        except InvalidRequestError:
            model = None
        if model is None or model.is_upscaler:
            raise SettingRefusedError(
                IS_NOT_ONE_OF_THE.format(name=repr(name)),
                ", ".join(self.catalog.drawing_names),
            )
        return model


def jobs_words(limit: int) -> str:
    """A jobs limit as members read it (0: none)."""
    return str(limit) if limit else N_("no limit")


def seconds_words(budget_s: int) -> str:
    """A GPU budget as members read it (0: none)."""
    return f"{budget_s} s" if budget_s else N_("no budget")


def _nsfw_mode_words(mode: NsfwMode) -> str:
    return N_("only in age-restricted channels") if mode is NsfwMode.AGE_RESTRICTED else N_("never")


def _without(settings: ServerSettings, fields: Sequence[str]) -> ServerSettings:
    """The settings with these fields back to the bot's."""
    defaults = ServerSettings()
    if any(name.startswith(NSFW_PREFIX) for name in fields):
        settings = replace(settings, nsfw=defaults.nsfw)
        fields = [name for name in fields if not name.startswith(NSFW_PREFIX)]
    names = {
        DEFAULT_MODEL: "default_model",
        ALLOWED_MODELS: "allowed_models",
        MEMBER_ACTIVE_JOBS: "member_active_jobs",
        SERVER_ACTIVE_JOBS: "server_active_jobs",
        COOLDOWN_S: "cooldown_s",
        MEMBER_DAILY_GPU_S: "member_daily_gpu_s",
        SERVER_MONTHLY_GPU_S: "server_monthly_gpu_s",
        NEGATIVE_PROMPT: "negative_prompt",
        MENTIONS: "mention_owner",
        THREADS: "thread_per_job",
    }
    return replace(settings, **{names[name]: getattr(defaults, names[name]) for name in fields})
