"""Official asyncio client for Boundary Realtime.

    from boundary_realtime import RealtimeClient

    async with RealtimeClient("ws://127.0.0.1:3000/ws", token=jwt) as client:
        client.on("notification", lambda msg: print(msg["content"]))
        sub = await client.subscribe("dashboard:metrics", on_metrics)
        delivered = await client.publish("chat:general", {"type": "chat", "text": "hi"})

Built on the standard library and the `websockets` package (10.x) only.
"""

from .backoff import backoff_ceiling, backoff_delay
from .client import (CLOSED, CONNECTED, CONNECTING, IDLE, RECONNECTING, RealtimeClient,
                     Subscription)
from .errors import RealtimeError
from .presence import PresenceListing, PresenceMembers, PresenceUser
from .streams import StreamPosition
from .token import refresh_delay, token_expiry

__version__ = "0.1.0"

__all__ = [
    "RealtimeClient", "RealtimeError", "Subscription", "StreamPosition", "PresenceListing",
    "PresenceUser", "PresenceMembers", "backoff_delay",
    "backoff_ceiling",
    "token_expiry", "refresh_delay",
    "IDLE", "CONNECTING", "CONNECTED", "RECONNECTING", "CLOSED", "__version__",
]
