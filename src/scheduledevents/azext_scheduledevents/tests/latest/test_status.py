# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``<state dir>/status.json``: what a real watcher says of itself, when and how it writes it."""

import json
import os
import threading
import time
from collections import Counter
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from azext_scheduledevents.core import status
from azext_scheduledevents.core.approval import ApprovalPolicy
from azext_scheduledevents.core.atomicfile import is_temp_file, write_atomic
from azext_scheduledevents.core.watchstats import EventsView, WatchStats
from azext_scheduledevents.version import VERSION

from .conftest import wait_until
from .test_watch import crashed_mid_handler
from .watching import Recorder, WatcherThread

FIELDS = {'version', 'started', 'last_poll', 'last_poll_result', 'imds_failures_in_a_row', 'events_pending',
          'events_pending_ids', 'steps_not_ok', 'last_approval_event', 'last_approval_time', 'last_approval_state'}


def read_status(state_dir):
    try:
        return json.loads((state_dir / status.STATUS_FILE).read_text())
    except FileNotFoundError:
        return {}


def polls(emulator):
    return len([r for r in emulator.requests() if r['method'] == 'GET' and r['path'] == '/metadata/scheduledevents'])


def moment(text):
    return datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp()


class CountingDisk:
    """Stands in for ``write_atomic``: writes for real, counts each path, and can be slow or full."""

    def __init__(self, *, seconds=0.0, error=None):
        self.writes = Counter()
        self._seconds, self._error = seconds, error

    def __call__(self, path, data, **modes):
        time.sleep(self._seconds)
        if self._error:
            raise self._error
        write_atomic(path, data, **modes)
        self.writes[os.path.basename(path)] += 1


def test_before_any_poll_nothing_is_claimed():
    document = json.loads(status.render(WatchStats(wall=lambda: 0.0).snapshot(EventsView())))
    assert set(document) == FIELDS
    assert document['started'] == '1970-01-01T00:00:00Z' and document['version'] == VERSION
    assert (document['last_poll'], document['last_poll_result'], document['last_approval_state']) == (None, None, None)


def test_the_status_file_says_how_the_watcher_is_doing(emulator, tmp_path):
    recorder = Recorder.create(tmp_path)
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'notice': 60, 'runs_for': 60}])
    state = tmp_path / 'state'
    began = time.time()
    with WatcherThread(emulator.url, state, policy=ApprovalPolicy(mode='after-handlers'),
                       commands={'scheduled': [recorder.handler('drain')],
                                 'started': [recorder.handler('log', exit_code=3)]}):
        wait_until(lambda: read_status(state).get('steps_not_ok'))
    document = read_status(state)
    assert set(document) == FIELDS and document['version'] == VERSION
    assert int(began) <= moment(document['started']) <= moment(document['last_poll']) <= time.time()
    assert (document['last_poll_result'], document['imds_failures_in_a_row']) == ('ok', 0)
    assert (document['events_pending'], document['events_pending_ids']) == (1, [event_id])
    assert document['steps_not_ok'] == [{'event': event_id, 'transition': 'started', 'step': 'command:0:env',
                                         'status': 'failed'}]
    assert (document['last_approval_event'], document['last_approval_state']) == (event_id, 'approved')
    assert int(began) <= moment(document['last_approval_time']) <= time.time()


def test_imds_failures_in_a_row_and_the_last_error_until_imds_answers_again(emulator, tmp_path):
    state = tmp_path / 'state'
    with WatcherThread(emulator.url, state):
        wait_until(lambda: read_status(state).get('last_poll_result') == 'ok')
        emulator.add_fault({'kind': 'garbage', 'count': None, 'path': 'scheduledevents', 'method': 'GET'})
        wait_until(lambda: read_status(state).get('imds_failures_in_a_row', 0) >= 3)
        failing = read_status(state)
        emulator.clear_faults()
        wait_until(lambda: read_status(state).get('imds_failures_in_a_row') == 0)
    assert 'is not JSON' in failing['last_poll_result'] and '\n' not in failing['last_poll_result']
    assert read_status(state)['last_poll_result'] == 'ok'


