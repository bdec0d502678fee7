"""Reading a JWT's expiry on the client, to refresh ahead of it. Nothing here verifies a
token: that is the server's job; the client only needs to know when to ask for a new one."""

from __future__ import annotations

import base64
import json
from typing import Optional

# Refresh this long before exp at most ...
REFRESH_LEAD_MAX = 30.0
# ... and at most this share of the token's lifetime before it.
REFRESH_LEAD_SHARE = 0.1


def token_expiry(token: Optional[str]) -> Optional[float]:
    """The ``exp`` claim (seconds since the epoch) of a JWT, read without verifying it; None
    when the token has none or is not a JWT."""
    if not isinstance(token, str):
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return float(exp)


def refresh_delay(exp: float, obtained_at: float, now: float) -> float:
    """Seconds from ``now`` until a token obtained at ``obtained_at`` and expiring at ``exp``
    (all wall-clock seconds) should be refreshed: 30 s or 10% of its lifetime before ``exp``,
    whichever is smaller; 0 when that moment has passed."""
    lead = min(REFRESH_LEAD_MAX, max(0.0, exp - obtained_at) * REFRESH_LEAD_SHARE)
    return max(0.0, exp - lead - now)
