# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""core/state.py: one atomically written file per event, the lock, meta.json, and recovery from crashes."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from azext_scheduledevents.core.atomicfile import write_atomic
from azext_scheduledevents.core.errors import InvalidEventIdError
from azext_scheduledevents.core.state import EventRecord, StateLockedError, StateStore, TransitionRecord

from .conftest import python_child_env

ID_A = 'C7061BAC-AFDC-4513-B24B-AA5F13A16123'
ID_B = '0B0A8E6C-2E1A-4C55-9C3B-1B7C2F5E8D41'
NOW = 1_800_000_000.0
WEEK = 7 * 24 * 3600
SNAPSHOT = {'EventId': ID_A, 'EventType': 'Reboot', 'EventStatus': 'Scheduled', 'Resources': ['web_0']}


def record(event_id=ID_A, **kwargs):
    kwargs.setdefault('snapshot', dict(SNAPSHOT, EventId=event_id))
    kwargs.setdefault('first_seen', NOW - 60)
    return EventRecord(event_id=event_id, **kwargs)


def transition(event_id=ID_A, kind='scheduled', **kwargs):
    kwargs.setdefault('event', dict(SNAPSHOT, EventId=event_id))
    kwargs.setdefault('detected_at', NOW - 60)
    return TransitionRecord(key=f'{event_id}/{kind}', kind=kind, **kwargs)


def loaded(directory, vm_name='web_0', wall=lambda: NOW):
    store = StateStore(directory, wall=wall)
    store.load(vm_name=vm_name)
    return store


def event_file(directory, event_id=ID_A):
    return directory / 'events' / f'{event_id}.json'


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


# Files and round trips ---------------------------------------------------------------------------------

def test_a_saved_record_loads_back_equal(tmp_path):
    saved = record(ignored='not for this VM', missing_polls=2, completed_at=NOW - 5, transitions=[
        transition(emitted=True, steps={'command:0:drain': 'ok', 'command:1:notify': 'failed'}, done=True),
        transition(kind='started', steps={'command:0:log': 'timeout'})])
    store = loaded(tmp_path)
    store.save(saved)
    assert loaded(tmp_path).events == {ID_A: saved}


def test_one_file_per_event_named_by_its_id(tmp_path):
    store = loaded(tmp_path)
    store.save(record(ID_A))
    store.save(record(ID_B))
    assert listing(tmp_path / 'events') == sorted([f'{ID_A}.json', f'{ID_B}.json'])
    assert json.loads(event_file(tmp_path, ID_B).read_text())['event_id'] == ID_B


def test_a_lowercase_event_id_is_stored_under_its_uppercase_name(tmp_path):
    loaded(tmp_path).save(record(ID_A.lower()))
    assert listing(tmp_path / 'events') == [f'{ID_A}.json']


def test_saving_again_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    store = loaded(tmp_path)
    store.save(record(missing_polls=1))
    store.save(record(missing_polls=2))
    assert listing(tmp_path / 'events') == [f'{ID_A}.json']
    assert json.loads(event_file(tmp_path).read_text())['missing_polls'] == 2


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(tmp_path):
    store = loaded(tmp_path)
    store.save(record(missing_polls=1))
    before = event_file(tmp_path).read_bytes()
    with pytest.raises(TypeError):
        write_atomic(str(event_file(tmp_path)), 'text, not bytes')
    assert event_file(tmp_path).read_bytes() == before
    assert listing(tmp_path / 'events') == [f'{ID_A}.json']


def test_state_is_private_to_its_owner(tmp_path):
    directory = tmp_path / 'state'
    store = StateStore(directory)
    store.lock()
    try:
        store.load(vm_name='web_0')
        store.save(record())
    finally:
        store.unlock()
    for path in (directory, directory / 'events'):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(event_file(directory).stat().st_mode) & 0o077 == 0


def test_record_helpers():
    done, pending = transition(kind='scheduled', done=True), transition(kind='started')
    rec = record(transitions=[done, pending])
    assert rec.has_transition(f'{ID_A}/started') and not rec.has_transition(f'{ID_A}/completed')
    assert rec.pending() == [pending]


# meta.json and another VM's state ------------------------------------------------------------------

def test_load_writes_meta(tmp_path):
    loaded(tmp_path, vm_name='web_3')
    assert json.loads((tmp_path / 'meta.json').read_text()) == {'version': 1, 'vm_name': 'web_3'}


def test_the_same_vm_keeps_its_events(tmp_path):
    loaded(tmp_path, vm_name='web_3').save(record())
    assert list(loaded(tmp_path, vm_name='web_3').events) == [ID_A]


