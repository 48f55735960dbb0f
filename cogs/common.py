"""What every cog shares: the services it is given, permission checks, and safe replies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import discord
from discord import app_commands

from cogs.i18n import render, tr, trn, use_member_locale
from jobs.access import Actor
from jobs.labels import RESULT_CHANNEL_FIELD, RESULT_GUILD_FIELD
from jobs.notifier import Notifier
from jobs.presets import InvalidRequestError, ModelCatalog
from jobs.prompt_filter import PromptRules
from jobs.server_settings import MENTION_OWNER_FIELD, SettingRefusedError
from jobs.service import CooldownError, JobService, JobServiceError, QuotaExceededError
from jobs.text import N_, Text
from jobs.waiting import HealthCache
from storage.models import TrackedJob

log = logging.getLogger(__name__)

# A job id as the buttons carry it in their custom_ids (`job:<action>:<jid>`, `job:u2:<jid>`).
JOB_ID = r"[0-9a-f]{8,32}"
# Nobody is ever pinged: a prompt with @everyone or a role mention stays text.
NO_PINGS = discord.AllowedMentions.none()
# Discord's answer to a first response after its 3 s (or to one for an interaction it does not know).
UNKNOWN_INTERACTION = 10062


def owner_only(user_id: int) -> discord.AllowedMentions:
    """Pings exactly this user (a result tells its owner it is ready): nothing in the text is parsed, so a prompt's
    @everyone, role or user mentions stay text."""
    return discord.AllowedMentions(everyone=False, users=[discord.Object(user_id)], roles=False, replied_user=False)


def result_mentions(job: TrackedJob) -> discord.AllowedMentions:
    """Whom a job's result pings: its owner alone, or nobody where its server turned that off (`/settings mentions`,
    recorded on the job at submit, so any process delivering it agrees)."""
    return owner_only(job.user_id) if job.extra.get(MENTION_OWNER_FIELD, True) is not False else NO_PINGS


# The card shows the job; its results reply to it. These are what the bot needs in a channel to do that.
REQUIRED_CHANNEL_PERMISSIONS = (
    ("send_messages", N_("Send Messages")),
    ("embed_links", N_("Embed Links")),
    ("attach_files", N_("Attach Files")),
    ("read_message_history", N_("Read Message History")),
)
# Discord ignores Send Messages in a thread (a forum post too): Send Messages in Threads takes its place.
THREAD_SEND_PERMISSION = ("send_messages_in_threads", N_("Send Messages in Threads"))
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
# Exactly what the bot uses: the invite link asks for these and nothing more.
INVITE_PERMISSIONS = discord.Permissions(
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_application_commands=True,
    # Threads: posting in them, and starting one per job (`/imagine thread:`, `/settings thread`).
    send_messages_in_threads=True,
    create_public_threads=True,
)
DISCORD_API_BASE_URL = "https://discord.com/api/v10"


def invite_url(application_id: int) -> str:
    """The OAuth2 link that adds the bot to a server with its slash commands and exactly its permissions."""
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS.value}"
    )


def user_install_url(application_id: int) -> str:
    """The OAuth2 link that installs the app on a member's own account (integration type 1: a user install), so its
    commands follow them to DMs, group DMs and servers without the bot. A user install takes no bot permissions."""
    return f"https://discord.com/oauth2/authorize?client_id={application_id}&integration_type=1&scope=applications.commands"


# How long a closing bot waits for submits in flight. It waits for the poller's own 10 s at the same time, so it
# stays well inside a container's stop grace period (30 s in docker-compose.yml).
SUBMIT_DRAIN_S = 10.0


class ClosingError(Exception):
    """A submit began while the bot is closing: refused before anything is recorded or sent to RunPod."""

    def __str__(self) -> str:
        return tr(
            "I'm restarting right now, so I didn't start anything and nothing was charged. "
            "Please run it again in a few seconds."
        )


@dataclass
class InFlight:
    """The interactions that are submitting a job right now, so that a closing bot lets them finish first.

    A submit cut short by the shutdown (its Redis or HTTP connection closed under it) would leave a job whose
    outcome is unknown, and a member without an answer. So once the bot starts closing, new submits are refused
    (`ClosingError`): the gateway still delivers commands while the poller and the submits in flight wind down, and
    a submit begun then could not be waited for.
    """

    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    accepting: bool = True

    def stop_accepting(self) -> None:
        """From now on `track()` refuses new submits."""
        self.accepting = False

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the current task in while the block runs; `ClosingError` once the bot is closing."""
        if not self.accepting:
            raise ClosingError
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            yield
        finally:
            if task is not None:
                self.tasks.discard(task)

    async def drain(self, timeout_s: float) -> int:
        """Wait until every tracked submit has ended, at most `timeout_s`; returns how many are still running."""
        pending = self.tasks - {asyncio.current_task()}
        if not pending:
            return 0
        log.info("waiting up to %.0f s for %s submit(s) in flight", timeout_s, len(pending))
        _done, still = await asyncio.wait(pending, timeout=timeout_s)
        if still:
            log.warning("%s submit(s) still in flight at shutdown; their outcome will be unknown", len(still))
        return len(still)


