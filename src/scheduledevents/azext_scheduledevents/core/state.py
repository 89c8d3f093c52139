# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The watcher's memory, keyed by EventId: what it saw, which transitions and steps ran, what it approved.

The file is written atomically (a temp file in the same directory, fsync, rename, fsync of the directory)
after every step, so a SIGKILL at any moment leaves the old file or the new one, never half of each. A
step is written as ``begun`` before it runs; one found ``begun`` at start-up was cut off by a crash and is
marked ``interrupted``, never run again. A file that cannot be read is moved aside and reported, and the
watcher starts afresh rather than crash.
"""

import fcntl
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field

from knack.log import get_logger

from .errors import ScheduledEventsError

logger = get_logger(__name__)

STATE_FILE = 'state.json'
LOCK_FILE = 'watch.lock'
STATE_VERSION = 1
# How long a finished event is remembered, so that a document that flickers cannot make it new again.
COMPLETED_RETENTION_IN_SECONDS = 7 * 24 * 3600

BEGUN, OK, FAILED, TIMEOUT, INTERRUPTED = 'begun', 'ok', 'failed', 'timeout', 'interrupted'


class StateLockedError(ScheduledEventsError):
    """Another watcher holds the state directory's lock."""


@dataclass
class TransitionRecord:
    """One transition of one event, and the progress of each step it needs (name -> status)."""

    key: str
    kind: str
    event: dict
    detected_at: float
    emitted: bool = False
    steps: dict = field(default_factory=dict)
    done: bool = False


@dataclass
class EventRecord:
    """Everything the watcher knows of one EventId."""

    event_id: str
    snapshot: dict
    first_seen: float
    ignored: str | None = None
    missing_polls: int = 0
    completed_at: float | None = None
    approval: str | None = None
    transitions: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, obj):
        obj = dict(obj)
        obj['transitions'] = [TransitionRecord(**t) for t in obj.get('transitions', [])]
        return cls(**obj)

    def has_transition(self, key):
        return any(t.key == key for t in self.transitions)

    def pending(self):
        return [t for t in self.transitions if not t.done]


class StateStore:
    """The state directory: ``state.json`` plus a lock that keeps a second watcher out.

        store = StateStore('/var/lib/scheduled-events')
        store.lock(); store.load(vm_name='web_0')
        store.events['C7061BAC-...'].approval = 'approved'; store.save()
    """

    def __init__(self, directory, *, wall=time.time):
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, STATE_FILE)
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
            holder = handle.read().strip() or 'another process'
            handle.close()
            raise StateLockedError(f'another watcher (pid {holder}) is using the state directory '
                                   f'{self.directory}') from None
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
        """Read the file. Steps cut off by a crash become ``interrupted``; another VM's state is set aside."""
        try:
            with open(self.path, encoding='utf-8') as handle:
                data = json.load(handle)
            if not isinstance(data, dict) or data.get('version') != STATE_VERSION:
                raise ValueError(f'unknown state version {data.get("version") if isinstance(data, dict) else data!r}')
            events = {key: EventRecord.from_dict(value) for key, value in data['events'].items()}
            saved_vm = data.get('vm_name')
        except FileNotFoundError:
            self.events, self.vm_name = {}, vm_name
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as ex:
            self._set_aside(f'cannot be read ({type(ex).__name__}: {ex})')
            self.events, self.vm_name = {}, vm_name
            return
        if saved_vm != vm_name:
            self._set_aside(f'belongs to VM {saved_vm!r}, not {vm_name!r}')
            self.events, self.vm_name = {}, vm_name
            return
        self.events, self.vm_name = events, vm_name
        for record in events.values():
            for transition in record.transitions:
                for name, status in transition.steps.items():
                    if status == BEGUN:
                        transition.steps[name] = INTERRUPTED
                        logger.warning('Step %s of %s was cut off by a restart; it is not run again.', name,
                                       transition.key)

    def save(self):
        """Write the whole state atomically."""
        self.prune()
        data = {'version': STATE_VERSION, 'vm_name': self.vm_name,
                'events': {key: asdict(record) for key, record in self.events.items()}}
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix='.state-', suffix='.tmp', dir=self.directory)
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                json.dump(data, handle, separators=(',', ':'))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def prune(self):
        """Forget finished events after the retention period."""
        horizon = self._wall() - COMPLETED_RETENTION_IN_SECONDS
        for key in [k for k, r in self.events.items() if r.completed_at is not None and r.completed_at < horizon]:
            del self.events[key]

    def _set_aside(self, reason):
        target = f'{self.path}.corrupt-{int(self._wall())}'
        try:
            os.replace(self.path, target)
        except OSError as ex:
            logger.error('State file %s %s, and could not be moved aside: %s', self.path, reason, ex)
            return
        logger.error('State file %s %s: moved to %s, starting afresh.', self.path, reason, target)
