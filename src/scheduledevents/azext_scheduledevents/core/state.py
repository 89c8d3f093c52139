# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The watcher's memory, keyed by EventId: what it saw, which transitions and steps ran, what it approved.

One file per event (``events/<EventId>.json``), so a step costs one small write however many events are
remembered. Each file is written atomically (a temp file in the same directory, fsync, rename, fsync of
the directory) after every step, so a SIGKILL at any moment leaves the old file or the new one, never half
of each. A step is written as ``begun`` before it runs; one found ``begun`` at start-up was cut off by a
crash and is marked ``interrupted``, never run again. A file that cannot be read is moved aside and
reported, and the watcher goes on without it rather than crash.
"""

import fcntl
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field

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


@dataclass
class TransitionRecord:
    """One transition of one event, and the progress of each step it needs (name -> status)."""

    key: str
    kind: str              # a TransitionKind value
    event: dict
    detected_at: float
    emitted: bool = False
    steps: dict = field(default_factory=dict)      # step name -> StepStatus
    done: bool = False


@dataclass
class EventRecord:  # pylint: disable=too-many-instance-attributes
    """Everything the watcher knows of one EventId."""

    event_id: str
    snapshot: dict
    first_seen: float
    ignored: str | None = None
    missing_polls: int = 0
    completed_at: float | None = None
    approval: ApprovalState | None = None
    approval_reason: str | None = None
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


class StateStore:
    """The state directory: ``meta.json`` (which VM), ``events/``, and a lock that keeps a second watcher out.

        store = StateStore('/var/lib/scheduled-events')
        store.lock(); store.load(vm_name='web_0')
        record = store.events['C7061BAC-...']; record.approval = ApprovalState.APPROVED; store.save(record)
    """

    def __init__(self, directory, *, wall=time.time):
        self.directory = os.path.abspath(directory)
        self.events_dir = os.path.join(self.directory, EVENTS_DIR)
        self.events = {}
        self.vm_name = None
        self._wall = wall
        self._lock_handle = None

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
        """Read every event. Steps cut off by a crash become ``interrupted``; another VM's state is set aside."""
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
                        logger.warning('Step %s of %s was cut off by a restart; it is not run again.', step,
                                       transition.key)
        self.prune()

    def save(self, record):
        """Write one event's record atomically."""
        self.write(record.event_id, self.dump(record))

    @staticmethod
    def dump(record):
        """A record as bytes: taken under the caller's lock, written later outside it with ``write``."""
        return json.dumps(asdict(record), separators=(',', ':')).encode()

    def write(self, event_id, data):
        write_atomic(self._path(event_id), data)

    def forget(self, event_id):
        """Drop an event from memory and from disk."""
        self.events.pop(event_id, None)
        try:
            os.unlink(self._path(event_id))
        except FileNotFoundError:
            pass

    def prune(self):
        """Forget finished events after the retention period."""
        horizon = self._wall() - COMPLETED_RETENTION_IN_SECONDS
        for event_id in [k for k, r in self.events.items() if r.completed_at is not None and r.completed_at < horizon]:
            self.forget(event_id)

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
