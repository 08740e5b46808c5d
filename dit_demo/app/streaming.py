"""Run a sampling job in a worker thread and stream its progress to a generator consumer.

The UI iterates over :func:`stream`; closing the generator early (the Stop button) sets the
cancel event, and the engine stops at its next round.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from dit_demo.runtime.engine import Progress


def stream(
    job: Callable[[Callable[[Progress], None], threading.Event], Any], min_interval: float = 0.0
) -> Iterator[Progress | Any]:
    """Yield :class:`Progress` objects (the newest only, when the consumer is slower) then the result.

    Reports are at least ``min_interval`` seconds apart, and further apart when the consumer is
    slow: the gap is kept at 4x the time the consumer spent on the last one (drawing previews,
    the web server sending them), so showing progress never takes more than about a fifth of
    the machine from the sampling thread it shares the cores and the GIL with.
    """
    updates: queue.Queue = queue.Queue()
    cancel = threading.Event()
    done = object()
    last_report = [float("-inf")]
    interval = [min_interval]

    def report(progress: Progress) -> None:
        # dropped here, in the sampling thread, so the consumer is not woken up for frames it would skip
        now = time.monotonic()
        if now - last_report[0] >= interval[0]:
            last_report[0] = now
            updates.put(progress)

    def worker():
        try:
            updates.put((done, job(report, cancel)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            updates.put((exc, None))

    thread = threading.Thread(target=worker, name="dit-sampling", daemon=True)
    thread.start()
    try:
        while True:
            item = updates.get()
            while isinstance(item, Progress) and not updates.empty():
                item = updates.get()  # skip stale frames: previews are for now, not history
            if isinstance(item, Progress):
                handed = time.monotonic()
                yield item
                interval[0] = max(min_interval, 4 * (time.monotonic() - handed))
                continue
            marker, value = item
            if marker is done:
                yield value
                return
            raise marker
    finally:
        cancel.set()
