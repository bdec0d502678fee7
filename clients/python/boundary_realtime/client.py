"""Asyncio client for a Boundary Realtime server (the WebSocket protocol of docs/protocol.md).

Same semantics as the JavaScript client (clients/js):

    idle/closed --connect()--> connecting --connected frame--> connected
    connecting --attempt failed--> reconnecting (retries with backoff)   (reconnect=True)
    connected --connection lost--> reconnecting --success--> connected   (reconnect=True)
    connecting/connected --failed/lost--> closed                         (reconnect=False)
    any --disconnect()--> closed  (no automatic reconnect; an explicit connect() reopens)

Delivery guarantees, as the client sees them:

- A command (publish, ping, unsubscribe) is sent at most once. One issued while there is no
  connection waits in a bounded queue (``max_queued_commands``) and is sent, in issue order,
  once the next connection is ready; one already sent when the connection drops fails with
  ``disconnected``, because the server may or may not have carried it out.
- Subscriptions are state, not commands: every confirmed one is sent again after each
  reconnect, before the queued commands, so a queued publish reaches a topic the client
  listens to. A subscribe in flight when the connection drops is sent again too (it is
  idempotent), so ``await subscribe()`` rides through a reconnect.
- Topics with history on the server (``--history``, docs/history.md) are recovered: the client
  remembers per topic the epoch and the offset of the last message it received, subscribes
  with ``recover`` after every reconnect and gets exactly what it missed, once and in order
  (or ``recovered: false`` when the server no longer has it), reported as a ``recovery``
  event. A message whose offset the client already holds is dropped. Messages published on
  other topics while the client is disconnected are not replayed.
- Topics subscribed with ``presence=True`` on a server with ``--presence`` (docs/presence.md)
  get a member list the client keeps exact: after every (re)subscribe it lists the topic, then
  applies the ``presence-join`` / ``presence-leave`` events that arrive after the answer (the
  server sends every event after the answer that follows it), and tells the app with a
  ``members`` event whenever the list changes.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import json
import logging
import random as _random
import time
import urllib.parse
from typing import Any, Awaitable, Callable, Optional, Union

import websockets
import websockets.client
import websockets.exceptions

from .backoff import backoff_delay
from .errors import RealtimeError
from .events import EventEmitter
from .presence import PresenceListing, PresenceMembers, Roster, event_user, parse_listing
from .streams import DUPLICATE, Stream, StreamPosition, as_position, message_offset
from .token import refresh_delay, token_expiry

log = logging.getLogger("boundary_realtime")

IDLE = "idle"
CONNECTING = "connecting"
CONNECTED = "connected"
RECONNECTING = "reconnecting"
CLOSED = "closed"

# The reply that settles each command (an `error` with the same ref settles any of them).
_EXPECTED_REPLY = {"subscribe": "subscribed", "unsubscribe": "unsubscribed",
                   "publish": "published", "ping": "pong", "refresh": "refreshed",
                   "presence": "presence"}
# Replies to commands: never handed to topic handlers even though some carry `topic`.
_REPLY_TYPES = frozenset(_EXPECTED_REPLY.values())
# Refusals that drop a subscription while re-establishing it after a reconnect (e.g. the new
# token no longer carries a role). A timeout or a lost connection fails the attempt instead.
_RESUBSCRIBE_REFUSALS = frozenset({"forbidden", "invalid-topic", "too-many-subscriptions",
                                   "bad-request"})
# `rate-limited` while resubscribing many topics at once (the server's default burst is 200
# commands): wait and send the refused ones again, a bounded number of times.
_RESUBSCRIBE_RATE_LIMIT_WAIT = 1.0
_RESUBSCRIBE_ROUNDS = 5
# Presence events: they change a topic's member list and go to their type's handlers, not to
# the topic's message handlers.
_PRESENCE_EVENTS = frozenset({"presence-join", "presence-leave"})
# Listing a topic's members again after these failures (on the same connection).
_PRESENCE_RETRIES = frozenset({"rate-limited", "timeout"})

TokenSource = Callable[[], Union[Optional[str], Awaitable[Optional[str]]]]
MessageHandler = Callable[[dict], Any]


class Subscription:
    """A handler bound to one topic; returned by ``RealtimeClient.subscribe``."""

    def __init__(self, client: "RealtimeClient", topic: str, handler: MessageHandler,
                 presence: bool = False):
        self.topic = topic
        self.handler = handler
        self.presence = presence  # asked the client to keep the topic's member list
        self.active = False  # confirmed by the server and not unsubscribed
        self._client = client

    async def unsubscribe(self) -> None:
        """Stop delivering to this handler; the server is told when it was the topic's last
        handler. Calling it twice is harmless."""
        await self._client._unsubscribe(self)

    def __repr__(self) -> str:
        return f"<Subscription topic={self.topic!r} active={self.active}>"


class _Request:
    __slots__ = ("ref", "action", "topic", "text", "future", "timer", "sent_on", "internal",
                 "prepare", "recover", "report", "on_reply")

    def __init__(self, ref: str, action: str, topic: Optional[str], text: str,
                 future: asyncio.Future, internal: bool):
        self.ref = ref
        self.action = action
        self.topic = topic
        self.text = text
        self.future = future
        self.timer: Optional[asyncio.TimerHandle] = None  # runs from the send, not the queue
        self.sent_on: Optional[_Connection] = None         # None while in the offline queue
        self.internal = internal                           # a resubscribe during setup
        # A subscribe: sets `text`, `recover` and `report` just before each send, from the
        # position the client holds then (see RealtimeClient._prepare_subscribe).
        self.prepare: Optional[Callable[["_Request"], None]] = None
        self.recover: Optional[StreamPosition] = None      # sent as "recover", or None
        # Which outcome becomes a `recovery` event: "always", "failure" (recovered: false
        # only) or None.
        self.report: Optional[str] = None
        # Called with the (non-error) reply as soon as it is read, before the next message.
        self.on_reply: Optional[Callable[[dict], None]] = None


class _Connection:
    """One WebSocket and its reader; `ready` once resubscribed and the queue was flushed."""

    def __init__(self, ws: websockets.client.WebSocketClientProtocol, hello: dict):
        self.ws = ws
        self.hello = hello
        self.ready = False
        self.lost = False
        self.reader: Optional[asyncio.Task] = None


def _with_token(url: str, token: Optional[str]) -> str:
    """`url` with `token=<token>` in its query (URL-encoded), replacing any token there."""
    if token is None or token == "":
        return url
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if k != "token"]
    query.append(("token", token))
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote, safe="")
    return urllib.parse.urlunsplit(parts._replace(query=encoded))


class RealtimeClient:
    """Asyncio client for Boundary Realtime.

    ``url``: the WebSocket endpoint, e.g. ``ws://127.0.0.1:3000/ws``; the token is appended
    as the ``token`` query parameter.
    ``token`` / ``get_token``: a fixed JWT, or a function (plain or ``async``) called before
    every connect and reconnect, so an expired token can be replaced. ``get_token`` wins.
    ``refresh_ahead``: with ``get_token``, refresh the open connection's token before its
    ``exp`` (read from the JWT payload, not verified): 30 s or 10% of the token's lifetime
    before ``exp``, whichever is sooner to ``exp``, ``get_token`` is called and its token sent
    as a ``refresh`` command. Off, or when a refresh fails, the server closes the connection
    with 4001 at ``exp`` and the client reconnects with a token from ``get_token``.
    ``reconnect``: retry failed and lost connections, waiting
    ``backoff_delay(attempt, initial_delay, max_delay, factor)`` seconds before retry number
    ``attempt`` (reset after every successful connect), plus ``shutdown_reconnect_delay``
    after a ``server-shutdown`` message.
    ``request_timeout``: how long a sent command waits for its reply (time in the offline
    queue does not count); also the deadline for opening a connection.
    ``max_queued_commands``: commands kept while not connected; beyond it they fail at once
    with ``queue-full``.
    ``random``: the jitter source, a function returning a float in [0, 1) (for tests).
    ``connect_options``: extra keyword arguments for ``websockets.client.connect``.
    """

    def __init__(self, url: str, token: Optional[str] = None,
                 get_token: Optional[TokenSource] = None, reconnect: bool = True,
                 initial_delay: float = 0.5, max_delay: float = 30.0, factor: float = 2.0,
                 shutdown_reconnect_delay: float = 2.0, request_timeout: float = 10.0,
                 max_queued_commands: int = 100, *,
                 random: Callable[[], float] = _random.random,
                 connect_options: Optional[dict[str, Any]] = None,
                 refresh_ahead: bool = True):
        if initial_delay < 0 or max_delay < 0 or shutdown_reconnect_delay < 0:
            raise ValueError("delays must be >= 0")
        if factor < 1:
            raise ValueError("factor must be >= 1")
        if request_timeout <= 0:
            raise ValueError("request_timeout must be > 0")
        if max_queued_commands < 0:
            raise ValueError("max_queued_commands must be >= 0")
        self.url = url
        self._token = token
        self._get_token = get_token
        self._refresh_ahead = refresh_ahead
        # The current connection's token (sent on connect or by the last refresh), when it was
        # obtained (wall clock, like exp), and the task that refreshes it ahead of exp.
        self._current_token: Optional[str] = None
        self._token_obtained_at = 0.0
        self._refresh_task: Optional[asyncio.Task] = None
        self._reconnect = reconnect
        self._initial_delay = initial_delay
        self._max_delay = max_delay
        self._factor = factor
        self._shutdown_delay = shutdown_reconnect_delay
        self._request_timeout = request_timeout
        self._max_queued = max_queued_commands
        self._random = random
        self._connect_options = dict(connect_options or {})

        # Set from the server's `connected` frame; None / [] while not connected.
        self.connection_id: Optional[str] = None
        self.user_id: Optional[str] = None
        self.roles: list[str] = []

        self._state = IDLE
        self._events = EventEmitter(self._handler_failed)
        self._conn: Optional[_Connection] = None
        self._refs = itertools.count(1)
        self._pending: dict[str, _Request] = {}          # every unanswered command, by ref
        self._queue: collections.deque[_Request] = collections.deque()  # not yet sent
        self._subs: dict[str, list[Subscription]] = {}
        self._streams: dict[str, Stream] = {}            # subscribed topics with history
        self._rosters: dict[str, Roster] = {}            # topics subscribed with presence=True
        self._tasks: set[asyncio.Task] = set()           # member listings in progress
        self._attempt = 0
        self._shutdown_announced = False
        self._loop_task: Optional[asyncio.Task] = None    # the connect/reconnect loop
        self._wake = asyncio.Event()                      # connect() cuts a backoff wait short
        self._ready_waiters: list[asyncio.Future] = []

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> str:
        """"idle", "connecting", "connected", "reconnecting" or "closed"."""
        return self._state

    @property
    def subscriptions(self) -> list[Subscription]:
        return [s for subs in self._subs.values() for s in subs]

    def position(self, topic: str) -> Optional[StreamPosition]:
        """The ``StreamPosition`` (epoch, offset of the last message received) the client holds
        for a subscribed topic with history; None for other topics, and when the stream
        restarted under an epoch the client was not told (it cannot be recovered then)."""
        stream = self._streams.get(topic)
        return None if stream is None else stream.position

    @property
    def positions(self) -> dict[str, StreamPosition]:
        """Every position ``position()`` would return, by topic: for example to persist them and
        pass them to ``subscribe(..., position=...)`` in a later run."""
        return {t: s.position for t, s in self._streams.items() if s.position is not None}

    def members(self, topic: str) -> Optional[PresenceMembers]:
        """The member list the client keeps for a topic subscribed with ``presence=True``: a
        ``PresenceMembers(topic, users, truncated, synced)`` with ``users`` a dict from user id
        to ``info`` (a copy). None when the topic is not subscribed with ``presence=True``,
        before its first listing arrived, and when the server refused to list it (a topic
        without presence: an ``error`` event said so)."""
        roster = self._rosters.get(topic)
        return None if roster is None else roster.snapshot(topic)

    def on(self, event: str, handler: Callable[..., Any]) -> Callable[[], None]:
        """Register a handler (plain or ``async``); returns a function that removes it.

        Events: any server message type, called with the message dict (``notification``,
        ``server-shutdown``, ``pong``, ...); ``connected``, called with the server's connected
        message once the client is ready (resubscribed, queue flushed); ``disconnected``,
        called with ``(code, reason, will_reconnect)``; ``error``, called with a
        ``RealtimeError`` (a failed connection attempt, an ``error`` message that answers no
        command, a refused resubscription, a handler that raised); ``state``, called with the
        new state; ``recovery``, called with ``{"topic", "recovered", "replayed"}`` after the
        client asked the server to recover a topic with history (see ``subscribe``);
        ``presence-join`` / ``presence-leave``, called with the server's event (any subscribed
        topic with presence; not passed to the topic's handlers); ``members``, called with
        ``{"topic", "change", "user-id", "members"}`` whenever the member list of a topic
        subscribed with ``presence=True`` changes: ``change`` is ``"list"`` (a new listing,
        after each (re)subscribe; ``user-id`` None), ``"join"`` or ``"leave"`` (of ``user-id``)
        or ``"drop"`` (unsubscribed or refused: ``members`` None); ``members`` is what
        ``members(topic)`` returns then.
        """
        return self._events.on(event, handler)

    async def connect(self) -> None:
        """Open the connection; returns once the server's ``connected`` frame arrived and the
        client is ready. With ``reconnect`` on, failed attempts are retried with backoff (each
        reported as an ``error`` event) and this waits for the first success; it raises
        ``RealtimeError("disconnected")`` if ``disconnect()`` is called first. With
        ``reconnect`` off it raises the attempt's error (``connect-failed``, ...).
        Called while reconnecting, it skips the rest of the backoff wait."""
        if self._state == CONNECTED:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._ready_waiters.append(waiter)
        if self._state in (IDLE, CLOSED):
            self._attempt = 0
            self._set_state(CONNECTING)
            self._loop_task = asyncio.ensure_future(self._connect_loop(immediate=True))
        else:
            self._wake.set()
        try:
            await waiter
        finally:
            if waiter in self._ready_waiters:
                self._ready_waiters.remove(waiter)

    async def disconnect(self, reason: str = "client disconnect") -> None:
        """Close with 1000 and stop reconnecting until ``connect()`` is called again. Commands
        in flight or queued fail with ``disconnected``, and so do commands issued while closed.
        Confirmed subscriptions stay registered and are sent again by a later ``connect()``."""
        was_connected = self._state == CONNECTED
        self._set_state(CLOSED)
        task, self._loop_task = self._loop_task, None
        if task is not None and not task.done():
            task.cancel()
        error = RealtimeError("disconnected", "disconnect() was called")
        self._fail_all(error.code, error.message)
        self._fail_waiters(error)
        if task is not None and task is not asyncio.current_task():
            await asyncio.gather(task, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.ws.close(code=1000, reason=reason)
            except Exception:  # already gone
                pass
            if conn.reader is not None and conn.reader is not asyncio.current_task():
                await asyncio.gather(conn.reader, return_exceptions=True)
        self._clear_identity()
        if was_connected:
            self._events.emit("disconnected", 1000, reason, False)

    async def subscribe(self, topic: str, handler: MessageHandler, *,
                        position: Any = None, presence: bool = False) -> Subscription:
        """Deliver messages whose ``topic`` equals ``topic`` to ``handler``; returns once the
        server confirmed. Raises ``RealtimeError`` when refused (``.code`` ``forbidden``,
        ``invalid-topic``, ``too-many-subscriptions``, ``rate-limited``) or when it cannot be
        sent (``timeout``, ``disconnected``, ``queue-full``). Re-established after every
        reconnect, recovering what was missed on a topic with history. Handlers of one topic
        share one server subscription.

        ``position``: a ``StreamPosition`` (or ``(epoch, offset)``) saved from ``position()``
        in an earlier run: the server replays what was published after it, and a ``recovery``
        event tells whether it could. Used only when the client holds no position for the
        topic yet.

        ``presence``: keep the topic's member list (a topic with ``--presence`` on the server):
        after the server confirmed, and after every reconnect's resubscribe, the client lists
        the members and applies the join and leave events that follow; read it with
        ``members(topic)``, hear of changes through the ``members`` event. A topic without
        presence gets no list and an ``error`` event (``bad-request``); the subscription
        itself stands."""
        if not isinstance(topic, str) or not topic:
            raise ValueError("topic must be a non-empty string")
        if not callable(handler):
            raise TypeError("handler must be callable")
        start = None if position is None else as_position(position)
        sub = Subscription(self, topic, handler, presence=bool(presence))
        # Registered before the command is sent: the first message may follow the reply so
        # closely that it is read before this coroutine resumes.
        self._subs.setdefault(topic, []).append(sub)
        if sub.presence and topic not in self._rosters:
            self._rosters[topic] = Roster()  # listed when the `subscribed` reply is read
        try:
            await self._request("subscribe", {"topic": topic},
                                prepare=lambda req: self._prepare_subscribe(req, start, False))
        except BaseException as exc:
            self._drop_subscription(sub)
            gave_up = isinstance(exc, asyncio.CancelledError) or (
                isinstance(exc, RealtimeError) and exc.code == "timeout")
            if gave_up and topic not in self._subs:
                # The server may subscribe after all; do not leave it subscribed for nothing.
                self._send_quietly({"action": "unsubscribe", "topic": topic})
            raise
        sub.active = True
        return sub

    async def publish(self, topic: str, message: dict) -> int:
        """Publish to a topic allowed by the server's ``--publish-patterns``; returns the
        number of connections the message was delivered to."""
        reply = await self._request("publish", {"topic": topic, "message": message})
        delivered = reply.get("delivered")
        return delivered if isinstance(delivered, int) else 0

    async def presence(self, topic: str) -> PresenceListing:
        """Who is on a topic with presence now: a ``PresenceListing(topic, users, truncated)``
        whose ``users`` are ``PresenceUser(user_id, connections, info)``, at most the server's
        ``--presence-max-users`` (``truncated`` True when more are present). Needs the right
        to subscribe to the topic, not a subscription. Raises ``RealtimeError``: ``bad-request``
        for a topic without presence, ``forbidden`` when not allowed, and the usual
        ``timeout``, ``disconnected``, ``queue-full``."""
        if not isinstance(topic, str) or not topic:
            raise ValueError("topic must be a non-empty string")
        reply = await self._request("presence", {"topic": topic})
        return parse_listing(topic, reply)

    async def ping(self) -> dict:
        """Round trip to the server (``ping`` -> ``pong``); returns the pong message."""
        return await self._request("ping", {})

    async def refresh_token(self, token: Optional[str] = None) -> Optional[str]:
        """Replace the open connection's token now (``refresh`` command) with ``token``, or one
        from ``get_token`` (else the fixed ``token``). Returns the new expiry as the server's
        ISO 8601 time, or None for a token without ``exp``. Raises ``RealtimeError``
        ``forbidden`` when the server refuses it (it does not verify, or names another user);
        the old expiry then stands. Automatic with ``get_token`` unless ``refresh_ahead=False``."""
        if self._state != CONNECTED:
            raise RealtimeError("disconnected", "not connected: the next connect uses a fresh token")
        if token is None:
            token = await self._resolve_token()
        if not token:
            raise RealtimeError("token-failed", "no token to refresh with")
        obtained_at = time.time()
        conn = self._conn
        reply = await self._request("refresh", {"token": token})
        if self._conn is conn and conn is not None:
            self._current_token, self._token_obtained_at = token, obtained_at
            self._schedule_refresh(conn)
        expires_at = reply.get("expires-at")
        return expires_at if isinstance(expires_at, str) else None

    async def __aenter__(self) -> "RealtimeClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.disconnect()

    # ------------------------------------------------------------------ connecting

    async def _connect_loop(self, immediate: bool) -> None:
        while True:
            if not immediate:
                delay = backoff_delay(self._attempt, self._initial_delay, self._max_delay,
                                      self._factor, self._random)
                self._attempt += 1
                if self._shutdown_announced:
                    # The server is restarting: give it time, and keep the jitter on top so
                    # that the clients it dropped together do not come back together.
                    delay += self._shutdown_delay
                    self._shutdown_announced = False
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            immediate = False
            try:
                await self._establish()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc if isinstance(exc, RealtimeError) else \
                    RealtimeError("connect-failed", repr(exc))
                self._events.emit("error", error)
                if not self._reconnect:
                    self._set_state(CLOSED)
                    self._give_up(error)
                    return
                self._set_state(RECONNECTING)

    async def _establish(self) -> None:
        """One attempt: open, read `connected`, resubscribe, flush the queue."""
        token = await self._resolve_token()
        obtained_at = time.time()
        ws = await self._open(_with_token(self.url, token))
        try:
            hello = await self._read_hello(ws)
        except BaseException:
            await self._abort(ws)
            raise
        conn = _Connection(ws, hello)
        self._conn = conn
        self.connection_id = None if hello.get("connection-id") is None else str(hello["connection-id"])
        self.user_id = None if hello.get("user-id") is None else str(hello["user-id"])
        roles = hello.get("roles")
        self.roles = [str(r) for r in roles] if isinstance(roles, list) else []
        conn.reader = asyncio.ensure_future(self._read_loop(conn))
        try:
            await self._resubscribe(conn)
            await self._flush_queue(conn)
            if conn.lost:
                raise RealtimeError("disconnected", "the connection closed during setup")
        except BaseException:
            await self._abort(ws)
            raise
        conn.ready = True
        self._current_token, self._token_obtained_at = token, obtained_at
        self._schedule_refresh(conn)
        self._attempt = 0
        self._shutdown_announced = False
        self._set_state(CONNECTED)
        for waiter in self._ready_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._ready_waiters.clear()
        self._events.emit("connected", hello)

    def _schedule_refresh(self, conn: _Connection) -> None:
        """(Re)arm the refresh of the current token ahead of its exp (see ``refresh_ahead``)."""
        self._cancel_refresh()
        if self._get_token is None or not self._refresh_ahead:
            return
        exp = token_expiry(self._current_token)
        if exp is None:
            return
        delay = refresh_delay(exp, self._token_obtained_at, time.time())
        self._refresh_task = asyncio.ensure_future(self._refresh_later(conn, delay))

    def _cancel_refresh(self) -> None:
        task, self._refresh_task = self._refresh_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _refresh_later(self, conn: _Connection, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._conn is not conn or conn.lost or self._state != CONNECTED:
            return
        try:
            await self.refresh_token()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The connection stays open until exp; the server then closes it with 4001 and
            # the client reconnects with a token from get_token.
            if self._conn is conn:
                code = exc.code if isinstance(exc, RealtimeError) else "token-failed"
                self._events.emit("error", RealtimeError(code, f"token refresh failed: {exc}"))

    async def _resolve_token(self) -> Optional[str]:
        if self._get_token is None:
            return self._token
        try:
            token = self._get_token()
            if inspect.isawaitable(token):
                token = await token
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise RealtimeError("token-failed", f"get_token failed: {exc!r}") from exc
        if token is not None and not isinstance(token, str):
            raise RealtimeError("token-failed", "get_token must return a string")
        return token

    async def _open(self, url: str) -> websockets.client.WebSocketClientProtocol:
        options = dict(open_timeout=self._request_timeout, close_timeout=5,
                       max_size=2 ** 24, user_agent_header="boundary-realtime-python")
        options.update(self._connect_options)
        try:
            return await websockets.client.connect(url, **options)
        except websockets.exceptions.InvalidStatusCode as exc:
            raise RealtimeError("connect-failed", f"the server answered the upgrade with HTTP "
                                f"{exc.status_code}", status=exc.status_code) from exc
        except asyncio.TimeoutError as exc:
            raise RealtimeError("connect-failed", "opening the connection timed out") from exc
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            raise RealtimeError("connect-failed", repr(exc)) from exc

    async def _read_hello(self, ws) -> dict:
        try:
            raw = await asyncio.wait_for(ws.recv(), self._request_timeout)
        except asyncio.TimeoutError:
            raise RealtimeError("connect-failed", "no connected frame from the server") from None
        except websockets.exceptions.ConnectionClosed as exc:
            raise RealtimeError("connect-failed", f"closed before the connected frame: {exc}") from exc
        msg = self._decode(raw)
        if msg is None or msg.get("type") != "connected":
            raise RealtimeError("connect-failed", f"expected a connected frame, got {raw!r:.200}")
        return msg

    async def _resubscribe(self, conn: _Connection) -> None:
        topics = [t for t, subs in self._subs.items() if any(s.active for s in subs)]
        for _ in range(_RESUBSCRIBE_ROUNDS):
            if not topics:
                return
            results = await asyncio.gather(
                *(self._send_request(conn, "subscribe", {"topic": t},
                                     prepare=lambda req: self._prepare_subscribe(req, None, True))
                  for t in topics),
                return_exceptions=True)
            retry = []
            for topic, result in zip(topics, results):
                if not isinstance(result, BaseException):
                    continue
                if isinstance(result, RealtimeError) and result.code == "rate-limited":
                    retry.append(topic)
                elif isinstance(result, RealtimeError) and result.code in _RESUBSCRIBE_REFUSALS:
                    self._refuse_topic(topic, result)
                else:
                    raise result
            topics = retry
            if topics:
                await asyncio.sleep(_RESUBSCRIBE_RATE_LIMIT_WAIT)
        for topic in topics:
            self._refuse_topic(topic, RealtimeError("rate-limited", "still rate-limited"))

    def _refuse_topic(self, topic: str, cause: RealtimeError) -> None:
        for sub in list(self._subs.get(topic, ())):
            self._drop_subscription(sub)
        self._events.emit("error", RealtimeError(
            cause.code, f"subscription to {topic} failed after reconnecting: {cause.message}",
            cause.reply, topic=topic))

    async def _flush_queue(self, conn: _Connection) -> None:
        # Commands issued during the flush are appended and go out in the same loop, so the
        # order of the calls is the order on the wire.
        while self._queue:
            if conn.lost:
                raise RealtimeError("disconnected", "the connection closed during setup")
            await self._transmit(conn, self._queue.popleft())

    @staticmethod
    async def _abort(ws) -> None:
        try:
            await ws.close(code=1000, reason="connection setup failed")
        except BaseException:
            if ws.transport is not None:
                ws.transport.abort()

    def _connection_lost(self, conn: _Connection, code: int, reason: str) -> None:
        if conn.lost:
            return
        conn.lost = True
        if self._conn is conn:
            self._conn = None
            self._clear_identity()
        requeue = []
        for req in [r for r in self._pending.values() if r.sent_on is conn]:
            if self._state != CLOSED and req.action == "subscribe" and not req.internal:
                requeue.append(req)  # idempotent: send it again on the next connection
            else:
                self._fail(req, "disconnected", f"connection closed ({code}) before the reply")
        for req in requeue:
            if req.timer is not None:
                req.timer.cancel()
            req.timer, req.sent_on = None, None
        self._queue.extendleft(reversed(requeue))  # ahead of later commands, in their order
        for stream in self._streams.values():
            stream.connection_lost()
        for roster in self._rosters.values():
            roster.connection_lost()  # listed again after the next resubscribe
        if not conn.ready or self._state == CLOSED:
            return  # a setup failure (the connect loop reports it) or disconnect() in charge
        will_reconnect = self._reconnect
        self._set_state(RECONNECTING if will_reconnect else CLOSED)
        self._events.emit("disconnected", code, reason, will_reconnect)
        if will_reconnect:
            self._loop_task = asyncio.ensure_future(self._connect_loop(immediate=False))
        else:
            self._give_up(RealtimeError("disconnected", f"connection closed ({code})"))

    def _give_up(self, error: RealtimeError) -> None:
        """Not connected and not reconnecting: nothing queued will ever be sent."""
        for req in list(self._queue):
            self._fail(req, "disconnected", "not connected and reconnection is off")
        self._fail_waiters(error)

    # ------------------------------------------------------------------ reading

    async def _read_loop(self, conn: _Connection) -> None:
        try:
            async for raw in conn.ws:
                self._on_message(raw)
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as exc:  # a bug here must not leave a silent, half-dead client
            log.exception("realtime reader failed")
            self._events.emit("error", RealtimeError("bad-message", repr(exc)))
            await self._abort(conn.ws)
        finally:
            code = conn.ws.close_code if conn.ws.close_code is not None else 1006
            self._connection_lost(conn, code, conn.ws.close_reason or "")

    def _decode(self, raw: Any) -> Optional[dict]:
        try:
            msg = json.loads(raw)
        except (TypeError, ValueError):
            msg = None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self._events.emit("error", RealtimeError(
                "bad-message", f"not a JSON object with a string type: {raw!r:.200}"))
            return None
        return msg

    def _on_message(self, raw: Any) -> None:
        msg = self._decode(raw)
        if msg is None:
            return
        kind = msg["type"]
        if kind == "server-shutdown":
            self._shutdown_announced = True
        if "ref" in msg and self._settle(msg):
            if kind != "error":  # the caller got the error; it is not an event too
                self._events.emit(kind, msg)
            return
        if kind == "error":
            code = msg.get("code") if isinstance(msg.get("code"), str) else "error"
            text = msg.get("message") if isinstance(msg.get("message"), str) else code
            self._events.emit("error", RealtimeError(code, text, msg))
            return
        topic = msg.get("topic")
        if isinstance(topic, str) and kind in _PRESENCE_EVENTS:
            change = self._presence_event(kind, topic, msg)
            self._events.emit(kind, msg)
            if change is not None:
                self._emit_members(topic, change, event_user(msg))
            return
        if isinstance(topic, str) and kind not in _REPLY_TYPES:
            stream = self._streams.get(topic)
            offset = None if stream is None else message_offset(msg)
            if offset is not None and stream.on_message(offset) == DUPLICATE:
                self._replay_done(topic, stream, offset)
                return  # the app has it already: not handed to any handler
            for sub in list(self._subs.get(topic, ())):
                self._events.call(f"topic {topic}", sub.handler, msg)
            self._events.emit(kind, msg)
            if offset is not None:
                self._replay_done(topic, stream, offset)
            return
        self._events.emit(kind, msg)

    def _settle(self, msg: dict) -> bool:
        """Settle the command this reply answers; False when it answers none of ours."""
        ref = msg.get("ref")
        req = self._pending.get(ref) if isinstance(ref, str) else None
        if req is None or req.sent_on is None:
            return False
        if msg["type"] != _EXPECTED_REPLY[req.action] and msg["type"] != "error":
            return False
        self._forget(req)
        if req.action == "subscribe" and msg["type"] == "subscribed":
            self._subscribed(req, msg)  # now: the replay follows the reply
        if req.on_reply is not None and msg["type"] != "error":
            req.on_reply(msg)  # now: the events that follow it are read next
        if not req.future.done():
            if msg["type"] == "error":
                code = msg.get("code") if isinstance(msg.get("code"), str) else "error"
                text = msg.get("message") if isinstance(msg.get("message"), str) else code
                req.future.set_exception(RealtimeError(code, text, msg, topic=req.topic))
            else:
                req.future.set_result(msg)
        return True

    # ------------------------------------------------------------------ commands

    async def _request(self, action: str, fields: dict,
                       prepare: Optional[Callable[[_Request], None]] = None) -> dict:
        if self._state == CLOSED:
            raise RealtimeError("disconnected", "the client is disconnected; call connect() first")
        conn = self._conn
        online = self._state == CONNECTED and conn is not None and not conn.lost
        if not online and len(self._queue) >= self._max_queued:
            raise RealtimeError("queue-full", f"not connected and {self._max_queued} commands "
                                "are already queued")
        req = self._new_request(action, fields, internal=False)
        req.prepare = prepare
        try:
            if online:
                # Nothing suspends before the frame is written, so concurrent callers reach
                # the wire in call order.
                await self._transmit(conn, req)
            else:
                self._queue.append(req)
        except BaseException:
            self._forget(req)
            raise
        return await self._await_reply(req)

    async def _send_request(self, conn: _Connection, action: str, fields: dict,
                            prepare: Optional[Callable[[_Request], None]] = None,
                            on_reply: Optional[Callable[[dict], None]] = None) -> dict:
        """A command of the client's own (a resubscribe, a member listing), sent on `conn` or
        failed."""
        req = self._new_request(action, fields, internal=True)
        req.prepare = prepare
        req.on_reply = on_reply
        await self._transmit(conn, req)
        return await self._await_reply(req)

    def _new_request(self, action: str, fields: dict, internal: bool) -> _Request:
        ref = str(next(self._refs))
        text = json.dumps({"action": action, **fields, "ref": ref}, separators=(",", ":"))
        future = asyncio.get_running_loop().create_future()
        req = _Request(ref, action, fields.get("topic"), text, future, internal)
        self._pending[ref] = req
        return req

    async def _await_reply(self, req: _Request) -> dict:
        try:
            return await req.future
        finally:
            if self._pending.get(req.ref) is req:  # the caller was cancelled
                self._forget(req)

    async def _transmit(self, conn: _Connection, req: _Request) -> None:
        if self._pending.get(req.ref) is not req:
            return  # cancelled before its turn
        if conn.lost:
            if req.internal:
                self._fail(req, "disconnected", "the connection closed during setup")
            else:
                self._queue.appendleft(req)  # the next connection sends it
            return
        if req.prepare is not None:
            req.prepare(req)  # from what the client holds now, also when sent again
        req.sent_on = conn
        req.timer = asyncio.get_running_loop().call_later(self._request_timeout, self._expire, req)
        try:
            await conn.ws.send(req.text)
        except websockets.exceptions.ConnectionClosed:
            # Normally the reader's _connection_lost settles it; this covers it running first.
            if conn.lost and self._pending.get(req.ref) is req and req.sent_on is conn:
                self._fail(req, "disconnected", "the connection closed while sending")

    def _send_quietly(self, frame: dict) -> None:
        """Fire and forget: a best-effort frame whose reply nobody waits for."""
        conn = self._conn
        if conn is None or conn.lost or self._state != CONNECTED:
            return

        async def send() -> None:
            try:
                await conn.ws.send(json.dumps(frame, separators=(",", ":")))
            except Exception:
                pass
        asyncio.ensure_future(send())

    def _expire(self, req: _Request) -> None:
        if self._pending.get(req.ref) is req and req.sent_on is not None:
            self._fail(req, "timeout", f"no reply to {req.action} within {self._request_timeout}s")

    def _forget(self, req: _Request) -> None:
        self._pending.pop(req.ref, None)
        if req.timer is not None:
            req.timer.cancel()
        if req.sent_on is None:
            try:
                self._queue.remove(req)
            except ValueError:
                pass

    def _fail(self, req: _Request, code: str, message: str) -> None:
        self._forget(req)
        if not req.future.done():
            req.future.set_exception(RealtimeError(code, message, topic=req.topic))

    def _fail_all(self, code: str, message: str) -> None:
        for req in list(self._pending.values()):
            self._fail(req, code, message)
        self._queue.clear()

    # ------------------------------------------------------------------ subscriptions

    async def _unsubscribe(self, sub: Subscription) -> None:
        if not self._drop_subscription(sub):
            return
        if sub.topic in self._subs or self._state != CONNECTED:
            return  # other handlers still want the topic, or the server already dropped it
        try:
            await self._request("unsubscribe", {"topic": sub.topic})
        except RealtimeError as exc:
            if exc.code != "disconnected":  # a closed connection drops the topic too
                raise

    def _drop_subscription(self, sub: Subscription) -> bool:
        sub.active = False
        subs = self._subs.get(sub.topic)
        if not subs or sub not in subs:
            return False
        subs.remove(sub)
        if not subs:
            del self._subs[sub.topic]
            self._streams.pop(sub.topic, None)  # read position() first to keep it
        if not any(s.presence for s in subs):
            roster = self._rosters.pop(sub.topic, None)
            if roster is not None and roster.users is not None:
                self._emit_members(sub.topic, "drop", None)
        return True

    # ------------------------------------------------------------------ history and recovery

    def _prepare_subscribe(self, req: _Request, start: Optional[StreamPosition],
                           reconnect: bool) -> None:
        """The subscribe frame for `req`, from the position held for its topic when it is sent:
        after a reconnect (`reconnect`) or for one more handler on the same connection, the
        held position (so that nothing published meanwhile is missed or doubled); else the
        app's `start`; else a plain subscribe."""
        stream = self._streams.get(req.topic)
        held = None if stream is None else stream.position
        if held is not None:
            req.recover, req.report = held, "always" if reconnect else "failure"
        elif stream is not None:
            # The stream restarted under an epoch the client was not told: nothing to recover
            # with, and the app is told so after a reconnect.
            req.recover, req.report = None, "always" if reconnect else None
        elif start is not None:
            req.recover, req.report = start, "always"
        else:
            req.recover, req.report = None, None
        frame: dict[str, Any] = {"action": "subscribe", "topic": req.topic}
        if req.recover is not None:
            frame["recover"] = {"offset": req.recover.offset, "epoch": req.recover.epoch}
        frame["ref"] = req.ref
        req.text = json.dumps(frame, separators=(",", ":"))

    def _subscribed(self, req: _Request, reply: dict) -> None:
        """A `subscribed` reply, taken before anything after it is read: a recovered replay
        follows it at once."""
        topic = req.topic
        if topic not in self._subs:
            return  # unsubscribed meanwhile
        if req.sent_on is not None:
            self._list_members(topic, req.sent_on)
        epoch, last = reply.get("epoch"), message_offset(reply)
        if not isinstance(epoch, str) or last is None:
            self._streams.pop(topic, None)  # a topic without history (now)
            if req.report is not None:
                self._emit_recovery(topic, {"recovered": False, "replayed": 0})
            return
        stream = self._streams.get(topic)
        if stream is None:
            stream = self._streams[topic] = Stream(None, 0)
        event = stream.subscribed(req.recover, reply, report=req.report == "always",
                                  report_failure=req.report == "failure")
        if event is not None:
            self._emit_recovery(topic, event)

    def _replay_done(self, topic: str, stream: Stream, offset: int) -> None:
        event = stream.replay_done(offset)
        if event is not None and self._streams.get(topic) is stream:
            self._emit_recovery(topic, event)

    def _emit_recovery(self, topic: str, event: dict) -> None:
        self._events.emit("recovery", {"topic": topic, **event})

    # ------------------------------------------------------------------ presence

    def _list_members(self, topic: str, conn: _Connection) -> None:
        """After a `subscribed` reply on `conn`: list the topic's members, unless it is listed
        (or being listed) on this connection already."""
        roster = self._rosters.get(topic)
        if roster is None or roster.unavailable or conn.lost:
            return
        if roster.listing is conn or (roster.synced and self._conn is conn):
            return
        roster.listing = conn
        task = asyncio.ensure_future(self._list_members_on(topic, roster, conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _list_members_on(self, topic: str, roster: Roster, conn: _Connection) -> None:
        def listed(reply: dict) -> None:
            # Taken as the answer is read: every event read after it follows the listing.
            if self._rosters.get(topic) is roster and roster.listing is conn and not conn.lost:
                roster.listed(parse_listing(topic, reply))
                roster.listing = None
                self._emit_members(topic, "list", None)

        error: Optional[RealtimeError] = None
        for _ in range(_RESUBSCRIBE_ROUNDS):
            if self._rosters.get(topic) is not roster or roster.listing is not conn or conn.lost:
                return
            try:
                await self._send_request(conn, "presence", {"topic": topic}, on_reply=listed)
                return
            except RealtimeError as exc:
                error = exc
            if error.code == "disconnected":
                return  # the next connection lists again
            if error.code not in _PRESENCE_RETRIES:
                break
            await asyncio.sleep(_RESUBSCRIBE_RATE_LIMIT_WAIT)
        if self._rosters.get(topic) is not roster or roster.listing is not conn:
            return
        roster.listing = None
        if error.code not in _PRESENCE_RETRIES:
            # No presence on this topic (bad-request), or not allowed: no list, not asked again.
            had_list = roster.users is not None
            roster.unavailable, roster.users, roster.synced = True, None, False
            if had_list:
                self._emit_members(topic, "drop", None)
        self._events.emit("error", RealtimeError(
            error.code, f"listing the members of {topic} failed: {error.message}", error.reply,
            topic=topic))

    def _presence_event(self, kind: str, topic: str, msg: dict) -> Optional[str]:
        """Apply a presence event to the topic's member list; the change, or None."""
        roster = self._rosters.get(topic)
        user_id = event_user(msg)
        if roster is None or user_id is None:
            return None
        if kind == "presence-join":
            info = msg.get("info")
            return "join" if roster.joined(user_id, info if isinstance(info, dict) else {}) \
                else None
        return "leave" if roster.left(user_id) else None

    def _emit_members(self, topic: str, change: str, user_id: Optional[str]) -> None:
        self._events.emit("members", {"topic": topic, "change": change, "user-id": user_id,
                                      "members": self.members(topic)})

    # ------------------------------------------------------------------ state and events

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._events.emit("state", state)

    def _clear_identity(self) -> None:
        self._cancel_refresh()
        self._current_token = None
        self.connection_id = None
        self.user_id = None
        self.roles = []

    def _fail_waiters(self, error: RealtimeError) -> None:
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _handler_failed(self, event: str, exc: BaseException) -> None:
        if event != "error" and self._events.has_handlers("error"):
            error = RealtimeError("handler-error", f"a handler for {event!r} raised: {exc!r}")
            error.__cause__ = exc
            self._events.emit("error", error)
        else:
            log.error("realtime handler for %r raised", event, exc_info=exc)
