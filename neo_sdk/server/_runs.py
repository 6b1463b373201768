"""Running model work off the event loop: a bounded admission count per worker, and a
:class:`Run` that produces a request's events on a worker thread and hands them to the event loop.

Cancelling a run (client gone, timeout) is noticed at its next event; the producing generator is
closed on its own thread, which stops a generation at its next token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from neo_sdk.errors import RateLimitError, RequestTimeoutError

_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Admission:
    """At most ``limit`` requests in flight in this worker; the next one is refused with 429."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit, self.retry_after_s = limit, retry_after_s
        self.in_flight = 0
        self.cancelled = 0  # runs stopped before their end (client gone, timeout)
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.in_flight >= self.limit:
                raise RateLimitError(
                    f"this server is busy ({self.in_flight} requests in flight, limit {self.limit});"
                    f" retry after {self.retry_after_s} s", code="queue_full", retry_after=self.retry_after_s)
            self.in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def count_cancelled(self) -> None:
        with self._lock:
            self.cancelled += 1


class Run:
    """One admitted request's work: ``produce()`` runs on ``executor``, its events come out of
    :meth:`events`; the admission slot is freed when the work has really stopped."""

    def __init__(self, produce: Callable[[], Iterator[Any]], executor: ThreadPoolExecutor,
                 admission: Admission) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._admission = admission
        future = self._loop.run_in_executor(executor, self._work, produce)
        future.add_done_callback(lambda _: admission.leave())

    def _put(self, item: Any) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _work(self, produce: Callable[[], Iterator[Any]]) -> None:
        try:
            events = produce()
            try:
                for event in events:
                    if self._cancelled.is_set():
                        self._admission.count_cancelled()
                        return
                    self._put(event)
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()  # a generation still running stops at its next token
        except BaseException as exc:  # handed to the event loop, raised where the events are read
            self._put(_Failed(exc))
            return
        self._put(_END)

    def cancel(self) -> None:
        self._cancelled.set()

    async def events(self, deadline: float) -> AsyncIterator[Any]:
        """The run's events; past ``deadline`` (event-loop time) the run is cancelled and
        :class:`RequestTimeoutError` raised."""
        try:
            while True:
                remaining = deadline - self._loop.time()
                try:
                    item = await asyncio.wait_for(self._queue.get(), max(remaining, 0.0))
                except TimeoutError:
                    raise RequestTimeoutError("the request ran past this server's time limit; ask for fewer"
                                              " items or tokens, or retry", code="timeout") from None
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            self.cancel()  # no-op once the work has ended
