# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""What the watcher has done since it started, counted where it happens and read as one ``Snapshot``.

The poll, the step runner and the approver report to one ``WatchStats`` (from their own threads); after
each poll the watcher takes a snapshot of it and of the state's events, and both the status file
(``status.py``) and the metrics file (``metrics.py``) are rendered from that one value.

    stats = WatchStats()
    stats.handler_ran(TransitionKind.SCHEDULED, StepStatus.OK)
    snapshot = stats.snapshot(store.read(EventsView.of, store.events))
"""

import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Mapping, Optional, Tuple

from ..version import VERSION
from .vocabulary import StepStatus

# Steps the status file lists: cut off (to run again) or finished without success.
NOT_OK_STEPS = frozenset({StepStatus.INTERRUPTED, StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.LATE})


@dataclass(frozen=True)
class StepProblem:
    """One step that was cut off or did not succeed: which event, transition kind and step, and how."""

    event_id: str
    transition: str
    step: str
    status: str


@dataclass(frozen=True)
class EventsView:
    """The events the watcher acts on (not ignored) and has not seen complete, as the state has them.

        EventsView.of(store.events)         # under the store's lock: ``store.read(EventsView.of, store.events)``
    """

    present: Tuple[Tuple[str, str, int], ...] = ()     # (EventType, EventStatus, how many)
    pending: Tuple[str, ...] = ()                      # their EventIds, first seen first
    problems: Tuple[StepProblem, ...] = ()

    @classmethod
    def of(cls, records):
        """From the store's records (EventId -> EventRecord); reads them only, so the store's lock suffices."""
        present = Counter()
        pending, problems = [], []
        for record in records.values():
            if record.ignored:
                continue
            problems += [StepProblem(record.event_id, str(t.kind), step, str(status)) for t in record.transitions
                         for step, status in t.steps.items() if status in NOT_OK_STEPS]
            if record.completed_at is None:
                pending.append(record.event_id)
                present[record.snapshot.get('EventType'), record.snapshot.get('EventStatus')] += 1
        return cls(present=tuple((kind, status, n) for (kind, status), n in sorted(present.items())),
                   pending=tuple(pending), problems=tuple(problems))


@dataclass(frozen=True)
class Snapshot:  # pylint: disable=too-many-instance-attributes
    """The counts at one moment, with the events as the state had them. Times are epoch seconds."""

    version: str
    started: float
    last_poll: Optional[float]
    last_poll_error: Optional[str]             # None: the last poll was answered
    last_success: Optional[float]
    imds_failures_in_a_row: int
    imds_errors: int
    handler_runs: Mapping[str, int]            # TransitionKind -> runs
    handler_failures: Mapping[str, int]        # TransitionKind -> runs that did not exit 0 in time
    approvals: Mapping[str, int]               # final ApprovalState -> decisions
    last_approval: Optional[Tuple[str, float, str]]     # (EventId, when, ApprovalState)
    events: EventsView


class WatchStats:
    """The watcher's counters, safe to report to from any thread; ``wall`` stamps what happens.

        stats = WatchStats(wall=time.time)
        stats.poll_failed(ImdsTimeoutError('IMDS did not answer'))
    """

    def __init__(self, *, wall=time.time, version=VERSION):
        self._wall = wall
        self._lock = threading.Lock()
        # The scalars, kept as a Snapshot and replaced as they change; the counters beside it.
        self._now = Snapshot(version=version, started=wall(), last_poll=None, last_poll_error=None,
                             last_success=None, imds_failures_in_a_row=0, imds_errors=0, handler_runs={},
                             handler_failures={}, approvals={}, last_approval=None, events=EventsView())
        self._runs, self._failures, self._approvals = Counter(), Counter(), Counter()

    def poll_answered(self):
        with self._lock:
            now = self._wall()
            self._now = replace(self._now, last_poll=now, last_success=now, last_poll_error=None,
                                imds_failures_in_a_row=0)

    def poll_failed(self, error):
        line = ' '.join(str(error).split()) or type(error).__name__
        with self._lock:
            self._now = replace(self._now, last_poll=self._wall(), last_poll_error=line,
                                imds_failures_in_a_row=self._now.imds_failures_in_a_row + 1,
                                imds_errors=self._now.imds_errors + 1)

    def handler_ran(self, kind, status):
        """A command of a ``kind`` transition ran and ended with ``status`` (a StepStatus)."""
        kind = str(kind)
        with self._lock:
            self._runs[kind] += 1
            if status != StepStatus.OK:
                self._failures[kind] += 1

    def approval_settled(self, event_id, state):
        """The approval of ``event_id`` reached its final ``state`` (an ApprovalState)."""
        with self._lock:
            self._approvals[str(state)] += 1
            self._now = replace(self._now, last_approval=(event_id, self._wall(), str(state)))

    def snapshot(self, events):
        """The counts now, with ``events`` (an ``EventsView``)."""
        with self._lock:
            return replace(self._now, handler_runs=dict(self._runs), handler_failures=dict(self._failures),
                           approvals=dict(self._approvals), events=events)
