"""Presence (docs/presence.md): who is subscribed to a topic, per user.

The server answers ``{"action":"presence","topic":T}`` with a listing and sends every subscriber
``presence-join`` when a user's first connection subscribes and ``presence-leave`` when their
last one leaves. The listing is taken between two events of the topic and the events after it
reach the connection after the answer, so a list taken once and updated by the events that
follow the answer stays an exact copy.

Pure: no I/O, no asyncio. ``RealtimeClient`` feeds a ``Roster`` the answers and events of its
topic, in the order they arrive on the connection.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional


class PresenceUser(NamedTuple):
    """One user present on a topic: their ``user_id``, how many of their ``connections`` are
    subscribed to it, and the ``info`` claim of the token that made them present."""

    user_id: str
    connections: int
    info: dict


class PresenceListing(NamedTuple):
    """The answer to ``RealtimeClient.presence()``: the users present on ``topic`` (at most the
    server's ``--presence-max-users``, in no particular order) and whether more are present
    than listed (``truncated``)."""

    topic: str
    users: list[PresenceUser]
    truncated: bool


class PresenceMembers(NamedTuple):
    """The member list the client keeps for a topic subscribed with ``presence=True``.

    ``users``: user id -> ``info``, for every user present (join/leave events carry no
    connection counts: ask ``presence()`` for those). ``truncated``: the last listing held
    fewer users than were present, so the list misses some (those who were present then and
    have not joined since). ``synced``: the list follows the current connection's events;
    False from a lost connection until the listing that follows the next resubscribe."""

    topic: str
    users: dict[str, dict]
    truncated: bool
    synced: bool


def _user_id(value: Any) -> Optional[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _info(value: Any) -> dict:
    return dict(value) if isinstance(value, dict) else {}


def parse_listing(topic: str, reply: dict) -> PresenceListing:
    """A ``PresenceListing`` from the server's ``presence`` reply (entries without a user id
    are skipped; a missing ``info`` is ``{}``)."""
    users = []
    raw_users = reply.get("users")
    for entry in raw_users if isinstance(raw_users, list) else ():
        if not isinstance(entry, dict):
            continue
        user_id = _user_id(entry.get("user-id"))
        if user_id is None:
            continue
        connections = entry.get("connections")
        if not isinstance(connections, int) or isinstance(connections, bool):
            connections = 0
        users.append(PresenceUser(user_id, connections, _info(entry.get("info"))))
    return PresenceListing(topic, users, reply.get("truncated") is True)


def event_user(msg: dict) -> Optional[str]:
    """The user id of a ``presence-join`` / ``presence-leave`` event."""
    return _user_id(msg.get("user-id"))


class Roster:
    """One topic's member list, as this client keeps it.

    ``users`` is None until the first listing arrived. Events are applied only while
    ``synced``: between a lost connection and the next listing they are left out, because the
    listing that follows already reflects them.
    """

    __slots__ = ("users", "truncated", "synced", "unavailable", "listing")

    def __init__(self) -> None:
        self.users: Optional[dict[str, dict]] = None
        self.truncated = False
        self.synced = False
        self.unavailable = False  # the server refused to list it (no presence, forbidden)
        self.listing: Any = None  # the connection a listing is asked on, until it is applied

    def snapshot(self, topic: str) -> Optional[PresenceMembers]:
        if self.users is None:
            return None
        return PresenceMembers(topic, {u: dict(i) for u, i in self.users.items()},
                               self.truncated, self.synced)

    def listed(self, listing: PresenceListing) -> None:
        """Replace the list with a listing answered on the current connection."""
        self.users = {u.user_id: dict(u.info) for u in listing.users}
        self.truncated = listing.truncated
        self.synced = True

    def joined(self, user_id: str, info: dict) -> bool:
        """Apply a ``presence-join``; True when the list changed."""
        if not self.synced or self.users is None:
            return False
        if user_id in self.users and self.users[user_id] == info:
            return False
        self.users[user_id] = dict(info)
        return True

    def left(self, user_id: str) -> bool:
        """Apply a ``presence-leave``; True when the list changed."""
        if not self.synced or self.users is None or user_id not in self.users:
            return False
        del self.users[user_id]
        return True

    def connection_lost(self) -> None:
        self.synced = False
        self.listing = None
