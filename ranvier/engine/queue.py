"""The event queue: timed events that interrupt compiled simulation.

Population updates and spike deliveries follow a static schedule (every population every
step, deliveries at the end of each min-delay chunk), so a backend runs them inside one
compiled loop. Everything that needs Python (user callbacks, progress reports, the end of a
run) is a timed event in this queue; the run loop hands the backend the stretch up to the next
event, then handles the event.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True)
class Event:
    """Something to do when the simulation reaches ``step``.

    Events due at the same step run in order of ``priority`` (lower first), then insertion.
    """

    step: int
    priority: int
    order: int
    action: Callable[[], Any] = field(compare=False)
    kind: str = field(compare=False, default="callback")


CALLBACK = 0
PROGRESS = 1
STOP = 2


class EventQueue:
    """A priority queue of :class:`Event` ordered by step."""

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._counter = itertools.count()

    def push(self, step: int, action: Callable[[], Any], priority: int = CALLBACK, kind: str = "callback") -> Event:
        event = Event(step, priority, next(self._counter), action, kind)
        heapq.heappush(self._heap, event)
        return event

    def next_step(self, default: int) -> int:
        """The step of the earliest event, or ``default`` when the queue is empty."""
        return self._heap[0].step if self._heap else default

    def pop_due(self, step: int) -> list[Event]:
        """Remove and return the events due at or before ``step``, in order."""
        due = []
        while self._heap and self._heap[0].step <= step:
            due.append(heapq.heappop(self._heap))
        return due

    def __len__(self) -> int:
        return len(self._heap)
