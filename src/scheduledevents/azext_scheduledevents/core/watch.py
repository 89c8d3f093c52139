# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The watcher: poll the document, turn what changed into transitions, act on each exactly once.

A poll compares the document with the last snapshot of every EventId in the state store, never with
incarnation numbers (a client can miss incarnations, and they can reset):

    new and Scheduled -> scheduled      new and Started -> started (a hardware failure has no Scheduled phase)
    NotBefore moved   -> rescheduled    Scheduled -> Started -> started
    absent from COMPLETION_CONFIRM_POLLS good polls in a row -> completed (finished or canceled: IMDS never says)

Transitions are written to the store before anything acts on them. Each event's transitions are then
worked through in order on a thread of their own, so a long drain for one event never delays noticing a
30-second Preempt for another: print the line, run the commands, approve, notify. Every step is saved as
begun and as finished, so a restart resumes where it stopped and never runs a step twice.
"""

import itertools
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .approval import approve_events
from .config import (COMPLETION_CONFIRM_POLLS, IMDS_OUTAGE_WARNING_IN_SECONDS, MIN_HANDLER_TIMEOUT_IN_SECONDS,
                     RetryPolicy)
from .errors import EventNotFoundError, ImdsError
from .events import ScheduledEvent
from .log import get_logger
from .state import EventRecord, TransitionRecord
from .times import iso_utc
from .vocabulary import ApprovalState, ApproveMode, Decision, EventStatus, EventType, StepStatus, TransitionKind

logger = get_logger(__name__)


@dataclass(frozen=True)
class Transition:
    """A change in one event's life. ``key`` is unique per event and change, and stable across restarts."""

    kind: TransitionKind
    event: ScheduledEvent
    key: str


def derive_transitions(previous, current):
    """What happened between two snapshots of one event (either may be ``None``)."""
    if current is None:
        if previous is None:
            return []
        return [Transition(TransitionKind.COMPLETED, previous, f'{previous.event_id}/{TransitionKind.COMPLETED}')]
    event_id = current.event_id
    started = current.event_status == EventStatus.STARTED
    if previous is None:
        kind = TransitionKind.STARTED if started else TransitionKind.SCHEDULED
        return [Transition(kind, current, f'{event_id}/{kind}')]
    if started and previous.event_status != EventStatus.STARTED:
        return [Transition(TransitionKind.STARTED, current, f'{event_id}/{TransitionKind.STARTED}')]
    if not started and current.not_before != previous.not_before:
        stamp = current.not_before.isoformat() if current.not_before else 'none'
        key = f'{event_id}/{TransitionKind.RESCHEDULED}/{stamp}'
        return [Transition(TransitionKind.RESCHEDULED, current, key)]
    return []