class CardNotifier(Notifier, Protocol):
    """The notifier as the cogs use it: it also shows a job's card again from its record (after a cancel), and gives
    a message the cogs post in a channel (a job's card) its turn with the notifier's own (`message_turn`)."""

    async def refresh_card(self, jid: str) -> None: ...

    def message_turn(self, channel_id: int) -> contextlib.AbstractAsyncContextManager[None]: ...

    def posts_waiting(self, channel_id: int) -> int:
        """Messages waiting for their turn to be posted in the channel (cards and results)."""

    def follow_interaction(self, jid: str, interaction: discord.Interaction[Any]) -> None:
        """Where the bot is not in the channel, the job's card is this interaction's answer: edit it through the
        interaction while its token lives."""


class NotModeratorError(app_commands.CheckFailure):
    """The member lacks the moderator permission or role for this action."""


@dataclass
class Services:
    """Everything the cogs use, built once by the composition root. The cogs talk to the core (`service`,
    `prompt_rules`), never to the store."""

    service: JobService
    catalog: ModelCatalog
    health: HealthCache
    notifier: CardNotifier
    prompt_rules: PromptRules
    moderator_role_id: int | None = None
    operator_ids: frozenset[int] = frozenset()
    in_flight: InFlight = field(default_factory=InFlight)

    def is_moderator(self, interaction: discord.Interaction[Any], permission: str = "manage_messages") -> bool:
        """A member with `permission` in this channel, or with the configured moderator role: a moderator of this
        interaction's server, and of no other (never in a DM)."""
        user = interaction.user
        # Through a member's own install in a server that did not install the bot, that server is not the bot's:
        # its moderators have no say over jobs started there (`server_of`).
        if not isinstance(user, discord.Member) or server_of(interaction) is None:
            return False
        if getattr(interaction.permissions, permission, False) or interaction.permissions.administrator:
            return True
        role_id = self.moderator_role_id
        return role_id is not None and any(role.id == role_id for role in user.roles)

    def is_operator(self, interaction: discord.Interaction[Any]) -> bool:
        """Someone who runs the bot: listed in BOT_OWNER_IDS, the application's owner, or an admin or developer of
        the team that owns it (as Discord said at login). Operators may act on any job and see all of /health."""
        user_id = interaction.user.id
        if user_id in self.operator_ids:
            return True
        application: discord.AppInfo | None = interaction.client.application
        if application is None:
            return False
        if application.team is not None:
            return any(
                member.id == user_id and member.role in (discord.TeamMemberRole.admin, discord.TeamMemberRole.developer)
                for member in application.team.members
            )
        return application.owner.id == user_id

    def actor_of(self, interaction: discord.Interaction[Any], permission: str = "manage_messages") -> Actor:
        """Who is acting, as the job core's rule needs it: where, whether they moderate that server, and whether
        they run the bot."""
        return Actor(
            user_id=interaction.user.id,
            guild_id=server_of(interaction),
            moderator=self.is_moderator(interaction, permission),
            operator=self.is_operator(interaction),
        )

    def require_moderator(
        self, interaction: discord.Interaction[Any], permission: str, what: str, *, operators: bool = False
    ) -> None:
        """Raise `NotModeratorError` (which the error handler words) unless the member is a moderator (server admins
        can loosen a command's default permissions, so this is checked in code); with `operators`, the bot's
        operators pass too, anywhere."""
        if self.is_moderator(interaction, permission) or (operators and self.is_operator(interaction)):
            return
        label = render(PERMISSION_NAMES.get(permission, permission.replace("_", " ").title()))
        raise NotModeratorError(
            tr(
                "Only moderators can {what} (the **{label}** permission or the moderator role).",
                what=render(what),
                label=label,
            )
        )


