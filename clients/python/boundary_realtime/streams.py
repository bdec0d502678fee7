"""Positions in the server's per-topic history (docs/history.md) and the bookkeeping that turns
them into exact recovery: what the client holds per topic, which messages are duplicates, and
when a recovery's replay is complete.

Pure: no I/O, no asyncio. ``RealtimeClient`` feeds it the ``subscribed`` replies and the
messages of its topics, in the order they arrive on the connection.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

# What on_message decides about a message of a topic with history.
DELIVER = "deliver"
DUPLICATE = "duplicate"


class StreamPosition(NamedTuple):
    """The last message the app received on a topic with history: the stream's ``epoch`` and
    that message's ``offset`` (0: none yet). Persist it and pass it to ``subscribe(...,
    position=...)`` to recover what was published after it."""

    epoch: str
    offset: int


def as_position(value: Any) -> StreamPosition:
    """A ``StreamPosition`` from one, an ``(epoch, offset)`` pair or ``{"epoch", "offset"}``."""
    if isinstance(value, dict):
        value = (value.get("epoch"), value.get("offset"))
    try:
        epoch, offset = value
    except (TypeError, ValueError):
        raise TypeError("position must be a StreamPosition, (epoch, offset) or "
                        "{'epoch': ..., 'offset': ...}") from None
    if not isinstance(epoch, str) or not _is_offset(offset):
        raise ValueError("position needs a string epoch and a whole-number offset >= 0")
    return StreamPosition(epoch, offset)


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def message_offset(msg: dict) -> Optional[int]:
    offset = msg.get("offset")
    return offset if _is_offset(offset) else None


class Stream:
    """One topic with history, as this client follows it.

    ``epoch`` is None once the stream was seen to restart under an epoch the client was not
    told (offsets starting again while subscribed): the position cannot be recovered then.
    """

    __slots__ = ("epoch", "offset", "replay_last", "report")

    def __init__(self, epoch: Optional[str], offset: int):
        self.epoch = epoch
        self.offset = offset
        # While a recovered replay is arriving on the current connection: its LAST offset
        # (0 otherwise). Messages up to it that the client already holds are duplicates.
        self.replay_last = 0
        # The recovery event waiting for the end of the replay: [replayed so far] or None.
        self.report: Optional[list[int]] = None

    @property
    def position(self) -> Optional[StreamPosition]:
        return None if self.epoch is None else StreamPosition(self.epoch, self.offset)

    def subscribed(self, recover: Optional[StreamPosition], reply: dict, report: bool,
                   report_failure: bool = False) -> Optional[dict]:
        """Take a ``subscribed`` reply on a stream (``reply`` has ``epoch`` and ``offset``) to a
        subscribe sent with ``recover`` (or without). Returns the recovery event to emit now,
        if any. ``report``: report the outcome; with a replay to wait for, ``replay_done``
        returns the event once the replay's last message was handled. ``report_failure``
        alone: report only ``recovered: false``."""
        epoch, last = reply["epoch"], reply["offset"]
        self.replay_last, self.report = 0, None
        if recover is not None and reply.get("recovered") is True:
            if self.epoch != epoch:
                self.epoch, self.offset = epoch, recover.offset
            if last > recover.offset:
                self.replay_last = last
                if report:
                    self.report = [0]
                    return None
            return {"recovered": True, "replayed": 0} if report else None
        # Not recovered (or not asked): nothing is replayed, the position is the stream's now.
        # A plain subscribe on a stream already held in this epoch keeps the held offset:
        # messages up to LAST that arrived before the reply were counted as they came.
        if recover is not None or self.epoch != epoch:
            self.epoch, self.offset = epoch, last
        return {"recovered": False, "replayed": 0} if report or report_failure else None

    def on_message(self, offset: int) -> str:
        """DELIVER (the position moves to ``offset``) or DUPLICATE (drop it)."""
        if offset > self.offset:
            self.offset = offset
            if self.report is not None and offset <= self.replay_last:
                self.report[0] += 1
            return DELIVER
        if offset <= self.replay_last:
            return DUPLICATE  # replayed again, already held: same epoch (the reply said so)
        # Live deliveries of one epoch arrive in increasing offset order: an offset that does
        # not grow outside a replay means the stream restarted (it expired or was evicted while
        # subscribed) under an epoch nobody told this client.
        self.epoch, self.offset = None, offset
        return DELIVER

    def replay_done(self, offset: int) -> Optional[dict]:
        """After the message ``offset`` was handled: the recovery event, once the replay ended."""
        if self.replay_last == 0 or offset < self.replay_last:
            return None
        self.replay_last = 0
        report, self.report = self.report, None
        return None if report is None else {"recovered": True, "replayed": report[0]}

    def connection_lost(self) -> None:
        """A replay in progress ends with its connection; the next one recovers the rest."""
        self.replay_last, self.report = 0, None