class Watcher:  # pylint: disable=too-many-instance-attributes
    """Polls through ``client`` and acts through ``commands`` (kind -> [CommandHandler]) and ``sinks``.

    ``client_factory`` makes the extra IMDS clients that approval threads use (a client holds one
    connection and is not shared between threads). ``emit`` receives every line for stdout.

        Watcher(ImdsClient(), StateStore(dir), vm_name='web_0', client_factory=ImdsClient,
                settings=WatchSettings(), policy=ApprovalPolicy(), commands={}, sinks=[], emit=print).run(stop)
    """

    def __init__(self, client, store, *, vm_name, client_factory, settings, policy, commands, sinks, emit,
                 wall=time.time, clock=time.monotonic):
        self._client = client
        self._store = store
        self.vm_name = vm_name
        self._client_factory = client_factory
        self._settings = settings
        self._policy = policy
        self._commands = commands
        self._sinks = sinks
        self._emit_line = emit
        self._wall = wall
        self._clock = clock
        self._lock = threading.RLock()       # guards the store's records
        self._emit_lock = threading.Lock()   # keeps lines whole; never held with the lock above
        self._write_lock = threading.Lock()  # orders writes of state files
        self._versions = itertools.count(1)
        self._written = {}                   # EventId -> version last written
        self._jobs = {}
        self._stop = threading.Event()
        self._failing_since = None
        self._outage_warned = False

    def run(self, stop):
        """Poll every interval until ``stop`` is set (or once), then let running work finish.

        After ``stop``, a running command finishes (or meets its deadline) but no new one starts: what is
        left is still pending in the state and runs when the watcher starts again.
        """
        self._stop = stop
        interval = self._settings.interval_in_seconds
        next_poll = self._clock()
        ok = False
        while not stop.is_set():
            ok = self.poll()
            if self._settings.once:
                break
            # Keep a steady cadence; after a slow poll, poll again at once rather than drift.
            next_poll = max(next_poll + interval, self._clock())
            stop.wait(next_poll - self._clock())
        self.wait_for_work()
        return ok

    def poll(self):
        """One cycle: read the document, record transitions, start work. False when IMDS did not answer."""
        try:
            document = self._client.get_document(deadline_in_seconds=self._settings.poll_deadline_in_seconds)
        except ImdsError as ex:
            self._imds_failed(ex)
            self._dispatch()
            return False
        self._imds_answered()
        with self._lock:
            changed = self._observe(document)
        for record in changed:
            self._save(record)
        self._dispatch()
        return True

    def wait_for_work(self):
        for job in list(self._jobs.values()):
            job.join()

    # Observing -------------------------------------------------------------------------------------------

    def _observe(self, document):
        """Update the records from ``document``; returns the records that changed."""
        now = self._wall()
        changed = {}
        present = set()
        for event in document.events:
            present.add(event.event_id)
            record = self._store.events.get(event.event_id)
            if record is None:
                record = EventRecord(event_id=event.event_id, snapshot=event.to_wire(), first_seen=now,
                                     ignored=self._ignore_reason(event))
                self._store.events[event.event_id] = record
                changed[event.event_id] = record
                if record.ignored:
                    logger.info('Ignoring event %s (%s): %s', event.event_id, event.event_type, record.ignored)
                    continue
                previous = None
            else:
                if record.missing_polls:
                    record.missing_polls = 0
                    changed[event.event_id] = record
                if record.ignored or record.completed_at is not None:
                    continue
                previous = ScheduledEvent.from_wire(record.snapshot)
            for transition in derive_transitions(previous, event):
                if self._record(record, transition, now):
                    changed[event.event_id] = record
            if record.snapshot != event.to_wire():
                record.snapshot = event.to_wire()
                changed[event.event_id] = record
        for event_id, record in list(self._store.events.items()):
            if event_id in present or record.completed_at is not None:
                continue
            record.missing_polls += 1
            changed[event_id] = record
            if record.missing_polls < COMPLETION_CONFIRM_POLLS:
                continue
            if record.ignored:
                self._store.forget(event_id)
                changed.pop(event_id)
                continue
            record.completed_at = now
            self._store.prune()
            for transition in derive_transitions(ScheduledEvent.from_wire(record.snapshot), None):
                self._record(record, transition, now)
        return list(changed.values())

    def _record(self, record, transition, now):
        if record.has_transition(transition.key):
            return False
        record.transitions.append(TransitionRecord(key=transition.key, kind=transition.kind,
                                                   event=transition.event.to_wire(), detected_at=now))
        return True

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
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if not self._outage_warned and now - self._failing_since >= IMDS_OUTAGE_WARNING_IN_SECONDS:
            self._outage_warned = True
            logger.warning('IMDS has not answered well for %.0f s (%s); still polling.', now - self._failing_since, ex)
        else:
            logger.info('Poll failed: %s', ex)

    def _imds_answered(self):
        if self._failing_since is not None and self._outage_warned:
            logger.warning('IMDS answers again after %.0f s.', self._clock() - self._failing_since)
        self._failing_since, self._outage_warned = None, False

    # Acting ----------------------------------------------------------------------------------------------

    def _dispatch(self):
        with self._lock:
            due = [r.event_id for r in self._store.events.values() if not r.ignored and r.pending()]
            for event_id in due:
                job = self._jobs.get(event_id)
                if job is None or not job.is_alive():
                    job = threading.Thread(target=self._work, args=(event_id,), name=f'event-{event_id[:8]}',
                                           daemon=True)
                    self._jobs[event_id] = job
                    job.start()

    def _work(self, event_id):
        while not self._stop.is_set():
            with self._lock:
                record = self._store.events.get(event_id)
                pending = record.pending() if record else []
                if not pending:
                    return
                transition = pending[0]
            self._process(record, transition)

    def _process(self, record, transition):
        line = self._line(transition)
        if not transition.emitted:
            self._emit(line)
            self._set(record, transition, 'emitted', True)
        if transition.kind == TransitionKind.SCHEDULED and self._policy.mode == ApproveMode.IMMEDIATELY:
            self._approve(record, handlers_ok=True)
        notifier = threading.Thread(target=self._notify, args=(record, transition, line), daemon=True)
        notifier.start()
        handlers_ok = self._run_commands(record, transition, line)
        notifier.join()
        if self._stop.is_set() and not self._all_steps_taken(transition):
            return
        if transition.kind == TransitionKind.SCHEDULED and self._policy.mode == ApproveMode.AFTER_HANDLERS:
            self._approve(record, handlers_ok=handlers_ok)
        self._set(record, transition, 'done', True)

    def _command_steps(self, kind):
        """(step name, handler) for this kind's commands; the name is how the state knows the step."""
        return [(f'command:{i}:{h.name}', h) for i, h in enumerate(self._commands.get(kind, ()))]

    def _all_steps_taken(self, transition):
        steps = [step for step, _ in self._command_steps(transition.kind)] + [sink.step for sink in self._sinks]
        return all(step in transition.steps for step in steps)

    def _run_commands(self, record, transition, line):
        """Run this kind's commands in order; True when every one of them exited 0 in time."""
        all_ok = True
        for step, handler in self._command_steps(transition.kind):
            status = transition.steps.get(step)
            if status is None and self._stop.is_set():
                return False
            if status is None:
                self._set_step(record, transition, step, StepStatus.BEGUN)
                timeout = self._handler_timeout(transition)
                result = handler.run(dict(line, SecondsUntilNotBefore=self._seconds_left(transition)),
                                     timeout=timeout)
                status = result.status
                self._set_step(record, transition, step, status)
                log = logger.info if status == StepStatus.OK else logger.warning
                log('Handler %s for %s of %s %s after %.1f s.', handler.name, transition.kind,
                    line['EventId'], result.detail, result.seconds)
            all_ok &= status == StepStatus.OK
        return all_ok

    def _notify(self, record, transition, line):
        for sink in self._sinks:
            if sink.step in transition.steps:
                continue
            if self._stop.is_set():
                return
            self._set_step(record, transition, sink.step, StepStatus.BEGUN)
            try:
                ok = sink.notify(line)
            except OSError as ex:
                logger.warning('Notification %s failed: %s', sink.step, ex)
                ok = False
            self._set_step(record, transition, sink.step, StepStatus.OK if ok else StepStatus.FAILED)

    def _approve(self, record, *, handlers_ok):
        if record.approval not in (None, ApprovalState.SENDING):
            return
        event = ScheduledEvent.from_wire(record.snapshot)
        reason = self._policy.withholds(event, self.vm_name)
        if reason is None and not handlers_ok:
            reason = 'a scheduled handler failed, timed out or was interrupted'
            logger.warning('Not approving %s (%s): %s.', event.event_id, event.event_type, reason)
            self._emit(self._action_line(Decision.NOT_APPROVED, event, reason))
        if reason is not None:
            self._set_approval(record, ApprovalState.WITHHELD, reason)
            return
        self._set_approval(record, ApprovalState.SENDING)
        result = self._send_approval(record, event)
        if result is None:
            return
        if result.sent:
            self._set_approval(record, ApprovalState.APPROVED, f'EventStatus {result.status_after}')
            logger.info('Approved %s (%s): now %s.', event.event_id, event.event_type, result.status_after)
            self._emit(self._action_line(Decision.APPROVED, event, f'EventStatus {result.status_after}'))
        else:
            self._set_approval(record, ApprovalState.NOT_SENT, f'EventStatus {result.status_after}')

    def _save(self, record):
        """Persist one record. The bytes are taken under the lock and written outside it, so polling never
        waits on a disk; a write that a newer one has overtaken is skipped (the newer one holds its change)."""
        with self._lock:
            if self._store.events.get(record.event_id) is not record:
                return
            version, data = next(self._versions), self._store.dump(record)
        with self._write_lock:
            if version > self._written.get(record.event_id, 0):
                self._store.write(record.event_id, data)
                self._written[record.event_id] = version

    def _send_approval(self, record, event):
        """Approve ``event``, retrying IMDS faults until NotBefore (at least one poll deadline)."""
        left = event.seconds_until_not_before(datetime.now(timezone.utc)) or 0
        give_up_at = self._clock() + max(self._settings.poll_deadline_in_seconds, left)
        attempt = 0
        while True:
            remaining = give_up_at - self._clock()
            try:
                with self._client_factory(retry=RetryPolicy(deadline_in_seconds=max(remaining, 0.1))) as client:
                    result = approve_events(client, [event.event_id], force=False)[0]
                return result
            except EventNotFoundError:
                logger.info('Not approving %s: it left the document (over or canceled).', event.event_id)
                self._set_approval(record, ApprovalState.NOT_SENT, 'it left the document')
                return None
            except ImdsError as ex:
                delay = RetryPolicy().delay(attempt)
                if self._clock() + delay >= give_up_at:
                    # NotBefore comes all the same; the daemon goes on.
                    logger.error('Approving %s failed: %s', event.event_id, ex)
                    self._set_approval(record, ApprovalState.FAILED, str(ex))
                    return None
                logger.info('Approving %s: %s; trying again in %.1f s', event.event_id, ex, delay)
                time.sleep(delay)
                attempt += 1

    def _set(self, record, obj, attribute, value):
        """Change ``obj`` (the record or one of its transitions) and persist the record."""
        with self._lock:
            setattr(obj, attribute, value)
        self._save(record)

    def _set_approval(self, record, state, reason=None):
        with self._lock:
            record.approval, record.approval_reason = state, reason
        self._save(record)

    def _set_step(self, record, transition, step, status):
        with self._lock:
            transition.steps[step] = status
        self._save(record)

    # Lines -----------------------------------------------------------------------------------------------

    def _seconds_left(self, transition):
        event = ScheduledEvent.from_wire(transition.event)
        return event.seconds_until_not_before(datetime.now(timezone.utc))

    def _handler_timeout(self, transition):
        left = self._seconds_left(transition)
        timeout = self._settings.handler_timeout_in_seconds
        if left is not None and transition.kind in (TransitionKind.SCHEDULED, TransitionKind.RESCHEDULED):
            timeout = min(timeout, left - self._settings.deadline_margin_in_seconds)
        return max(timeout, MIN_HANDLER_TIMEOUT_IN_SECONDS)

    def _line(self, transition):
        event = ScheduledEvent.from_wire(transition.event)
        view = event.to_view(vm_name=self.vm_name, now=datetime.now(timezone.utc))
        return {'time': iso_utc(transition.detected_at, timespec='milliseconds'), 'transition': transition.kind,
                'key': transition.key, 'vm': self.vm_name, **view}

    def _action_line(self, kind, event, detail):
        return {'time': iso_utc(self._wall(), timespec='milliseconds'), 'transition': kind,
                'key': f'{event.event_id}/{kind}', 'vm': self.vm_name, 'EventId': event.event_id,
                'EventType': event.event_type, 'detail': detail}

    def _emit(self, line):
        with self._emit_lock:
            self._emit_line(line)


def wait_for_vm_name(client, stop, *, interval_in_seconds, once):
    """This VM's compute.name; a daemon waits for IMDS as long as it takes, ``once`` tries one time."""
    failing_since = time.monotonic()
    warned = False
    while True:
        try:
            return client.vm_name()
        except ImdsError as ex:
            if once:
                raise
            if not warned and time.monotonic() - failing_since >= IMDS_OUTAGE_WARNING_IN_SECONDS:
                warned = True
                logger.warning('Waiting for IMDS to tell this VM\'s name: %s', ex)
            else:
                logger.info('Waiting for IMDS: %s', ex)
        if stop.wait(interval_in_seconds):
            return None
