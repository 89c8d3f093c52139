# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""`az scheduled-events watch` end to end: the real az, the emulator, real handlers, real signals."""

import json
import os
import shutil
import signal
import subprocess

import pytest

from .conftest import wait_until
from .test_handlers import Receiver
from .watching import Recorder, read_state

ENDPOINT = 'AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT'


def watch_args(recorder, *extra, kinds=('scheduled', 'started', 'completed'), sleep=0.0):
    args = ['scheduled-events', 'watch', '--interval', '0.1', '--only-show-errors', *extra]
    for kind in kinds:
        args += [f'--on-{kind}', recorder.command(kind, sleep=sleep)]
    return args


def test_watch_prints_json_lines_and_approves(az, emulator, tmp_path):
    recorder = Recorder.create(tmp_path)
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'notice': 60, 'runs_for': 0.5}])
    proc = az.popen(*watch_args(recorder, '--approve', 'after-handlers', '--state-dir', str(tmp_path / 'state')),
                    **{ENDPOINT: emulator.url})
    try:
        wait_until(lambda: len(recorder.runs('end')) == 3)
    finally:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line['transition'] for line in lines] == ['scheduled', 'approved', 'started', 'completed']
    assert {line['EventId'] for line in lines} == {event_id}


def test_watch_once_and_text_lines(az, emulator, tmp_path):
    emulator.add_events([{'EventType': 'Preempt'}])
    result = az.run('scheduled-events', 'watch', '--once', '-o', 'table', '--only-show-errors',
                    '--state-dir', str(tmp_path / 'state'), **{ENDPOINT: emulator.url})
    assert result.returncode == 0, result
    line, = result.stdout.splitlines()
    assert line.split()[1:3] == ['scheduled', 'Preempt'] and '(in ' in line


def test_watch_once_with_imds_down_fails_cleanly(az, tmp_path):
    result = az.run('scheduled-events', 'watch', '--once', '--only-show-errors', '--state-dir',
                    str(tmp_path / 'state'), **{ENDPOINT: 'http://127.0.0.1:9'})
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert result.stderr.startswith('ERROR: IMDS is not reachable at http://127.0.0.1:9')


