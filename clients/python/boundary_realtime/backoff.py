"""Reconnect delays: exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the reconnects of
many clients dropped at the same moment, e.g. by a server restart, instead of having them all
come back in lock-step waves. The ceiling is capped at ``max_delay`` so a long outage never
leaves a client waiting longer than that between attempts.
"""

from __future__ import annotations

import random as _random
from typing import Callable


def backoff_ceiling(attempt: int, initial_delay: float, max_delay: float, factor: float) -> float:
    """min(max_delay, initial_delay * factor ** attempt), without float overflow."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    try:
        ceiling = initial_delay * (factor ** attempt)
    except OverflowError:
        return max_delay
    return min(max_delay, ceiling)


def backoff_delay(attempt: int, initial_delay: float = 0.5, max_delay: float = 30.0,
                  factor: float = 2.0, random: Callable[[], float] = _random.random) -> float:
    """Seconds to wait before reconnect attempt number ``attempt`` (0 for the first one).

    ``random`` returns a float in [0, 1); inject it to make the delay deterministic.
    The result always lies in [0, min(max_delay, initial_delay * factor ** attempt)].
    """
    r = random()
    r = 0.0 if r < 0.0 else (1.0 if r > 1.0 else r)  # a misbehaving source cannot break the bound
    return r * backoff_ceiling(attempt, initial_delay, max_delay, factor)