def test_a_step_cut_off_by_a_crash_too_late_is_listed(emulator, tmp_path):
    state = tmp_path / 'state'
    event_id = crashed_mid_handler(emulator, state, notice=0.5)
    time.sleep(1.0)                                     # NotBefore passes while no watcher runs
    with WatcherThread(emulator.url, state, commands={'scheduled': [Recorder.create(tmp_path).handler('drain')]}):
        wait_until(lambda: read_status(state).get('steps_not_ok'))
    assert read_status(state)['steps_not_ok'] == [{'event': event_id, 'transition': 'scheduled',
                                                   'step': 'command:0:env', 'status': 'late'}]


def test_written_at_most_once_per_poll_and_never_seen_half_written(emulator, tmp_path):
    emulator.add_events([{'EventType': 'Freeze', 'notice': 60}])
    state, metrics = tmp_path / 'state', tmp_path / 'textfile' / 'scheduled-events.prom'
    disk, torn, reads = CountingDisk(), [], Counter()
    done = threading.Event()

    def read_while_written():
        # A reader sees the old file or the new one, never a mix, whenever it looks.
        while not done.is_set():
            for path, parse in ((state / status.STATUS_FILE, json.loads),
                                (metrics, lambda text: list(text_string_to_metric_families(text)))):
                try:
                    text = path.read_text()
                except FileNotFoundError:
                    continue
                try:
                    parse(text)
                    reads[path.name] += 1
                except ValueError as ex:
                    torn.append((path.name, ex))
    reader = threading.Thread(target=read_while_written, daemon=True)
    reader.start()
    with WatcherThread(emulator.url, state, metrics_file=metrics, report_write=disk):
        wait_until(lambda: polls(emulator) >= 20)
    done.set()
    reader.join()
    assert torn == [] and reads[status.STATUS_FILE] > 0 and reads[metrics.name] > 0
    assert 0 < disk.writes[status.STATUS_FILE] <= polls(emulator)
    assert disk.writes[metrics.name] == disk.writes[status.STATUS_FILE]          # both from one snapshot
    assert not [name for name in os.listdir(state) + os.listdir(metrics.parent) if is_temp_file(name)]


def test_once_writes_each_file_once_after_the_work(emulator, tmp_path):
    recorder = Recorder.create(tmp_path)
    emulator.add_events([{'EventType': 'Freeze', 'notice': 60}])
    disk = CountingDisk()
    with WatcherThread(emulator.url, tmp_path / 'state', once=True, metrics_file=tmp_path / 'se.prom',
                       report_write=disk, commands={'scheduled': [recorder.handler('drain', sleep=0.3)]}) as watcher:
        watcher.wait_for(lambda: watcher.result is not None)
    assert disk.writes == {status.STATUS_FILE: 1, 'se.prom': 1}
    assert read_status(tmp_path / 'state')['events_pending'] == 1


def test_a_slow_disk_does_not_slow_the_polls(emulator, tmp_path):
    disk = CountingDisk(seconds=0.5)
    started = time.monotonic()
    with WatcherThread(emulator.url, tmp_path / 'state', report_write=disk):
        wait_until(lambda: polls(emulator) >= 15, timeout=10)
    assert time.monotonic() - started < 5
    # Snapshots that came while the disk was busy replaced each other rather than queue up: one 0.5 s write
    # at a time from the first poll on, and after the last poll only its own snapshot (queued ones would be
    # written on until the writer's close gives up, 5 s later).
    times = [r['time'] for r in emulator.requests() if r['path'] == '/metadata/scheduledevents']
    assert disk.writes[status.STATUS_FILE] <= (times[-1] - times[0]) / 0.5 + 2


def test_a_full_disk_is_warned_once_and_the_watcher_goes_on(emulator, tmp_path, caplog):
    disk = CountingDisk(error=OSError(28, 'No space left on device'))
    emulator.add_events([{'EventType': 'Freeze', 'notice': 60}])
    with WatcherThread(emulator.url, tmp_path / 'state', report_write=disk) as watcher:
        watcher.wait_for(lambda: watcher.transitions() == ['scheduled'])
        wait_until(lambda: polls(emulator) >= 10)
    warnings = [r for r in caplog.records if r.levelname == 'WARNING' and 'Cannot write' in r.getMessage()]
    assert len(warnings) == 1 and 'No space left' in warnings[0].getMessage()
