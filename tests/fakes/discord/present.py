"""Turning the world's records into the control API's views (JSON-shaped dicts), and a message into the text a
member reads (`render_message`)."""

from __future__ import annotations

from typing import Any

from tests.fakes.discord.clock import iso
from tests.fakes.discord.models import (
    OVERWRITE_MEMBER,
    Attachment,
    Channel,
    Command,
    Guild,
    Interaction,
    Member,
    Message,
    Role,
)
from tests.fakes.discord.views import (
    AttachmentView,
    ChannelView,
    CommandView,
    GuildView,
    InteractionView,
    MemberView,
    MessageView,
    OverwriteView,
    PingsView,
    ResponseView,
    RoleView,
    VersionView,
)
from tests.fakes.discord.world import DEFERRED_UPDATE_MESSAGE, TOKEN_LIFETIME, UPDATE_MESSAGE, World


def role_view(role: Role) -> RoleView:
    return RoleView(
        id=role.id,
        guild_id=role.guild_id,
        name=role.name,
        permissions=role.permissions,
        position=role.position,
        mentionable=role.mentionable,
        managed=role.managed,
    )


def channel_view(world: World, channel: Channel) -> ChannelView:
    return ChannelView(
        id=channel.id,
        guild_id=channel.guild_id,
        recipient_id=channel.recipient.id if channel.recipient is not None else None,
        name=channel.name,
        type=channel.type,
        position=channel.position,
        topic=channel.topic,
        upload_limit=world.upload_limit(channel),
        overwrites=[
            OverwriteView(
                id=ow.id, type="member" if ow.type == OVERWRITE_MEMBER else "role", allow=ow.allow, deny=ow.deny
            )
            for ow in channel.overwrites.values()
        ],
        bot_permissions=world.bot_permissions(channel),
        parent_id=channel.parent_id,
        owner_id=channel.owner_id,
        member_ids=list(channel.thread_member_ids),
        archived=channel.archived,
        locked=channel.locked,
        deleted=channel.deleted,
    )


def member_view(world: World, member: Member) -> MemberView:
    guild = world.guilds[member.guild_id]
    return MemberView(
        user_id=member.user.id,
        guild_id=member.guild_id,
        username=member.user.username,
        nick=member.nick,
        bot=member.user.bot,
        role_ids=list(member.role_ids),
        permissions=world.guild_permissions(guild, member.user.id),
        dms_open=member.user.dms_open,
    )


def guild_view(world: World, guild: Guild) -> GuildView:
    return GuildView(
        id=guild.id,
        name=guild.name,
        owner_id=guild.owner_id,
        premium_tier=guild.premium_tier,
        upload_limit=guild.upload_limit,
        everyone_role_id=guild.id,
        bot_role_id=guild.bot_role_id,
        roles=[role_view(role) for role in guild.roles.values()],
        channels=[channel_view(world, world.channels[channel_id]) for channel_id in guild.channel_ids],
        members=[member_view(world, member) for member in guild.members.values()],
    )


def attachment_view(attachment: Attachment) -> AttachmentView:
    return AttachmentView(
        id=attachment.id,
        filename=attachment.filename,
        size=len(attachment.data),
        content_type=attachment.content_type,
        url=attachment.url,
        proxy_url=attachment.proxy_url,
        width=attachment.width,
        height=attachment.height,
        description=attachment.description,
    )


def message_view(message: Message) -> MessageView:
    return MessageView(
        id=message.id,
        channel_id=message.channel_id,
        guild_id=message.guild_id,
        author_id=message.author_id,
        webhook_id=message.webhook_id,
        type=message.type,
        content=message.content,
        embeds=message.embeds,
        components=message.components,
        attachments=[attachment_view(a) for a in message.attachments],
        flags=message.flags,
        ephemeral=message.ephemeral,
        tts=message.tts,
        message_reference=message.message_reference,
        allowed_mentions=message.allowed_mentions,
        pings=PingsView(
            users=list(message.pings.users),
            roles=list(message.pings.roles),
            everyone=message.pings.everyone,
            replied_user=message.pings.replied_user,
        ),
        pinged_anyone=message.pings.anyone,
        interaction_id=message.interaction_id,
        created_at=iso(message.created_at),
        edited_at=iso(message.edited_at) if message.edited_at else None,
        deleted=message.deleted,
        history=[
            VersionView(
                content=version.content,
                embeds=version.embeds,
                components=version.components,
                attachments=[attachment_view(a) for a in version.attachments],
                flags=version.flags,
                at=iso(version.at),
            )
            for version in message.history
        ],
    )


