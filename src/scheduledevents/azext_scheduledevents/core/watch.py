# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The watcher: the loop that polls IMDS and hands what changed to the parts that act on it.

    poll -> detect.detect (what changed, as values) -> StateStore.apply (saved before anything acts)
         -> StateStore.due -> one thread per event: StepRunner.run, then Approver.decide
         -> a WatchStats snapshot -> publish (the status and metrics files, written off this thread)

Each event's transitions are worked through in order on a thread of their own, so a long drain for one
event never delays noticing a 30-second Preempt for another.
"""

import threading
import time
from datetime import datetime, timezone

from .approver import Approver
from .config import IMDS_OUTAGE_WARNING_IN_SECONDS
from .detect import detect
from .errors import ImdsError
from .log import get_logger
from .steps import StepRunner
from .vocabulary import ApproveMode, EventType, TransitionKind
from .watchstats import EventsView, WatchStats

logger = get_logger(__name__)


class Watcher:  # pylint: disable=too-many-instance-attributes
    """Polls through ``client`` and acts through ``commands`` (TransitionKind -> [CommandHandler]) and
    ``sinks``. ``client_factory`` makes the IMDS clients approvals use; ``emit`` takes every line for stdout.
    Every part reports to ``stats``; after each poll ``publish`` gets its snapshot (``ReportWriter.publish``).

        Watcher(ImdsClient(), StateStore(dir), vm_name='web_0', client_factory=ImdsClient,
                settings=WatchSettings(), policy=ApprovalPolicy(), commands={}, sinks=[], emit=print).run(stop)
    """

    def __init__(self, client, store, *, vm_name, client_factory, settings, policy, commands, sinks, emit,
                 coordinator=None, stats=None, publish=None, wall=time.time, clock=time.monotonic):
        self._client = client
        self._store = store
        self.vm_name = vm_name
        self._settings = settings
        self._policy = policy
        self._wall = wall
        self._clock = clock
        self._emit_lock = threading.Lock()   # keeps lines whole
        self._emit_line = emit
        self._stop = threading.Event()
        self._jobs = {}
        self._failing_since = None
        self._outage_warned = False
        self._commands, self._sinks, self._client_factory = commands, sinks, client_factory
        self._coordinator = coordinator
        self._stats = stats or WatchStats(wall=wall)
        self._publish = publish or (lambda snapshot: None)
        self._published = None
        self._runner = self._approver = None

    def run(self, stop):
        """Poll every interval until ``stop`` is set (or once), then let running work finish.

        After ``stop``, a running command finishes (or meets its deadline) but no new one starts: what is
        left is still pending in the state and runs when the watcher starts again. A snapshot is published
        after each poll (with ``once``, after its work), and once more at the end if the work changed it.
        """
        self._stop = stop
        now = self._now
        self._runner = StepRunner(self._store, commands=self._commands, sinks=self._sinks, settings=self._settings,
                                  vm_name=self.vm_name, emit=self._emit, stop=stop, stats=self._stats, now=now)
        self._approver = Approver(self._store, policy=self._policy, vm_name=self.vm_name,
                                  client_factory=self._client_factory, settings=self._settings, emit=self._emit,
                                  coordinator=self._coordinator, stop=stop, stats=self._stats, wall=self._wall,
                                  clock=self._clock, now=now)
        interval = self._settings.interval_in_seconds
        next_poll = self._clock()
        ok = False
        while not stop.is_set():
            ok = self.poll()
            if self._settings.once:
                break
            self._report()
            # Keep a steady cadence; after a slow poll, poll again at once rather than drift.
            next_poll = max(next_poll + interval, self._clock())
            stop.wait(next_poll - self._clock())
        self.wait_for_work()
        self._report(unless_unchanged=True)
        return ok

    def _now(self):
        return datetime.fromtimestamp(self._wall(), timezone.utc)

    def poll(self):
        """One cycle: read the document, record what changed, start work. False when IMDS did not answer."""
        try:
            document = self._client.get_document(deadline_in_seconds=self._settings.poll_deadline_in_seconds)
        except ImdsError as ex:
            self._imds_failed(ex)
            document = None
        if document is not None:
            self._imds_answered()
            changes = self._store.read(detect, self._store.events, document, ignore_reason=self._ignore_reason)
            self._store.apply(changes, now=self._wall())
        self._dispatch()
        return document is not None

    def _report(self, *, unless_unchanged=False):
        """Publish a snapshot of the counts and of the state's events (read in memory, under its lock)."""
        snapshot = self._stats.snapshot(self._store.read(EventsView.of, self._store.events))
        if unless_unchanged and snapshot == self._published:
            return
        self._published = snapshot
        self._publish(snapshot)

    def wait_for_work(self):
        for job in list(self._jobs.values()):
            job.join()

    def _ignore_reason(self, event):
        settings = self._settings
        if not settings.all_resources and not event.affects(self.vm_name):
            return f'its Resources do not name this VM ({self.vm_name})'
        if settings.event_types is not None and event.event_type not in settings.event_types:
            return f'{event.event_type} is not among the --event-types'
        if (event.event_type == EventType.FREEZE and settings.ignore_freeze_under_in_seconds is not None
                and event.duration_in_seconds is not None
                and 0 <= event.duration_in_seconds < settings.ignore_freeze_under_in_seconds):
            return f'a Freeze of {event.duration_in_seconds} s (--ignore-freeze-under)'
        return None

    def _imds_failed(self, ex):
        self._stats.poll_failed(ex)
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if not self._outage_warned and now - self._failing_since >= IMDS_OUTAGE_WARNING_IN_SECONDS:
            self._outage_warned = True
            logger.warning('IMDS has not answered well for %.0f s (%s); still polling.', now - self._failing_since, ex)
        else:
            logger.info('Poll failed: %s', ex)

    def _imds_answered(self):
        self._stats.poll_answered()
        if self._failing_since is not None and self._outage_warned:
            logger.warning('IMDS answers again after %.0f s.', self._clock() - self._failing_since)
        self._failing_since, self._outage_warned = None, False

    def _dispatch(self):
        for event_id in self._store.due():
            job = self._jobs.get(event_id)
            if job is None or not job.is_alive():
                job = threading.Thread(target=self._work, args=(event_id,), name=f'event-{event_id[:8]}',
                                       daemon=True)
                self._jobs[event_id] = job
                job.start()

    def _work(self, event_id):
        """Work through one event's pending transitions in order, until none is left or ``stop`` comes."""
        while not self._stop.is_set():
            record, transition = self._store.next_pending(event_id)
            if transition is None:
                return
            scheduled = transition.kind == TransitionKind.SCHEDULED
            if scheduled and self._policy.mode == ApproveMode.IMMEDIATELY:
                self._runner.announce(record, transition)           # the event's line, then its decision
                self._approver.decide(record, handlers_ok=True)
            handlers_ok = self._runner.run(record, transition)
            if handlers_ok is None:
                return
            if scheduled and self._policy.mode == ApproveMode.AFTER_HANDLERS:
                self._approver.decide(record, handlers_ok=handlers_ok,
                                      attempt=max(transition.attempts.values(), default=1))
            if transition.kind == TransitionKind.COMPLETED:
                self._approver.event_over(event_id)
            self._store.update(record, setattr, transition, 'done', True)

    def _emit(self, line):
        with self._emit_lock:
            self._emit_line(line)


def wait_for_vm_name(client, stop, *, interval_in_seconds, once, clock=time.monotonic):
    """This VM's compute.name; a daemon waits for IMDS as long as it takes, ``once`` tries one time."""
    failing_since = clock()
    warned = False
    while True:
        try:
            return client.vm_name()
        except ImdsError as ex:
            if once:
                raise
            if not warned and clock() - failing_since >= IMDS_OUTAGE_WARNING_IN_SECONDS:
                warned = True
                logger.warning('Waiting for IMDS to tell this VM\'s name: %s', ex)
            else:
                logger.info('Waiting for IMDS: %s', ex)
        if stop.wait(interval_in_seconds):
            return None
