"""The one exception type the client raises for protocol-level failures."""

from __future__ import annotations

from typing import Any, Optional


class RealtimeError(Exception):
    """A refused or failed client operation. The codes match the JavaScript client's.

    ``code`` is either a server error code from docs/protocol.md (``bad-request``,
    ``invalid-topic``, ``forbidden``, ``rate-limited``, ``too-many-subscriptions``) or one of
    the client's own:

    ``timeout``         a sent command got no reply within ``request_timeout``
    ``disconnected``    the connection closed before the reply arrived (the server may or may
                        not have carried the command out), or the client is disconnected
    ``queue-full``      not connected and ``max_queued_commands`` commands are already waiting
    ``connect-failed``  a connection attempt failed (``status`` holds the HTTP status of a
                        refused upgrade, e.g. 401 for a missing, bad or expired token)
    ``token-failed``    ``get_token`` raised or returned something that is not a string
    ``bad-message``     the server sent a frame that is not a JSON object with a string type
    ``handler-error``   an event or topic handler raised (the exception is ``__cause__``)

    ``topic`` is set for errors about a subscription; ``reply`` holds the server's ``error``
    message when there was one.
    """

    def __init__(self, code: str, message: str = "", reply: Optional[dict[str, Any]] = None,
                 *, topic: Optional[str] = None, status: Optional[int] = None):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.reply = reply
        self.topic = topic
        self.status = status