def test_state_of_another_vm_is_set_aside_not_loaded(tmp_path):
    loaded(tmp_path, vm_name='web_0', wall=lambda: NOW).save(record())
    store = loaded(tmp_path, vm_name='web_9', wall=lambda: NOW + 10)
    assert store.events == {}
    aside = tmp_path / f'events.corrupt-{int(NOW + 10)}'
    assert listing(aside) == [f'{ID_A}.json']
    assert json.loads((tmp_path / 'meta.json').read_text())['vm_name'] == 'web_9'
    assert loaded(tmp_path, vm_name='web_9', wall=lambda: NOW + 20).events == {}


@pytest.mark.parametrize('meta', [
    b'{"version": 1, "vm_na', b'', b'[]', b'null', b'{"version": 1}', b'\xff\xfe{}',
], ids=['truncated', 'empty', 'list', 'null', 'no-vm-name', 'not-utf8'])
def test_an_unreadable_meta_sets_the_meta_and_the_events_aside(tmp_path, meta):
    loaded(tmp_path).save(record())
    (tmp_path / 'meta.json').write_bytes(meta)
    store = loaded(tmp_path, wall=lambda: NOW + 1)
    assert store.events == {}
    assert (tmp_path / f'meta.json.corrupt-{int(NOW + 1)}').read_bytes() == meta
    assert listing(tmp_path / f'events.corrupt-{int(NOW + 1)}') == [f'{ID_A}.json']
    assert json.loads((tmp_path / 'meta.json').read_text()) == {'version': 1, 'vm_name': 'web_0'}


def test_state_of_another_vm_is_set_aside_even_twice_in_one_second(tmp_path):
    loaded(tmp_path, vm_name='web_0').save(record(ID_A))
    loaded(tmp_path, vm_name='web_9').save(record(ID_B))
    assert list(loaded(tmp_path, vm_name='web_0').events) == []


def test_state_of_another_format_version_is_set_aside(tmp_path):
    loaded(tmp_path).save(record())
    (tmp_path / 'meta.json').write_text(json.dumps({'version': 99, 'vm_name': 'web_0'}))
    assert loaded(tmp_path).events == {}
    assert list(tmp_path.glob('events.corrupt-*'))


# Unreadable event files ------------------------------------------------------------------------------

GOOD = {'event_id': ID_A, 'snapshot': SNAPSHOT, 'first_seen': NOW}
GOOD_TRANSITION = {'key': f'{ID_A}/scheduled', 'kind': 'scheduled', 'event': SNAPSHOT, 'detected_at': NOW}


@pytest.mark.parametrize('content', [
    b'{"event_id": "C7061BAC-AFDC-4513-B24B-AA5F13A16123", "snap',
    b'',
    b'\xff\xfe\x00garbage',
    b'[]',
    b'"a string"',
    json.dumps({'event_id': ID_A}).encode(),
    json.dumps(dict(GOOD, surprise=1)).encode(),
    json.dumps(dict(GOOD, transitions=[{'key': 'k'}])).encode(),
    json.dumps(dict(GOOD, transitions=[dict(GOOD_TRANSITION, surprise=1)])).encode(),
], ids=['truncated', 'empty', 'not-utf8', 'list', 'string', 'missing-fields', 'unknown-field',
        'transition-missing-fields', 'transition-unknown-field'])
def test_an_unreadable_event_file_is_moved_aside_and_the_others_load(tmp_path, content, caplog):
    store = loaded(tmp_path)
    store.save(record(ID_B))
    event_file(tmp_path).write_bytes(content)
    store = loaded(tmp_path, wall=lambda: NOW + 7)
    assert list(store.events) == [ID_B]
    assert (tmp_path / 'events' / f'{ID_A}.json.corrupt-{int(NOW + 7)}').read_bytes() == content
    assert not event_file(tmp_path).exists()
    assert 'moved to' in caplog.text
    assert list(loaded(tmp_path, wall=lambda: NOW + 8).events) == [ID_B]      # set aside once, not read again


@pytest.mark.parametrize('steps', [None, ['command:0:x']], ids=['null', 'list'])
def test_an_event_file_whose_steps_are_not_an_object_is_moved_aside(tmp_path, steps):
    (tmp_path / 'events').mkdir()
    event_file(tmp_path).write_text(json.dumps(dict(GOOD, transitions=[dict(GOOD_TRANSITION, steps=steps)])))
    assert loaded(tmp_path).events == {}
    assert list((tmp_path / 'events').glob('*.corrupt-*'))


# Crashes ------------------------------------------------------------------------------------------------