def server_of(interaction: discord.Interaction[Any]) -> int | None:
    """The server whose settings, moderators and lists an interaction belongs to: its server when that server
    installed the bot; None elsewhere (a DM, a group DM, or a server reached only through the member's own install
    of the app, where the operator's defaults apply and the server's moderators have no say)."""
    if interaction.guild_id is not None and interaction.is_guild_integration():
        return interaction.guild_id
    return None


def bot_in_channel(interaction: discord.Interaction[Any]) -> bool:
    """Whether the bot can post where the interaction came from: a server that installed it, or the bot's own DM.
    Elsewhere (a user install used in a server without the bot, a group DM, a DM between others) it can answer only
    through the interaction itself."""
    if interaction.guild_id is not None:
        return interaction.is_guild_integration()
    return not interaction.context.private_channel


# Permissions as Discord's client names them, where discord.py's attribute differs (`manage_guild`).
PERMISSION_NAMES = {
    "manage_guild": N_("Manage Server"),
    "manage_messages": N_("Manage Messages"),
    "administrator": N_("Administrator"),
}


@runtime_checkable
class HasServices(Protocol):
    """The bot as the cogs need it (the composition root's `RunpodBot`)."""

    services: Services


def services_of(bot: object) -> Services:
    """The services of the bot: for an extension's `setup()` to hand to the cogs it adds, and for a button (which
    discord.py rebuilds from its custom_id alone) to act with. Not a cog's own services: loading an extension runs its
    module again as a new module, so a button class another module imported first (delivery builds the result's
    buttons) is not the loaded cog's class, and looking the cog up by its class would fail."""
    if not isinstance(bot, HasServices) or not isinstance(bot.services, Services):
        raise TypeError(
            f"{type(bot).__name__} has no `services` (cogs.common.Services): load the cogs into bot.RunpodBot, "
            "which builds them from the core"
        )
    return bot.services


def dispatchable_components(components: Sequence[Any]) -> Iterator[Any]:
    """Every component of a message that has a custom_id (buttons, menus), wherever it sits in the layout: rows,
    containers, sections and their accessories alike."""
    for component in components:
        if isinstance(getattr(component, "custom_id", None), str):
            yield component
        nested = [*getattr(component, "children", []), *getattr(component, "components", [])]
        accessory = getattr(component, "accessory", None)
        yield from dispatchable_components([*nested, accessory] if accessory is not None else nested)


def missing_channel_permissions(interaction: discord.Interaction[Any]) -> list[str]:
    """The permissions the bot lacks in this channel to post cards and results (in a thread, by the thread's rules)."""
    granted = interaction.app_permissions
    in_thread = isinstance(interaction.channel, discord.Thread)
    required = [
        THREAD_SEND_PERMISSION if in_thread and attribute == "send_messages" else (attribute, label)
        for attribute, label in REQUIRED_CHANNEL_PERMISSIONS
    ]
    return [render(label) for attribute, label in required if not getattr(granted, attribute)]


def outside_private_thread(interaction: discord.Interaction[Any]) -> bool:
    """The interaction comes from a private thread the bot is not a member of and cannot moderate: Discord lets
    only members and Manage Threads see one, so nothing the bot posts there would arrive."""
    channel = interaction.channel
    return (
        isinstance(channel, discord.Thread)
        and channel.type is discord.ChannelType.private_thread
        and channel.me is None
        and not interaction.app_permissions.manage_threads
    )


