"""A small event emitter whose handlers may be plain functions or coroutine functions."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable

log = logging.getLogger("boundary_realtime")

Handler = Callable[..., Any]


class _Entry:
    __slots__ = ("handler",)

    def __init__(self, handler: Handler):
        self.handler = handler  # compared by identity: one entry per on() call


class EventEmitter:
    """Handlers run in registration order. A handler that returns an awaitable (an ``async
    def``) is run as a task, so a slow handler never stalls the connection's reader; its
    exceptions, like those of plain handlers, are reported to ``on_handler_error`` with the
    event name."""

    def __init__(self, on_handler_error: Callable[[str, BaseException], None]):
        self._handlers: dict[str, list[_Entry]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._on_handler_error = on_handler_error

    def on(self, event: str, handler: Handler) -> Callable[[], None]:
        """Register ``handler``; returns a function that removes it (safe to call twice)."""
        if not callable(handler):
            raise TypeError("handler must be callable")
        # One entry per call, so that a function added twice needs two removals.
        entry = _Entry(handler)
        self._handlers.setdefault(event, []).append(entry)

        def off() -> None:
            entries = self._handlers.get(event)
            if entries and entry in entries:
                entries.remove(entry)
                if not entries:
                    del self._handlers[event]
        return off

    def has_handlers(self, event: str) -> bool:
        return bool(self._handlers.get(event))

    def emit(self, event: str, *args: Any) -> None:
        for entry in list(self._handlers.get(event, ())):
            self.call(event, entry.handler, *args)

    def call(self, event: str, handler: Handler, *args: Any) -> None:
        """Run one handler with the emitter's error and coroutine handling."""
        try:
            result = handler(*args)
        except Exception as exc:  # a user's handler must not break the client
            self._on_handler_error(event, exc)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)  # keep a reference until it finishes
            task.add_done_callback(lambda t, e=event: self._task_done(e, t))

    def _task_done(self, event: str, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._on_handler_error(event, exc)