def test_begun_steps_become_interrupted_and_other_statuses_stay(tmp_path):
    steps = {'command:0:a': 'begun', 'command:1:b': 'ok', 'command:2:c': 'failed', 'command:3:d': 'timeout',
             'command:4:e': 'interrupted'}
    loaded(tmp_path).save(record(transitions=[transition(steps=dict(steps)),
                                              transition(kind='started', steps={'command:0:x': 'begun'})]))
    store = loaded(tmp_path)
    first, second = store.events[ID_A].transitions
    assert first.steps == dict(steps, **{'command:0:a': 'interrupted'})
    assert second.steps == {'command:0:x': 'interrupted'}
    # Never begun again: a second start (before or after the record is saved) sees it interrupted.
    assert loaded(tmp_path).events[ID_A].transitions[1].steps == {'command:0:x': 'interrupted'}
    store.save(store.events[ID_A])
    on_disk = json.loads(event_file(tmp_path).read_text())
    assert [t['steps'] for t in on_disk['transitions']][1] == {'command:0:x': 'interrupted'}


def test_temp_files_left_by_a_crash_are_removed_and_the_old_file_is_kept(tmp_path):
    store = loaded(tmp_path)
    store.save(record(missing_polls=3))
    (tmp_path / 'events' / '.tmp-k1ll3d.tmp').write_text('{"event_id": "C7061BAC-AFDC-4513-B24B-AA5F13A16123", "sn')
    (tmp_path / 'events' / '.tmp-other.json').write_text('{}')
    store = loaded(tmp_path)
    assert store.events[ID_A].missing_polls == 3
    assert listing(tmp_path / 'events') == [f'{ID_A}.json']


WRITER = textwrap.dedent('''
    import itertools, sys
    from azext_scheduledevents.core.state import EventRecord, StateStore
    store = StateStore(sys.argv[1])
    store.lock()
    store.load(vm_name='web_0')
    for i in itertools.count():
        pad = 'x' * (i * 7919 % 1000000)
        store.save(EventRecord(event_id=sys.argv[2], snapshot={'round': int(sys.argv[3]), 'n': i, 'pad': pad},
                               first_seen=1.0))
        if i == 0:
            print('ready', flush=True)
''')


def test_a_watcher_killed_while_writing_leaves_a_whole_file_and_a_free_lock(tmp_path):
    directory = tmp_path / 'state'
    for round_ in range(4):
        with subprocess.Popen([sys.executable, '-c', WRITER, str(directory), ID_A, str(round_)],
                              env=python_child_env(), stdout=subprocess.PIPE, text=True) as child:
            try:
                assert child.stdout.readline().strip() == 'ready'
                with pytest.raises(StateLockedError, match=f'pid {child.pid}'):
                    StateStore(directory).lock()
                # Let it write a while, then kill it as the OOM killer would: no cleanup runs.
                time.sleep(0.1 + 0.05 * round_)
            finally:
                child.send_signal(signal.SIGKILL)
            child.wait()
        store = StateStore(directory)
        store.lock()
        try:
            store.load(vm_name='web_0')
        finally:
            store.unlock()
        snapshot = store.events[ID_A].snapshot
        assert snapshot['round'] == round_ and snapshot['n'] > 0
        assert len(snapshot['pad']) == snapshot['n'] * 7919 % 1000000
        assert listing(directory / 'events') == [f'{ID_A}.json']        # nothing set aside, no temp file left


# The lock ---------------------------------------------------------------------------------------------------

def test_the_lock_keeps_a_second_watcher_out_and_names_the_holder(tmp_path):
    first = StateStore(tmp_path / 'state')
    first.lock()
    try:
        assert (tmp_path / 'state' / 'watch.lock').read_text() == str(os.getpid())
        with pytest.raises(StateLockedError, match=f'pid {os.getpid()}') as raised:
            StateStore(tmp_path / 'state').lock()
        assert str(tmp_path / 'state') in str(raised.value)
    finally:
        first.unlock()
    second = StateStore(tmp_path / 'state')
    second.lock()
    second.unlock()


def test_unlock_without_lock_is_harmless(tmp_path):
    store = StateStore(tmp_path)
    store.unlock()
    store.lock()
    store.unlock()
    store.unlock()
    StateStore(tmp_path).lock()


# Retention and forgetting --------------------------------------------------------------------------------

def test_prune_forgets_finished_events_after_a_week(tmp_path):
    old, recent, open_ = ID_A, ID_B, '11111111-2222-3333-4444-555555555555'
    store = loaded(tmp_path)
    store.save(record(old, completed_at=NOW - WEEK - 1))
    store.save(record(recent, completed_at=NOW - WEEK + 60))
    store.save(record(open_, first_seen=NOW - 10 * WEEK))
    store = loaded(tmp_path)                                            # load prunes
    assert sorted(store.events) == sorted([recent, open_])
    assert listing(tmp_path / 'events') == sorted([f'{recent}.json', f'{open_}.json'])
    now = [NOW]
    store = StateStore(tmp_path, wall=lambda: now[0])
    store.load(vm_name='web_0')
    now[0] = NOW + 120
    store.prune()
    assert list(store.events) == [open_]
    assert listing(tmp_path / 'events') == [f'{open_}.json']


