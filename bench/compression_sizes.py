#!/usr/bin/env python3
"""Bytes on the wire for typical JSON messages with and without permessage-deflate.

Starts the server (--compression on), subscribes one client that negotiated the extension and
one that did not, publishes each sample message through POST /api/publish and prints, per
message, the frame each client received (header included) as a Markdown table.

    python3 bench/compression_sizes.py [path/to/realtime-server]
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
if len(sys.argv) > 1:
    os.environ["REALTIME_SERVER"] = os.path.abspath(sys.argv[1])
os.environ.setdefault("REALTIME_SERVER", os.path.join(HERE, "..", "build", "release", "realtime-server"))

from rt_harness import OP_PING, RawWS, ServerProcess  # noqa: E402

SAMPLES = {
    "chat message": {"type": "chat", "room": "general", "user": {"id": "u_1842", "name": "Ada Lovelace"},
                     "text": "Shall we move the review to Thursday afternoon?", "id": "msg_01HZX3K9QF"},
    "presence list (20 users)": {"type": "presence", "users": [
        {"id": f"u_{1000 + i}", "name": f"User {i}", "status": "online" if i % 3 else "away"} for i in range(20)]},
    "order update": {"type": "order.updated", "order": {
        "id": "ord_8f3a2c", "status": "shipped", "carrier": "DHL", "tracking": "JD014600003828",
        "items": [{"sku": f"SKU-{i:04d}", "name": "Blue widget", "quantity": i + 1, "price": "19.99"} for i in range(5)],
        "total": "99.95", "currency": "EUR"}},
    "price ticks (50)": {"type": "ticks", "ticks": [
        {"symbol": s, "bid": 100 + i * 0.37, "ask": 100.05 + i * 0.37, "ts": 1764844800000 + i}
        for i, s in enumerate(["AAPL", "MSFT", "GOOG", "AMZN", "NVDA"] * 10)]},
    "dashboard KPI": {"type": "kpi", "name": "sales", "value": 42, "delta": -1.5},
}


def frame_size(f) -> int:
    n = len(f.payload)
    return n + 2 + (2 if 126 <= n < 65536 else 8 if n >= 65536 else 0)


def next_data(raw):
    while True:
        f = raw.recv_frame()
        if f.opcode != OP_PING:
            return f


def subscriber(srv, offer):
    raw = RawWS(srv.port, srv.token(), headers={"Sec-WebSocket-Extensions": offer} if offer else None)
    next_data(raw)
    raw.send_json({"action": "subscribe", "topic": "sizes"})
    next_data(raw)
    return raw


def main() -> None:
    srv = ServerProcess(["--compression", "on"], threads=1).start()
    try:
        plain = subscriber(srv, None)
        deflating = subscriber(srv, "permessage-deflate; client_max_window_bits")
        print("| message | JSON delivered | frame, plain | frame, permessage-deflate | saved |")
        print("|---|---|---|---|---|")
        for name, msg in SAMPLES.items():
            srv.api_sync("POST", "/api/publish", {"topic": "sizes", "message": msg})
            p, d = next_data(plain), next_data(deflating)
            compressed = "" if d.rsv & 0x4 else " (sent plain)"
            saved = 100 * (1 - frame_size(d) / frame_size(p))
            print(f"| {name} | {len(p.payload):,} B | {frame_size(p):,} B | {frame_size(d):,} B{compressed} | {saved:.0f} % |")
        plain.close()
        deflating.close()
    finally:
        srv.stop()
        srv.remove_log()


if __name__ == "__main__":
    main()
