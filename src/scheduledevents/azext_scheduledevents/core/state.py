# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The watcher's memory, keyed by EventId: what it saw, which transitions and steps ran, what it approved.

One file per event (``events/<EventId>.json``), so a step costs one small write however many events are
remembered. Each file is written atomically (a temp file in the same directory, fsync, rename, fsync of
the directory) after every step, so a SIGKILL at any moment leaves the old file or the new one, never half
of each. A step is written as ``begun`` before it runs; one found ``begun`` at start-up was cut off by a
crash and is marked ``interrupted``: the step runner runs it again while there is time (at least once until
finished, never again after). A file that cannot be read is moved aside and reported, and the watcher goes
on without it rather than crash.

The store is also where the watcher's threads meet: every change to a record is made under its lock
(``update``) and written after the lock is released, by one thread per file at a time, so no disk is
touched under the lock and polling never waits on one; and it decides which events have work due.
"""

import fcntl
import itertools
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from .atomicfile import is_temp_file, write_atomic
from .config import COMPLETED_RETENTION_IN_SECONDS
from .errors import InvalidEventIdError, StateLockedError
from .events import validate_event_id
from .log import get_logger
from .vocabulary import ApprovalState, StepStatus

logger = get_logger(__name__)

META_FILE = 'meta.json'
EVENTS_DIR = 'events'
LOCK_FILE = 'watch.lock'
STATE_VERSION = 1
# A step with one of these statuses has finished for good; the others (begun, interrupted) have not.
FINAL_STATUSES = frozenset({StepStatus.OK, StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.LATE})


@dataclass
class TransitionRecord:  # pylint: disable=too-many-instance-attributes
    """One transition of one event, and the progress of each step it needs."""

    key: str
    kind: str              # a TransitionKind value
    event: dict
    detected_at: float
    emitted: bool = False
    steps: dict = field(default_factory=dict)      # step name -> StepStatus
    attempts: dict = field(default_factory=dict)   # step name -> how many times it was begun
    done: bool = False

    def finished(self, step):
        return self.steps.get(step) in FINAL_STATUSES


@dataclass
class EventRecord:  # pylint: disable=too-many-instance-attributes
    """Everything the watcher knows of one EventId."""

    event_id: str
    snapshot: dict
    first_seen: float
    ignored: Optional[str] = None
    missing_polls: int = 0
    completed_at: Optional[float] = None
    approval: Optional[ApprovalState] = None
    approval_reason: Optional[str] = None
    approval_announced: bool = False     # its decision line was written
    transitions: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, obj):
        obj = dict(obj)
        obj['transitions'] = [TransitionRecord(**dict(t, steps={step: StepStatus(status)
                                                                for step, status in t.get('steps', {}).items()}))
                              for t in obj.get('transitions', [])]
        if obj.get('approval') is not None:
            obj['approval'] = ApprovalState(obj['approval'])
        return cls(**obj)

    def has_transition(self, key):
        return any(t.key == key for t in self.transitions)

    def pending(self):
        return [t for t in self.transitions if not t.done]


class StateStore:  # pylint: disable=too-many-instance-attributes
    """The state directory: ``meta.json`` (which VM), ``events/``, and a lock that keeps a second watcher out.

        store = StateStore('/var/lib/scheduled-events')
        store.lock(); store.load(vm_name='web_0')
        record = store.events['C7061BAC-...']; record.approval = ApprovalState.APPROVED; store.save(record)
    """

    def __init__(self, directory, *, wall=time.time, write=write_atomic):
        self.directory = os.path.abspath(directory)
        self.events_dir = os.path.join(self.directory, EVENTS_DIR)
        self.events = {}
        self.vm_name = None
        self._wall = wall
        self._write_file = write             # write_atomic; a test passes a slow or failing disk
        self._lock_handle = None
        self._lock = threading.RLock()          # guards ``events``, every record in it, and the three below
        self._turn = threading.Condition(self._lock)
        self._pending = {}                      # EventId -> (version, bytes, or None to delete) not yet on disk
        self._writing = set()                   # EventIds whose file a thread is writing now
        self._written = {}                      # EventId -> version last on disk
        self._versions = itertools.count(1)

    def lock(self):
        """Take the directory for this process; raise ``StateLockedError`` if another watcher has it."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        handle = open(  # pylint: disable=consider-using-with
            os.path.join(self.directory, LOCK_FILE), 'a+', encoding='utf-8')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise StateLockedError(f'another watcher (pid {holder or "unknown"}) is using the state directory '
                                   f'{self.directory}', directory=self.directory,
                                   pid=int(holder) if holder.isdigit() else None) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle

    def unlock(self):
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def load(self, *, vm_name):
        """Read every event. Steps cut off by a crash become ``interrupted`` (to run again while there is
        time); another VM's state is set aside."""
        self.vm_name, self.events = vm_name, {}
        meta_path = os.path.join(self.directory, META_FILE)
        try:
            meta = _read_json(meta_path)
            saved_vm = meta['vm_name'] if meta.get('version') == STATE_VERSION else None
        except FileNotFoundError:
            saved_vm = vm_name
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as ex:
            self._set_aside(meta_path, f'cannot be read ({type(ex).__name__}: {ex})')
            saved_vm = None
        if saved_vm != vm_name:
            if os.path.isdir(self.events_dir):
                self._set_aside(self.events_dir, f'belongs to VM {saved_vm!r}, not {vm_name!r}')
        write_atomic(meta_path, json.dumps({'version': STATE_VERSION, 'vm_name': vm_name}).encode())
        names = os.listdir(self.events_dir) if os.path.isdir(self.events_dir) else []
        for name in names:
            if is_temp_file(name):
                # A write cut off by a crash: the file it was replacing is still whole.
                os.unlink(os.path.join(self.events_dir, name))
        for name in sorted(n for n in names if n.endswith('.json') and not is_temp_file(n)):
            path = os.path.join(self.events_dir, name)
            try:
                record = EventRecord.from_dict(_read_json(path))
                if os.path.basename(self._path(record.event_id)) != name:
                    raise ValueError(f'it holds event {record.event_id!r}')
            except (OSError, ValueError, TypeError, KeyError, AttributeError, InvalidEventIdError) as ex:
                self._set_aside(path, f'cannot be read ({type(ex).__name__}: {ex})')
                continue
            self.events[record.event_id] = record
            for transition in record.transitions:
                for step, status in transition.steps.items():
                    if status == StepStatus.BEGUN:
                        transition.steps[step] = StepStatus.INTERRUPTED
                        logger.warning('Step %s of %s was cut off by a restart.', step, transition.key)
        self.prune()

    def save(self, record):
        """Write one event's record atomically."""
        self._write(record, only_if_kept=False)

    def _write(self, record, *, only_if_kept):
        """The bytes are taken under the lock and written outside it; with ``only_if_kept`` a record the store
        no longer keeps is not written (a forgotten event must not come back)."""
        with self._turn:
            if only_if_kept and self.events.get(record.event_id) is not record:
                return
            data = json.dumps(asdict(record), separators=(',', ':')).encode()
        self._commit(record.event_id, data)

    def _commit(self, event_id, data):
        """Put ``data`` (None: no file) on disk as the event's newest version, and return once it is there.

        One thread writes a given file at a time, and never under the lock: a thread that finds another
        writing leaves its bytes pending and waits; the writer takes the newest pending bytes before it
        stops, so the file ends as the last change made, and a write that a newer one overtook is skipped.
        """
        path = self._path(event_id)
        with self._turn:
            version = next(self._versions)
            self._pending[event_id] = (version, data)
            while event_id in self._writing:
                self._turn.wait()
            if self._written.get(event_id, 0) >= version:
                return
            self._writing.add(event_id)
        try:
            while True:
                with self._turn:
                    job = self._pending.pop(event_id, None)
                if job is None:
                    return
                try:
                    self._put(path, job[1])
                except BaseException:
                    with self._turn:
                        self._pending.setdefault(event_id, job)   # the next writer tries again
                    raise
                with self._turn:
                    self._written[event_id] = job[0]
        finally:
            with self._turn:
                self._writing.discard(event_id)
                self._turn.notify_all()

    def update(self, record, change, *args):
        """``change(*args)`` under the lock (it changes ``record`` or its transitions), then save the record."""
        with self._lock:
            change(*args)
        self._write(record, only_if_kept=True)

    def read(self, function, *args, **kwargs):
        """``function(*args, **kwargs)`` under the lock, for a consistent look at records other threads
        change."""
        with self._lock:
            return function(*args, **kwargs)

    def apply(self, changes, *, now):
        """Make one poll's ``detect.Change`` values true in memory, then on disk."""
        touched, dropped = [], []
        with self._lock:
            for change in changes:
                if change.forget:
                    dropped.append(change.event_id)
                    continue
                record = self._apply(change, now)
                # A poll must not wait on a disk for what it need not keep: the next write carries the count.
                if not change.counts_only:
                    touched.append(record)
        for record in touched:
            self._write(record, only_if_kept=True)
        for event_id in dropped:
            self.forget(event_id)
        if any(change.completed for change in changes):
            self.prune()

    def _apply(self, change, now):
        record = self.events.get(change.event_id)
        if change.first_seen:
            record = EventRecord(event_id=change.event_id, snapshot=change.snapshot, first_seen=now,
                                 ignored=change.ignored)
            self.events[change.event_id] = record
            if change.ignored:
                logger.info('Ignoring event %s (%s): %s', change.event_id, change.snapshot.get('EventType'),
                            change.ignored)
        elif change.snapshot is not None:
            record.snapshot = change.snapshot
        if change.missing_polls is not None:
            record.missing_polls = change.missing_polls
        if change.completed:
            record.completed_at = now
        for transition in change.transitions:
            record.transitions.append(TransitionRecord(key=transition.key, kind=transition.kind,
                                                       event=transition.event.to_wire(), detected_at=now))
        return record

    def due(self):
        """EventIds with a transition whose steps are not all done, oldest first."""
        with self._lock:
            return [r.event_id for r in self.events.values() if not r.ignored and r.pending()]

    def next_pending(self, event_id):
        """``(record, first transition not done)`` of one event, or ``(record, None)``."""
        with self._lock:
            record = self.events.get(event_id)
            pending = record.pending() if record else []
            return record, (pending[0] if pending else None)

    def forget(self, event_id):
        """Drop an event from memory and from disk."""
        with self._lock:
            self.events.pop(event_id, None)
        self._commit(event_id, None)

    def prune(self):
        """Forget finished events after the retention period."""
        horizon = self._wall() - COMPLETED_RETENTION_IN_SECONDS
        with self._lock:
            old = [k for k, r in self.events.items() if r.completed_at is not None and r.completed_at < horizon]
        for event_id in old:
            self.forget(event_id)

    def _put(self, path, data):
        """Write ``data`` to ``path`` atomically, or remove the file when ``data`` is None."""
        if data is not None:
            self._write_file(path, data)
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def _path(self, event_id):
        # EventIds are GUIDs; anything else must not become a path.
        return os.path.join(self.events_dir, validate_event_id(event_id).upper() + '.json')

    def _set_aside(self, path, reason):
        target = f'{path}.corrupt-{int(self._wall())}'
        # Never onto an earlier set-aside of the same second: both are kept for whoever looks into it.
        for n in itertools.count(1):
            if not os.path.lexists(target):
                break
            target = f'{path}.corrupt-{int(self._wall())}-{n}'
        try:
            os.replace(path, target)
        except OSError as ex:
            logger.error('State %s %s, and could not be moved aside: %s', path, reason, ex)
            return
        logger.error('State %s %s: moved to %s.', path, reason, target)


def _read_json(path):
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)