def test_forget_drops_memory_and_disk(tmp_path):
    store = loaded(tmp_path)
    store.save(record(ID_A))
    store.save(record(ID_B))
    store = loaded(tmp_path)
    assert sorted(store.events) == sorted([ID_A, ID_B])
    store.forget(ID_A)
    assert list(store.events) == [ID_B]
    assert listing(tmp_path / 'events') == [f'{ID_B}.json']
    store.forget(ID_A)                                                  # twice: nothing left to do
    assert list(loaded(tmp_path).events) == [ID_B]


# Writers: one per file, never under the lock ------------------------------------------------------------------

class SlowDisk:
    """Stands in for ``write_atomic`` in the store: each write takes a while, and notes whether the store's lock
    was free meanwhile (another thread could take it) and how many writes of one file overlapped."""

    def __init__(self, seconds=0.02):
        self.store, self.seconds = None, seconds
        self.lock_was_held = False
        self.busy, self.most_at_once = {}, 0
        self.guard = threading.Lock()

    def __call__(self, path, data):
        with self.guard:
            self.busy[path] = self.busy.get(path, 0) + 1
            self.most_at_once = max(self.most_at_once, self.busy[path])
        probe = threading.Thread(target=self._probe)
        probe.start()
        time.sleep(self.seconds)
        probe.join()
        write_atomic(path, data)
        with self.guard:
            self.busy[path] -= 1

    def _probe(self):
        if self.store._lock.acquire(timeout=1):  # pylint: disable=protected-access
            self.store._lock.release()  # pylint: disable=protected-access
        else:
            self.lock_was_held = True


def on_disk(directory, disk):
    store = StateStore(directory, wall=lambda: NOW, write=disk)
    store.load(vm_name='web_0')
    disk.store = store
    return store


def test_concurrent_changes_are_written_one_at_a_time_outside_the_lock_and_the_last_one_wins(tmp_path):
    disk = SlowDisk()
    store = on_disk(tmp_path, disk)
    kept = record()
    store.events[ID_A] = kept
    threads = [threading.Thread(target=store.update, args=(kept, setattr, kept, 'missing_polls', n))
               for n in range(1, 13)]
    for thread in threads:
        thread.start()
        time.sleep(0.003)
    for thread in threads:
        thread.join()
    assert not disk.lock_was_held
    assert disk.most_at_once == 1
    assert json.loads(event_file(tmp_path).read_text())['missing_polls'] == kept.missing_polls


def test_an_event_forgotten_while_its_file_is_written_does_not_come_back(tmp_path):
    store = on_disk(tmp_path, SlowDisk(seconds=0.2))
    kept = record()
    store.events[ID_A] = kept
    writer = threading.Thread(target=store.update, args=(kept, setattr, kept, 'missing_polls', 1))
    writer.start()
    time.sleep(0.05)
    store.forget(ID_A)
    writer.join()
    assert listing(tmp_path / 'events') == []


def test_a_failed_write_is_taken_up_by_the_next_writer(tmp_path):
    failures = [OSError(28, 'No space left on device')]

    def full_once(path, data):
        if failures:
            raise failures.pop()
        write_atomic(path, data)

    store = on_disk(tmp_path, full_once)
    kept = record()
    store.events[ID_A] = kept
    with pytest.raises(OSError):
        store.update(kept, setattr, kept, 'missing_polls', 1)
    store.update(kept, setattr, kept, 'missing_polls', 2)
    assert json.loads(event_file(tmp_path).read_text())['missing_polls'] == 2


# Event ids never become arbitrary paths -----------------------------------------------------------------------

BAD_IDS = ['../../escaped', '/etc/passwd', f'{ID_A}/../../x', f'{ID_A}\n', f' {ID_A}', f'{{{ID_A}}}', '', 'meta',
           None, 42]
BAD_ID_NAMES = ['dotdot', 'absolute', 'guid-then-dotdot', 'newline', 'space', 'braces', 'empty', 'word', 'none', 'int']


@pytest.mark.parametrize('event_id', BAD_IDS, ids=BAD_ID_NAMES)
def test_save_refuses_an_id_that_is_not_a_guid(tmp_path, event_id):
    store = loaded(tmp_path / 'state')
    with pytest.raises(InvalidEventIdError):
        store.save(record(event_id))
    assert listing(tmp_path) == ['state']
    assert listing(tmp_path / 'state') == ['meta.json']


@pytest.mark.parametrize('event_id', ['../meta', '../../victim'], ids=['meta', 'outside'])
def test_forget_refuses_an_id_that_is_not_a_guid(tmp_path, event_id):
    victim = tmp_path / 'victim.json'
    victim.write_text('keep me')
    store = loaded(tmp_path / 'state')
    with pytest.raises(InvalidEventIdError):
        store.forget(event_id)
    assert victim.read_text() == 'keep me' and (tmp_path / 'state' / 'meta.json').exists()
