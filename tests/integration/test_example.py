"""The embedding example (examples/job_progress.cpp): an application route that reports job
progress to one connection through the server's C++ API."""
from __future__ import annotations

import json
import os
import unittest

import websockets

from rt_harness import HOST, RealtimeTestCase, ServerProcess, http_json

EXAMPLE = os.environ.get(
    "REALTIME_EXAMPLE",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "release", "example_job_progress"))


class JobProgressExampleTest(RealtimeTestCase):
    def setUp(self):
        if not os.path.exists(EXAMPLE):
            self.fail(f"example binary not found: {EXAMPLE} (set REALTIME_EXAMPLE)")
        srv = ServerProcess()
        srv.args[0] = EXAMPLE  # same flags: --port, --jwt-secret, --api-key
        self.addCleanup(self._stop_server, srv, 0)
        self.server = srv.start()

    async def test_progress_reaches_only_the_connection_that_started_the_job(self):
        uri = f"ws://{HOST}:{self.port}/ws?token={self.token('7')}"
        async with websockets.connect(uri) as mine, websockets.connect(uri) as other:
            connected = json.loads(await asyncio_wait(mine.recv()))
            await asyncio_wait(other.recv())
            status, body = await asyncio_to_thread(
                http_json, self.port, "POST", "/jobs/start",
                json.dumps({"connection-id": connected["connection-id"], "steps": 4}))
            self.assertEqual(status, 202, body)
            job = body["job-id"]
            percents = []
            while True:
                msg = json.loads(await asyncio_wait(mine.recv()))
                self.assertEqual(msg["job-id"], job)
                if msg["type"] == "job-complete":
                    break
                self.assertEqual(msg["type"], "job-progress")
                percents.append(msg["percent"])
            self.assertEqual(percents, [25, 50, 75, 100])
            # The other connection of the same user got nothing: its next message is the ping reply.
            await other.send(json.dumps({"action": "ping", "ref": "after"}))
            self.assertEqual(json.loads(await asyncio_wait(other.recv())), {"type": "pong", "ref": "after"})

    async def test_route_refuses_a_body_without_connection_id(self):
        status, body = await asyncio_to_thread(http_json, self.port, "POST", "/jobs/start", json.dumps({"steps": 2}))
        self.assertEqual(status, 400)
        self.assertEqual(body, {"error": "connection-id is required"})


async def asyncio_wait(aw, timeout=5.0):
    import asyncio
    return await asyncio.wait_for(aw, timeout)


async def asyncio_to_thread(fn, *args):
    import asyncio
    return await asyncio.to_thread(fn, *args)


if __name__ == "__main__":
    unittest.main()