def interaction_view(world: World, interaction: Interaction) -> InteractionView:
    original_id = interaction.original_message_id
    if (
        original_id is None
        and interaction.response is not None
        and interaction.response.type in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE)
    ):
        original_id = interaction.message_id
    original = world.messages.get(original_id) if original_id is not None else None
    response = interaction.response
    name = interaction.data.get("name")
    if name is not None:
        name = " ".join([name, *_subcommand_path(interaction.data.get("options") or [])])
    return InteractionView(
        id=interaction.id,
        token=interaction.token,
        type=interaction.type,
        application_id=world.application_id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        user_id=interaction.user_id,
        name=name,
        custom_id=interaction.data.get("custom_id"),
        data=interaction.data,
        message_id=interaction.message_id,
        created_at=iso(interaction.created_at),
        expires_at=iso(interaction.created_at + TOKEN_LIFETIME),
        response=(
            ResponseView(type=response.type, ephemeral=response.ephemeral, data=response.data, at=iso(response.at))
            if response is not None
            else None
        ),
        original_message=message_view(original) if original is not None else None,
        followups=[message_view(world.messages[message_id]) for message_id in interaction.followup_ids],
        choices=interaction.choices,
        modal=interaction.modal,
        delivered_to=list(interaction.delivered_to),
    )


def _subcommand_path(options: list[dict[str, object]]) -> list[str]:
    for option in options:
        if option.get("type") in (1, 2):
            inner = option.get("options")
            return [str(option["name"]), *_subcommand_path(inner if isinstance(inner, list) else [])]
    return []


def command_view(command: Command) -> CommandView:
    return CommandView(
        id=command.id,
        application_id=command.application_id,
        guild_id=command.guild_id,
        name=command.name,
        description=command.description,
        type=command.type,
        options=command.options,
        name_localizations=command.raw.get("name_localizations"),
        description_localizations=command.raw.get("description_localizations"),
        integration_types=command.raw.get("integration_types"),
        contexts=command.raw.get("contexts"),
    )


# --- what a member sees ----------------------------------------------------------------------------------------------

INDENT = "  "


def render_message(message: MessageView) -> str:
    """The message as a member reads it, one line per thing shown (works on views from either driver).

    A Components V2 message is its component tree: text displays as their text, `gallery: a.png (512x512) | b.png`,
    `thumbnail: a.png`, `file: a.png`, `---` for a separator, an action row as `[Label] [Other (disabled)]`, a link
    button as `[Label](url)`, a select as `<select custom_id: option | option>`, a section's accessory after its text
    as `-> [Label]`, and a container's children indented under `container:`. Media show the attachment's filename
    (or the external URL). A legacy message is its content, then `embed: <title>` lines, a `files: a.png | b.png`
    line, then its action rows. (A V2 message shows its files only through its components, as Discord does.)
    """
    names = {attachment["url"]: attachment["filename"] for attachment in message["attachments"]}
    lines: list[str] = []
    if not message["flags"] & (1 << 15):
        if message["content"]:
            lines.extend(message["content"].splitlines())
        for embed in message["embeds"]:
            lines.append(f"embed: {embed.get('title') or embed.get('description') or ''}".rstrip())
        if message["attachments"]:
            lines.append("files: " + " | ".join(a["filename"] for a in message["attachments"]))
    for component in message["components"]:
        _render_component(component, 0, names, lines)
    return "\n".join(lines)


def _render_component(component: dict[str, Any], depth: int, names: dict[str, str], lines: list[str]) -> None:
    pad = INDENT * depth
    kind = component.get("type")
    if kind == 1:
        lines.append(pad + " ".join(_render_interactive(child) for child in component.get("components") or []))
    elif kind in (2, 3, 5, 6, 7, 8):
        lines.append(pad + _render_interactive(component))
    elif kind == 9:
        for child in component.get("components") or []:
            _render_component(child, depth, names, lines)
        accessory = component.get("accessory") or {}
        if accessory.get("type") == 11:
            lines.append(f"{pad}-> thumbnail: {_media_name(accessory.get('media'), names)}")
        else:
            lines.append(f"{pad}-> {_render_interactive(accessory)}")
    elif kind == 10:
        lines.extend(pad + line for line in str(component.get("content", "")).splitlines())
    elif kind == 11:
        lines.append(f"{pad}thumbnail: {_media_name(component.get('media'), names)}")
    elif kind == 12:
        items = [_media_name(item.get("media"), names) for item in component.get("items") or []]
        lines.append(f"{pad}gallery: {' | '.join(items)}")
    elif kind == 13:
        lines.append(f"{pad}file: {_media_name(component.get('file'), names)}")
    elif kind == 14:
        lines.append(f"{pad}---")
    elif kind == 17:
        lines.append(f"{pad}container:")
        for child in component.get("components") or []:
            _render_component(child, depth + 1, names, lines)
    else:
        lines.append(f"{pad}<component type {kind}>")


def _render_interactive(component: dict[str, Any]) -> str:
    if component.get("type") == 2:
        label = component.get("label") or (component.get("emoji") or {}).get("name") or ""
        if component.get("disabled"):
            label += " (disabled)"
        url = component.get("url")
        return f"[{label}]({url})" if url else f"[{label}]"
    options = " | ".join(option.get("label", "") for option in component.get("options") or [])
    return f"<select {component.get('custom_id')}: {options}>" if options else f"<select {component.get('custom_id')}>"


def _media_name(media: Any, names: dict[str, str]) -> str:
    """An attachment's filename (with its size in pixels, for an image), or an external media's URL."""
    media = media if isinstance(media, dict) else {}
    url = str(media.get("url", ""))
    name = names.get(url, url)
    width, height = media.get("width"), media.get("height")
    return f"{name} ({width}x{height})" if width and height else name