async def reply(interaction: discord.Interaction[Any], text: str, **kwargs: Any) -> None:
    """An ephemeral answer, whether or not the interaction was already acknowledged."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS, **kwargs)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS, **kwargs)


def worded(error: BaseException) -> str:
    """An error's words in the current locale: the core's `Text` it carries (`text`), or its message looked up in the
    catalog (a constant the core marked), else as it is."""
    if isinstance(error, InvalidRequestError):
        return tr(
            "`{option}` {problem}. Allowed: {allowed}.",
            option=error.option,
            problem=render(error.problem),
            allowed=render(error.allowed),
        )
    if isinstance(error, SettingRefusedError):
        return tr("{problem}. Allowed: {allowed}.", problem=render(error.problem), allowed=render(error.allowed))
    text = getattr(error, "text", None)
    return render(text) if isinstance(text, Text) else render(str(error))


def explain(error: BaseException) -> str | None:
    """The member-facing text for an expected error; None for an unexpected one."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, InvalidRequestError):
        return tr("That request can't be made: {reason}", reason=worded(error))
    if isinstance(error, CooldownError):
        return tr(
            "Slow down a little: you can submit again in {seconds} s.",
            seconds=max(1, round(error.retry_after_ms / 1000)),
        )
    if isinstance(error, SettingRefusedError):
        return tr("Not changed: {reason}", reason=worded(error))
    if isinstance(error, QuotaExceededError):
        if error.scope == "member":
            return trn(
                "You already have {n} job in progress in this server (it allows {limit} per member). "
                "You can submit again as soon as one finishes, or cancel one with /cancel.",
                "You already have {n} jobs in progress in this server (it allows {limit} per member). "
                "You can submit again as soon as one finishes, or cancel one with /cancel.",
                error.active,
                limit=error.limit,
            )
        if error.scope == "user":
            return trn(
                "You already have {n} job in progress (the limit is {limit}). "
                "You can submit again as soon as one finishes, or cancel one with /cancel.",
                "You already have {n} jobs in progress (the limit is {limit}). "
                "You can submit again as soon as one finishes, or cancel one with /cancel.",
                error.active,
                limit=error.limit,
            )
        return trn(
            "This server already has {n} job in progress (the limit is {limit}). Please try again when one finishes.",
            "This server already has {n} jobs in progress (the limit is {limit}). Please try again when one finishes.",
            error.active,
            limit=error.limit,
        )
    if isinstance(error, JobServiceError | app_commands.CheckFailure | ClosingError):
        return worded(error)
    if isinstance(error, app_commands.CommandNotFound):
        # While a closing bot unloads its cogs, and when Discord shows commands this version no longer has.
        return tr(
            "The command `/{name}` isn't available right now: I may be restarting or updating. "
            "Please try again in a few seconds.",
            name=error.name,
        )
    return None


async def report_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """Expected errors become a short ephemeral answer; unexpected ones are logged under an id the member sees."""
    use_member_locale(interaction)
    if _came_too_late(interaction, error):
        # The gateway delivered it after Discord's 3 s (a stalled connection, a busy loop): Discord refused the
        # first answer and would refuse any other; the member was told the application did not respond.
        age = (discord.utils.utcnow() - interaction.created_at).total_seconds()
        log.warning("interaction %s came too late to answer (%.1f s after it was made)", interaction.id, age)
        return
    text = explain(error)
    if text is None:
        error_id = secrets.token_hex(4)
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        log.error("unexpected error %s in interaction %s", error_id, interaction.id, exc_info=original)
        text = tr(
            "Something went wrong on my side (error id `{error_id}`). Please try again in a moment.", error_id=error_id
        )
    try:
        await reply(interaction, text)
    except discord.HTTPException:
        log.warning("could not tell the member about an error in interaction %s", interaction.id)


def _came_too_late(interaction: discord.Interaction[Any], error: BaseException) -> bool:
    """Whether Discord refused the interaction's first answer as unknown: nothing can be answered any more."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    return (
        isinstance(error, discord.NotFound) and error.code == UNKNOWN_INTERACTION and not interaction.response.is_done()
    )


async def guarded(interaction: discord.Interaction[Any], action: Callable[[], Awaitable[None]]) -> None:
    """Run a button's action in the member's language, with the same error handling as the slash commands."""
    use_member_locale(interaction)
    try:
        await action()
    except Exception as exc:
        await report_error(interaction, exc)


def jump_url(guild_id: int | None, channel_id: int | None, message_id: int | None) -> str | None:
    if channel_id is None or message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def job_link(job: TrackedJob) -> str | None:
    """Where a job is shown: its result once posted (which replaced the card), otherwise its card."""
    if job.result_message_ids:
        where = job.extra.get(RESULT_CHANNEL_FIELD, job.channel_id)
        if isinstance(where, int):
            # Records from before the result's server was kept: a result outside the job's channel was in a DM.
            guild = job.extra.get(RESULT_GUILD_FIELD, job.guild_id if where == job.channel_id else None)
            return jump_url(guild if isinstance(guild, int) else None, where, job.result_message_ids[0])
    return jump_url(job.guild_id, job.channel_id, job.card_message_id)
