"""The gateway: JSON text frames over a WebSocket, sessions that survive reconnects, and dispatches by shard.

A session outlives its connection: dispatches sent while it is disconnected (or stalled) are kept with their
sequence numbers and replayed on RESUME, then RESUMED is sent. A client that closes with 1000/1001 ends its
session; a connection that just vanishes leaves it resumable, as on Discord.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord.views import SessionView
from tests.fakes.discord.world import World

log = logging.getLogger(__name__)

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_PRESENCE, OP_VOICE_STATE = 0, 1, 2, 3, 4
OP_RESUME, OP_RECONNECT, OP_REQUEST_MEMBERS, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_SESSION_TIMED_OUT = 4009
CLOSE_INVALID_SHARD = 4010
CLOSE_INVALID_API_VERSION = 4012

DEFAULT_HEARTBEAT_INTERVAL_MS = 41_250
REPLAY_BUFFER = 5_000
RESUME_WINDOW = timedelta(minutes=3)
KEPT_SESSIONS = 50
# A close code for connections that ended without a close frame (the peer vanished).
ABNORMAL_CLOSURE = 1006


def frame(op: int, data: Any, *, seq: int | None = None, event: str | None = None) -> str:
    return json.dumps({"op": op, "d": data, "s": seq, "t": event}, separators=(",", ":"))


class Connection:
    """One WebSocket. Frames go out through a queue and one writer task, so they keep their order."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, url: str) -> None:
        self.ws = ws
        self.transport = transport
        self.url = url
        self.stalled = False
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        # Owned by this connection: `close` ends it by queueing None, and `_write` ends when the socket does.
        self._writer = asyncio.create_task(self._write(), name="fake-discord-gateway-writer")

    def send(self, data: str) -> None:
        self._queue.put_nowait(data)

    def finish(self) -> None:
        self._queue.put_nowait(None)

    def abort(self) -> None:
        """Cut the TCP connection without a close frame (a network failure, or a killed process)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    async def close(self, code: int) -> None:
        self.finish()
        if not self.ws.closed:
            try:
                await asyncio.wait_for(self.ws.close(code=code), timeout=2.0)
            except (TimeoutError, ConnectionError, RuntimeError):
                self.abort()

    async def _write(self) -> None:
        while True:
            data = await self._queue.get()
            if data is None or self.ws.closed:
                return
            try:
                await self.ws.send_str(data)
            except (ConnectionError, RuntimeError) as exc:
                # The client went away mid-conversation; the session keeps the frame for a RESUME.
                log.debug("gateway write failed: %s", exc)
                return


@dataclass
class Session:
    id: str
    shard: tuple[int, int] | None
    intents: int
    identified_at: datetime
    conn: Connection | None = None
    seq: int = 0
    buffer: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=REPLAY_BUFFER))
    resumable: bool = True
    ready: bool = False
    connections: int = 1
    resumes: int = 0
    replayed: int = 0
    last_close_code: int | None = None
    disconnected_at: datetime | None = None

    def covers(self, guild_id: int | None) -> bool:
        """Whether the session's shard receives the guild's events; DMs (`None`) go to shard 0."""
        if self.shard is None:
            return True
        shard_id, shard_count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % shard_count == shard_id

    def alive(self, now: datetime) -> bool:
        if self.conn is not None:
            return True
        if not self.resumable:
            return False
        return self.disconnected_at is None or now - self.disconnected_at < RESUME_WINDOW


class Gateway:
    """All gateway sessions of the fake's one bot application."""

    def __init__(self, world: World, *, heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS) -> None:
        self.world = world
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.url = ""
        self.resume_url = ""
        self.sessions: dict[str, Session] = {}
        self._connections: set[Connection] = set()
        world.dispatch = self.dispatch

    # --- the WebSocket endpoint ----------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        transport = request.transport
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws, transport, str(request.url))
        self._connections.add(conn)
        session: Session | None = None
        close_code = ABNORMAL_CLOSURE
        try:
            if request.query.get("v", "10") not in ("9", "10"):
                await conn.close(CLOSE_INVALID_API_VERSION)
                return ws
            conn.send(frame(OP_HELLO, {"heartbeat_interval": self.heartbeat_interval_ms}))
            timeout = self.heartbeat_interval_ms * 2 / 1000
            while True:
                msg = await ws.receive(timeout=timeout)
                if msg.type is WSMsgType.TEXT:
                    try:
                        payload = json.loads(msg.data)
                        op = int(payload["op"])
                    except (ValueError, KeyError, TypeError):
                        await conn.close(CLOSE_DECODE_ERROR)
                        break
                    session = await self._on_frame(conn, session, op, payload.get("d"))
                    if ws.closed:
                        break
                elif msg.type is WSMsgType.BINARY:
                    await conn.close(CLOSE_DECODE_ERROR)
                    break
                else:
                    if msg.type is WSMsgType.CLOSE:
                        close_code = int(msg.data)
                    break
        except TimeoutError:
            log.info("gateway connection sent no heartbeat in time; closing it")
            await conn.close(CLOSE_SESSION_TIMED_OUT)
        finally:
            conn.finish()
            self._connections.discard(conn)
            self._detach(conn, close_code)
        return ws

    async def _on_frame(self, conn: Connection, session: Session | None, op: int, data: Any) -> Session | None:
        if op == OP_HEARTBEAT:
            conn.send(frame(OP_HEARTBEAT_ACK, None))
            return session
        if op == OP_IDENTIFY:
            if session is not None:
                await conn.close(CLOSE_ALREADY_AUTHENTICATED)
                return session
            return await self._identify(conn, data or {})
        if op == OP_RESUME:
            if session is not None:
                await conn.close(CLOSE_ALREADY_AUTHENTICATED)
                return session
            return self._resume(conn, data or {})
        if session is None:
            await conn.close(CLOSE_NOT_AUTHENTICATED)
            return None
        if op in (OP_PRESENCE, OP_VOICE_STATE):
            return session
        if op == OP_REQUEST_MEMBERS:
            self._members_chunk(session, data or {})
            return session
        await conn.close(CLOSE_UNKNOWN_OPCODE)
        return session

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> Session | None:
        if data.get("token") != self.world.token:
            await conn.close(CLOSE_AUTHENTICATION_FAILED)
            return None
        shard = data.get("shard")
        shard_pair: tuple[int, int] | None = None
        if shard is not None:
            try:
                shard_id, shard_count = (int(shard[0]), int(shard[1]))
            except (TypeError, ValueError, IndexError):
                shard_id, shard_count = -1, 0
            if not 0 <= shard_id < shard_count:
                await conn.close(CLOSE_INVALID_SHARD)
                return None
            shard_pair = (shard_id, shard_count)
        now = self.world.clock.now()
        self._prune(now)
        session = Session(
            id=secrets.token_hex(16),
            shard=shard_pair,
            intents=int(data.get("intents") or 0),
            identified_at=now,
            conn=conn,
        )
        self.sessions[session.id] = session
        guilds = [guild for guild in self.world.guilds.values() if guild.bot_installed and session.covers(guild.id)]
        ready: dict[str, Any] = {
            "v": 10,
            "user": self.world.bot.payload() | {"verified": True, "mfa_enabled": False, "flags": 0, "email": None},
            "guilds": [{"id": str(guild.id), "unavailable": True} for guild in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_url,
            "application": {"id": str(self.world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "guild_join_requests": [],
            "user_settings": {},
            "auth": {},
        }
        if shard_pair is not None:
            ready["shard"] = list(shard_pair)
        self._dispatch_to(session, "READY", ready)
        for guild in guilds:
            self._dispatch_to(session, "GUILD_CREATE", self.world.guild_create_payload(guild))
        session.ready = True
        log.info("gateway session %s identified (shard %s, %s guilds)", session.id, shard_pair, len(guilds))
        self.world.touch()
        return session

    def _resume(self, conn: Connection, data: dict[str, Any]) -> Session | None:
        session = self.sessions.get(str(data.get("session_id")))
        now = self.world.clock.now()
        if session is None or data.get("token") != self.world.token or not session.alive(now):
            # The client answers op 9 (not resumable) by closing and identifying anew.
            conn.send(frame(OP_INVALID_SESSION, False))
            return None
        last_seen = int(data.get("seq") or 0)
        if session.buffer and session.buffer[0][0] > last_seen + 1:
            # Dispatches the client missed have already left the replay buffer: it must start over.
            session.resumable = False
            conn.send(frame(OP_INVALID_SESSION, False))
            return None
        if session.conn is not None and session.conn is not conn:
            old = session.conn
            session.conn = None
            old.abort()
        session.conn = conn
        session.connections += 1
        session.resumes += 1
        session.disconnected_at = None
        missed = [text for seq, text in session.buffer if seq > last_seen]
        for text in missed:
            conn.send(text)
        session.replayed += len(missed)
        self._dispatch_to(session, "RESUMED", {})
        log.info("gateway session %s resumed (%s dispatches replayed)", session.id, len(missed))
        self.world.touch()
        return session

    def _members_chunk(self, session: Session, data: dict[str, Any]) -> None:
        guild = self.world.guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        wanted = {int(user_id) for user_id in data.get("user_ids") or []}
        query = str(data.get("query") or "").lower()
        limit = int(data.get("limit") or 0) or len(guild.members)
        members = [
            member
            for member in guild.members.values()
            if (not wanted or member.user.id in wanted) and member.user.username.lower().startswith(query)
        ][:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [member.payload() for member in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(user_id) for user_id in wanted - {member.user.id for member in members}],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    def _detach(self, conn: Connection, close_code: int) -> None:
        for session in self.sessions.values():
            if session.conn is conn:
                session.conn = None
                session.disconnected_at = self.world.clock.now()
                session.last_close_code = close_code
                if close_code in (1000, 1001):
                    # A clean close from the client ends the session (it cannot be resumed).
                    session.resumable = False
                log.info("gateway session %s disconnected (close code %s)", session.id, close_code)
                self.world.touch()

    def _prune(self, now: datetime) -> None:
        dead = [s.id for s in self.sessions.values() if not s.alive(now)]
        for session_id in dead[: max(0, len(self.sessions) - KEPT_SESSIONS)]:
            del self.sessions[session_id]

    # --- dispatching ---------------------------------------------------------------------------------------------

    def dispatch(self, event: str, payload: dict[str, Any], *, guild_id: int | None, intent: int | None) -> list[str]:
        now = self.world.clock.now()
        delivered = []
        for session in list(self.sessions.values()):
            if not session.alive(now) or not session.ready:
                continue
            if not session.covers(guild_id):
                continue
            if intent is not None and not session.intents & intent:
                continue
            self._dispatch_to(session, event, payload)
            delivered.append(session.id)
        return delivered

    def _dispatch_to(self, session: Session, event: str, payload: dict[str, Any]) -> None:
        session.seq += 1
        text = frame(OP_DISPATCH, payload, seq=session.seq, event=event)
        session.buffer.append((session.seq, text))
        if session.conn is not None and not session.conn.stalled:
            session.conn.send(text)

    # --- control -------------------------------------------------------------------------------------------------

    def _targets(self, session_id: str | None) -> list[Session]:
        connected = [s for s in self.sessions.values() if s.conn is not None]
        if session_id is None:
            return connected
        return [s for s in connected if s.id == session_id]

    def reconnect(self, session_id: str | None = None) -> list[str]:
        """Ask the client(s) to reconnect and resume (op 7)."""
        targets = self._targets(session_id)
        for session in targets:
            assert session.conn is not None
            session.conn.send(frame(OP_RECONNECT, None))
        return [s.id for s in targets]

    def invalidate(self, session_id: str | None = None, *, resumable: bool = False) -> list[str]:
        """Tell the client(s) the session is invalid (op 9); unless `resumable`, it must IDENTIFY again."""
        targets = self._targets(session_id)
        for session in targets:
            assert session.conn is not None
            if not resumable:
                session.resumable = False
            session.conn.send(frame(OP_INVALID_SESSION, resumable))
        return [s.id for s in targets]

    def drop(self, session_id: str | None = None) -> list[str]:
        """Cut the connection(s) without a close frame; the sessions stay resumable."""
        targets = self._targets(session_id)
        for session in targets:
            assert session.conn is not None
            session.conn.abort()
        return [s.id for s in targets]

    def stall(self, session_id: str | None = None) -> list[str]:
        """Stop writing dispatches to the connection(s) (kept for replay), as when a network path goes dead."""
        targets = self._targets(session_id)
        for session in targets:
            assert session.conn is not None
            session.conn.stalled = True
        return [s.id for s in targets]

    async def close_all(self) -> None:
        """Cut every connection and forget every session (a reset, or the server stopping)."""
        for conn in list(self._connections):
            conn.finish()
            conn.abort()
        self.sessions.clear()

    def views(self) -> list[SessionView]:
        now = self.world.clock.now()
        return [
            SessionView(
                id=s.id,
                shard=list(s.shard) if s.shard is not None else None,
                intents=s.intents,
                connected=s.conn is not None,
                resumable=s.alive(now) and s.resumable,
                ready=s.ready,
                seq=s.seq,
                connections=s.connections,
                resumes=s.resumes,
                replayed=s.replayed,
                guild_ids=[g for g in self.world.guilds if s.covers(g)],
                last_close_code=s.last_close_code,
            )
            for s in self.sessions.values()
        ]
