"""Publishes numbered messages to one topic over its own WebSocket until killed (used by
test_history's concurrent recovery test, as a separate process). Usage:
history_publisher.py PORT TOKEN TOPIC"""

import asyncio
import json
import sys
import urllib.parse

import websockets.client


BURST = 20


async def main(port: int, token: str, topic: str):
    uri = f"ws://127.0.0.1:{port}/ws?token={urllib.parse.quote(token, safe='')}"
    async with websockets.client.connect(uri, max_queue=None) as ws:
        await ws.recv()  # connected
        n = 0
        while True:
            # Bursts: many publishes in flight at once, so that deliveries are queued on the
            # loops while subscribers recover.
            for _ in range(BURST):
                n += 1
                await ws.send(json.dumps({"action": "publish", "topic": topic,
                                          "message": {"type": "tick", "n": n}}))
            for _ in range(BURST):
                reply = json.loads(await ws.recv())
                if reply.get("type") != "published":
                    print(f"unexpected reply: {reply}", file=sys.stderr)
                    sys.exit(1)
            if n == BURST:
                print("started", flush=True)
            await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