def test_sigterm_lets_the_running_handler_finish_and_starts_no_other(az, emulator, tmp_path):
    recorder = Recorder.create(tmp_path)
    emulator.add_events([{'EventType': 'Reboot', 'notice': 60}])
    state = tmp_path / 'state'
    args = ['scheduled-events', 'watch', '--interval', '0.1', '--only-show-errors', '--state-dir', str(state),
            '--on-scheduled', recorder.command('first', sleep=2), '--on-scheduled', recorder.command('second')]
    proc = az.popen(*args, **{ENDPOINT: emulator.url})
    wait_until(lambda: recorder.runs())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert [run['argv'][0] for run in recorder.runs('start')] == ['first']
    assert len(recorder.runs('end')) == 1                 # it finished before the watcher exited
    transition, = next(iter(read_state(state)['events'].values()))['transitions']
    assert transition['steps'] == {'command:0:env': 'ok'} and not transition['done']
    # The next start picks up where it stopped: the second command runs, the first does not run again.
    proc = az.popen(*args, **{ENDPOINT: emulator.url})
    try:
        wait_until(lambda: len(recorder.runs('end')) == 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert [run['argv'][0] for run in recorder.runs('start')] == ['first', 'second']


@pytest.mark.parametrize('verbosity', ['--verbose', '--debug'])
def test_webhook_and_event_grid_through_az_without_secrets_in_logs(az, emulator, tmp_path, verbosity):
    hook, grid = Receiver(), Receiver()
    try:
        emulator.add_events([{'EventType': 'Freeze'}])
        result = az.run('scheduled-events', 'watch', '--once', verbosity, '--state-dir', str(tmp_path / 'state'),
                        '--webhook', hook.url + '/hook?code=HOOKSECRET', '--event-grid-topic', grid.url + '/api/events',
                        SCHEDULED_EVENTS_EVENT_GRID_KEY='GRIDSECRET', **{ENDPOINT: emulator.url})
        assert result.returncode == 0, result
        assert hook.requests[0]['body']['specversion'] == '1.0'
        assert grid.requests[0]['headers']['aeg-sas-key'] == 'GRIDSECRET'
        assert 'GRIDSECRET' not in result.stderr + result.stdout
        if verbosity == '--verbose':
            # With --debug az itself echoes its command line, and so the webhook URL's query.
            assert 'HOOKSECRET' not in result.stderr + result.stdout
            assert f'Notifying webhook at {hook.url}/hook' in result.stderr
    finally:
        hook.close()
        grid.close()


@pytest.mark.parametrize('args, message', [
    (('--on-scheduled', '/no/such/drain'), 'not found'),
    (('--interval', '0'), '--interval'),
    (('--event-grid-topic', 'https://t.example/api/events'), 'SCHEDULED_EVENTS_EVENT_GRID_KEY'),
    (('--webhook', 'ftp://x'), '--webhook'),
    (('--approve', 'sometimes'), 'sometimes'),
    (('--approve', 'after-handlers', '--approver', 'all'), '--approver all needs --coordination-url'),
    (('--approver', 'all', '--coordination-url', 'https://a.blob.core.windows.net/c'),
     'goes with --approve after-handlers'),
    (('--wait-for-all-timeout', '30'), '--wait-for-all-timeout goes with --approver all'),
    (('--approve', 'after-handlers', '--approver', 'all', '--coordination-url', 'https://a.blob.core.windows.net/c',
      '--coordination-sas-env', 'NO_SUCH_SAS_VARIABLE'), 'NO_SUCH_SAS_VARIABLE'),
    (('--blob-url', 'http://a.blob.core.windows.net/c'), 'https only'),
    (('--blob-sas-env', 'SAS'), '--blob-sas-env goes with --blob-url'),
], ids=['missing-handler', 'interval', 'grid-key', 'webhook-scheme', 'approve-mode', 'all-without-container',
        'all-without-after-handlers', 'timeout-without-all', 'sas-missing', 'identity-over-http', 'sas-without-url'])
def test_watch_refuses_bad_input(az, emulator, tmp_path, args, message):
    result = az.run('scheduled-events', 'watch', '--once', '--only-show-errors', '--state-dir',
                    str(tmp_path / 'state'), *args, **{ENDPOINT: emulator.url})
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert message in result.stderr
    assert emulator.requests() == []


def test_second_watcher_on_the_same_state_is_refused(az, emulator, tmp_path):
    state = str(tmp_path / 'state')
    first = az.popen('scheduled-events', 'watch', '--state-dir', state, '--only-show-errors',
                     **{ENDPOINT: emulator.url})
    try:
        wait_until(lambda: (tmp_path / 'state' / 'meta.json').exists())
        second = az.run('scheduled-events', 'watch', '--once', '--state-dir', state, '--only-show-errors',
                        **{ENDPOINT: emulator.url})
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    assert second.returncode != 0 and 'another watcher' in second.stderr


def test_systemd_unit_of_a_group_member_carries_the_options_and_no_secret(az):
    result = az.run('scheduled-events', 'watch', '--on-scheduled', 'true', '--approve', 'after-handlers',
                    '--approver', 'all', '--coordination-url', 'https://acct.blob.core.windows.net/group',
                    '--coordination-sas-env', 'GROUP_SAS', '--wait-for-all-timeout', '120', '--print-systemd-unit',
                    GROUP_SAS='sv=2023-11-03&sig=TOPSECRET')
    assert result.returncode == 0, result
    exec_start = next(line for line in result.stdout.splitlines() if line.startswith('ExecStart='))
    assert ('--approver all --coordination-url https://acct.blob.core.windows.net/group --coordination-sas-env '
            'GROUP_SAS --wait-for-all-timeout 120') in exec_start
    assert 'TOPSECRET' not in result.stdout + result.stderr


def test_systemd_unit_verifies(az, tmp_path):
    if not shutil.which('systemd-analyze'):
        if os.environ.get('CI'):
            pytest.fail('systemd-analyze is not installed (scripts/bootstrap installs it as root)')
        pytest.skip('systemd-analyze is not installed')
    result = az.run('scheduled-events', 'watch', '--on-scheduled', '/bin/true --grace "20 s"', '--approve',
                    'after-handlers', '--approve-types', 'Freeze', 'Reboot', '--on-completed', 'true',
                    '--print-systemd-unit')
    assert result.returncode == 0, result
    unit = result.stdout
    assert 'Restart=always' in unit and 'KillMode=mixed' in unit and 'OnCalendar' not in unit
    exec_start = next(line for line in unit.splitlines() if line.startswith('ExecStart='))
    assert '"/bin/true --grace \'20 s\'"' in exec_start          # as shlex quotes it
    assert f'--on-completed {shutil.which("true")} ' in exec_start   # a service's PATH is not the shell's
    assert '--approve-types Freeze Reboot' in exec_start and '--state-dir /var/lib/scheduled-events' in exec_start
    path = tmp_path / 'scheduled-events-watch.service'
    path.write_text(unit)
    verify = subprocess.run(['systemd-analyze', 'verify', str(path)], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
    assert path.name not in verify.stderr, verify.stderr


def test_a_reader_that_never_reads_stdout_does_not_stall_the_watcher(az, emulator, tmp_path):
    recorder = Recorder.create(tmp_path)
    # No deadline margin: a notice shorter than it would leave each Scheduled handler 1 s, tight on a busy machine.
    proc = az.popen(*watch_args(recorder, '--state-dir', str(tmp_path / 'state'), '--deadline-margin', '0'),
                    **{ENDPOINT: emulator.url})
    try:
        # Events only once the watcher polls: on a loaded machine az can take longer to start than a notice.
        wait_until(lambda: emulator.requests(), timeout=60)
        # 60 events x 3 transitions of ~500-byte lines: more than a pipe's 64 KiB buffer.
        ids = emulator.add_events([{'EventType': 'Freeze', 'at': i * 0.1, 'notice': 6, 'runs_for': 1.0,
                                    'Description': 'x' * 200} for i in range(60)])
        wait_until(lambda: len(recorder.runs('end')) >= 3 * len(ids), timeout=150)
        assert len(recorder.runs('end')) == 3 * len(ids)
    finally:
        proc.kill()
        proc.communicate()
