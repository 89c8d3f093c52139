# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The standalone agent: its zipapp, built reproducibly from core/, run with ``python -I -S`` on the oldest
and the newest Python a VM may have, against the IMDS emulator on loopback."""

import ast
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from azext_scheduledevents._format import transform_approval_table, transform_event_table
from azext_scheduledevents.agent.build import build_zipapp, carried_modules, write_zipapp
from azext_scheduledevents.agent.main import ENDPOINT_ENV, main
from azext_scheduledevents.agent.output import render_json, render_table
from azext_scheduledevents.core.imds import ImdsClient
from azext_scheduledevents.core.vmcommands import list_rows, show_row
from azext_scheduledevents.version import VERSION

from .test_handlers import Receiver
from .watching import Recorder

PYENV_VERSIONS = Path.home() / '.pyenv' / 'versions'
UNKNOWN = '00000000-0000-0000-0000-000000000000'
# What the zip must never carry: the az side, the fleet side, the tests and the emulator.
NOT_CARRIED = ('tests/', 'emulator/', '__pycache__', 'fleet', 'cycle', 'health', '/arm.py', 'runcommand', 'custom',
               '_params', '_help', '_validators', '_client_factory', '_errors', '/commands.py', 'agent/build.py',
               'agent/deploy.py', 'agent/remote.py')


def pyenv_python(minor):
    """The newest pyenv Python ``minor`` (``'3.8'``), or ``None``."""
    found = sorted(PYENV_VERSIONS.glob(f'{minor}.*/bin/python3'),
                   key=lambda path: tuple(int(part) for part in path.parents[1].name.split('.') if part.isdigit()))
    return found[-1] if found else None


@pytest.fixture
def python(request):
    path = pyenv_python(request.param)
    if path is None:
        pytest.skip(f'needs a Python {request.param} under {PYENV_VERSIONS}')
    return path


OLDEST_AND_NEWEST = pytest.mark.parametrize('python', ['3.8', '3.13'], indirect=True)
OLDEST = pytest.mark.parametrize('python', ['3.8'], indirect=True)


@pytest.fixture(scope='module')
def zipapp(tmp_path_factory):
    return write_zipapp(str(tmp_path_factory.mktemp('agent') / 'scheduled-events-agent.pyz'))


def run_agent(python, zipapp, *args, endpoint, env=None, timeout=60):
    """The agent as a VM runs it: isolated (-I), without site-packages (-S), IMDS at ``endpoint``."""
    environ = dict({'PATH': os.environ['PATH'], ENDPOINT_ENV: endpoint}, **(env or {}))
    return subprocess.run([str(python), '-I', '-S', zipapp, *args], capture_output=True, text=True, env=environ,
                          timeout=timeout, check=False)


def assert_one_line_failure(done, code, message):
    assert done.returncode == code, done
    assert 'Traceback' not in done.stderr, done.stderr
    assert done.stderr.startswith('ERROR: ') and done.stderr.count('\n') == 1, done.stderr
    assert message in done.stderr, done.stderr


def without_countdown(rows):
    return [{k: v for k, v in row.items() if k != 'SecondsUntilNotBefore'} for row in rows]


def closed_port_url():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return 'http://127.0.0.1:%d' % probe.getsockname()[1]


# The zipapp ----------------------------------------------------------------------------------------------

def test_the_same_sources_make_the_same_bytes():
    first = build_zipapp()
    assert first == build_zipapp()
    assert first.startswith(b'#!/usr/bin/env python3\n')
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {(info.date_time, info.external_attr >> 16, info.compress_type) for info in infos} == {
        ((1980, 1, 1, 0, 0, 0), 0o100644, zipfile.ZIP_DEFLATED)}


def test_the_zip_carries_the_agents_modules_and_nothing_else(zipapp):
    with zipfile.ZipFile(zipapp) as archive:
        names = archive.namelist()
        package_init = archive.read('azext_scheduledevents/__init__.py').decode()
        entry = archive.read('__main__.py').decode()
    assert all(name.endswith('.py') for name in names)
    assert [name for name in names if any(part in name for part in NOT_CARRIED)] == []
    assert {'azext_scheduledevents/core/daemon.py', 'azext_scheduledevents/core/watchoptions.py',
            'azext_scheduledevents/core/vmcommands.py', 'azext_scheduledevents/version.py'} <= set(names)
    assert 'azure' not in package_init and 'import' not in package_init
    assert 'from azext_scheduledevents.agent.main import main' in entry and 'sys.exit(main())' in entry
    assert len(names) == len(carried_modules()) + 1         # and __main__.py


def test_what_it_carries_imports_the_standard_library_alone(zipapp):
    allowed = set(sys.stdlib_module_names) | {'azext_scheduledevents'}
    foreign = {}
    with zipfile.ZipFile(zipapp) as archive:
        for name in archive.namelist():
            for node in ast.walk(ast.parse(archive.read(name))):
                tops = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                        [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
                foreign.update({top: name for top in (t.split('.')[0] for t in tops) if top not in allowed})
    # core/log.py tries knack first and falls back to the standard library's logging when it is absent.
    assert foreign == {'knack': 'azext_scheduledevents/core/log.py'}


@OLDEST_AND_NEWEST
def test_version(python, zipapp):
    done = run_agent(python, zipapp, '--version', endpoint=closed_port_url())
    assert (done.returncode, done.stdout, done.stderr) == (0, VERSION + '\n', '')


def test_main_in_process_says_its_version(capsys):
    assert main(['--version']) == 0
    assert capsys.readouterr().out == VERSION + '\n'


# list, show, approve ------------------------------------------------------------------------------------

@OLDEST_AND_NEWEST
def test_list_is_the_core_views_rows_as_az_prints_them(python, zipapp, emulator):
    from knack.output import format_json
    emulator.add_events([{'EventType': 'Reboot', 'notice': 900, 'Description': 'host update'},
                         {'EventType': 'Freeze', 'Resources': ['web_1']}])
    done = run_agent(python, zipapp, 'list', endpoint=emulator.url)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    with ImdsClient(emulator.url) as client:
        expected = list_rows(client, now=datetime.now(timezone.utc))
    assert without_countdown(rows) == without_countdown(expected)
    assert [abs(a['SecondsUntilNotBefore'] - b['SecondsUntilNotBefore']) <= 5 for a, b in zip(rows, expected)] == \
        [True, True]
    assert done.stdout == format_json(SimpleNamespace(result=rows))       # byte for byte, az -o json
    this_vm = run_agent(python, zipapp, 'list', '--this-vm', endpoint=emulator.url)
    assert [row['EventType'] for row in json.loads(this_vm.stdout)] == ['Reboot']
    document = run_agent(python, zipapp, 'list', '--document', endpoint=emulator.url)
    assert json.loads(document.stdout) == emulator.document()


@OLDEST_AND_NEWEST
def test_show_and_approve(python, zipapp, emulator):
    event_id, = emulator.add_events([{'EventType': 'Redeploy', 'notice': 600}])
    shown = run_agent(python, zipapp, 'show', '--event-id', event_id.lower(), endpoint=emulator.url)
    assert shown.returncode == 0, shown.stderr
    with ImdsClient(emulator.url) as client:
        expected = show_row(client, event_id, now=datetime.now(timezone.utc))
    assert without_countdown([json.loads(shown.stdout)]) == without_countdown([expected])
    approved = run_agent(python, zipapp, 'approve', '--event-id', event_id, endpoint=emulator.url)
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout) == [{'EventId': event_id, 'EventType': 'Redeploy', 'StatusBefore': 'Scheduled',
                                            'EventStatus': 'Started', 'ApprovalSent': True}]
    assert emulator.document()['Events'][0]['EventStatus'] == 'Started'


@OLDEST
def test_tables_are_az_s_tables(python, zipapp, emulator):
    from knack.output import _TableOutput
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'Resources': ['web_0', 'web_3']}])
    approved = run_agent(python, zipapp, 'approve', '--event-id', event_id, '-o', 'table', endpoint=emulator.url)
    listed = run_agent(python, zipapp, 'list', '-o', 'table', endpoint=emulator.url)       # Started: no countdown
    with ImdsClient(emulator.url) as client:
        rows = list_rows(client, now=datetime.now(timezone.utc))
    assert listed.stdout == _TableOutput(False).dump(transform_event_table(rows))
    assert approved.stdout.splitlines()[0].split() == ['EventId', 'Type', 'Before', 'After', 'Sent']
    assert approved.stdout.splitlines()[2].split() == [event_id, 'Reboot', 'Scheduled', 'Started', 'yes']


def test_render_table_is_knacks_table():
    from knack.output import _TableOutput
    rows = [{'EventId': 'A', 'EventType': 'Reboot', 'EventStatus': 'Scheduled', 'SecondsUntilNotBefore': 900,
             'NotBefore': 'Mon, 19 Sep 2016 18:29:47 GMT', 'AffectsThisVm': True, 'EventSource': 'Platform',
             'Resources': ['w_0', 'w_1']},
            {'EventId': 'BBBBBBBB', 'EventType': 'Freeze', 'EventStatus': 'Started', 'NotBefore': '',
             'SecondsUntilNotBefore': None, 'AffectsThisVm': None, 'Resources': []}]
    approvals = [{'EventId': 'A', 'EventType': None, 'StatusBefore': 'NotInDocument', 'EventStatus': 'NotInDocument',
                  'ApprovalSent': True}]
    for table in (transform_event_table(rows), transform_approval_table(approvals), [{'a': 1, 'b': None}], []):
        assert render_table(table) == _TableOutput(False).dump(table)
    assert render_json({'b': ['é'], 'a': 1}) == '{\n  "a": 1,\n  "b": [\n    "é"\n  ]\n}\n'


# Failures ------------------------------------------------------------------------------------------------

@OLDEST_AND_NEWEST
@pytest.mark.parametrize('args, message', [
    ((), 'required: COMMAND'),
    (('frobnicate',), "invalid choice: 'frobnicate'"),
    (('list', '--bogus'), 'unrecognized arguments: --bogus'),
    (('list', '--timeout', '0'), '--timeout must be a number of seconds greater than 0'),
    (('list', '--api-version', 'latest'), "--api-version 'latest' is not a date"),
    (('show',), 'the following arguments are required: --event-id'),
    (('show', '--event-id', 'nope'), "'nope' is not an event id"),
    (('watch', '--interval', '0'), '--interval must be a number of seconds greater than 0'),
    (('watch', '--approve', 'sometimes'), "invalid choice: 'sometimes'"),
    (('watch', '--on-scheduled', '/no/such/program'), "'/no/such/program' is not found"),
], ids=['no-command', 'unknown-command', 'unknown-option', 'timeout', 'api-version', 'no-event-id', 'bad-event-id',
        'interval', 'approve-mode', 'missing-handler'])
def test_bad_input_is_one_line_and_exit_2(python, zipapp, emulator, args, message):
    assert_one_line_failure(run_agent(python, zipapp, *args, endpoint=emulator.url), 2, message)
    assert emulator.requests() == []


@OLDEST_AND_NEWEST
@pytest.mark.parametrize('command', ['show', 'approve'])
def test_an_unknown_event_is_one_line_and_exit_1(python, zipapp, emulator, command):
    done = run_agent(python, zipapp, command, '--event-id', UNKNOWN, endpoint=emulator.url)
    assert_one_line_failure(done, 1, UNKNOWN)
    assert 'not in the Scheduled Events document' in done.stderr


@OLDEST
def test_nothing_listening_is_one_line_and_exit_1(python, zipapp, tmp_path):
    endpoint = closed_port_url()
    assert_one_line_failure(run_agent(python, zipapp, 'list', endpoint=endpoint), 1, 'IMDS is not reachable at')
    assert_one_line_failure(run_agent(python, zipapp, 'watch', '--once', '--state-dir', str(tmp_path),
                                      endpoint=endpoint), 1, 'IMDS is not reachable at')


@OLDEST
def test_ctrl_c_while_waiting_for_imds_exits_130_quietly(python, zipapp):
    with socket.socket() as silent:         # accepts the connection, never answers
        silent.bind(('127.0.0.1', 0))
        silent.listen(1)
        endpoint = 'http://127.0.0.1:%d' % silent.getsockname()[1]
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [str(python), '-I', '-S', zipapp, 'list', '--timeout', '30'], env={ENDPOINT_ENV: endpoint},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        silent.settimeout(20)
        connection, _ = silent.accept()
        with connection:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out, err) == (130, '', '')


# watch --------------------------------------------------------------------------------------------------

@OLDEST_AND_NEWEST
def test_watch_once_runs_the_handler_then_approves(python, zipapp, emulator, tmp_path):
    recorder = Recorder.create(tmp_path)
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'notice': 900}])
    done = run_agent(python, zipapp, 'watch', '--once', '--state-dir', str(tmp_path / 'state'),
                     '--on-scheduled', recorder.command('drain'), '--approve', 'after-handlers',
                     endpoint=emulator.url)
    assert done.returncode == 0, done.stderr
    assert [(line['transition'], line['EventId']) for line in map(json.loads, done.stdout.splitlines())] == [
        ('scheduled', event_id), ('approved', event_id)]
    run, = recorder.runs()
    ended, = recorder.runs('end')
    assert (run['argv'], run['stdin']['EventId']) == (['drain'], event_id)
    post, = [r for r in emulator.requests() if r['method'] == 'POST']
    assert post['time'] >= ended['ended']
    assert emulator.document()['Events'][0]['EventStatus'] == 'Started'
    assert (tmp_path / 'state').is_dir()


@OLDEST
def test_watch_notifies_a_webhook(python, zipapp, emulator, tmp_path):
    hook = Receiver(answers=[503])
    try:
        event_id, = emulator.add_events([{'EventType': 'Preempt', 'notice': 30}])
        done = run_agent(python, zipapp, 'watch', '--once', '--state-dir', str(tmp_path / 'state'), '--webhook',
                         hook.url + '/hook?code=HOOKSECRET', '--verbose', endpoint=emulator.url)
        assert done.returncode == 0, done.stderr
        assert [request['path'] for request in hook.requests] == ['/hook?code=HOOKSECRET'] * 2     # retried once
        event = hook.requests[-1]['body']
        assert (event['specversion'], event['subject'], event['type']) == (
            '1.0', event_id, 'Microsoft.Compute.ScheduledEvents.Scheduled')
        assert f'Notifying webhook at {hook.url}/hook' in done.stderr and 'HOOKSECRET' not in done.stderr
    finally:
        hook.close()


LEAN = r'''
import sys
sys.path.insert(0, sys.argv[1])
from azext_scheduledevents.agent.main import main
code = main(sys.argv[2:])
heavy = ('ssl', 'http.client', 'azext_scheduledevents.core.imds', 'azext_scheduledevents.core.watch')
sys.stderr.write(' '.join(name for name in heavy if name in sys.modules) + '\n')
sys.exit(code)
'''


def imported_heavy(python, zipapp, argv, *, endpoint=None):
    """(exit code, which of LEAN's heavy modules the agent's ``argv`` imported)."""
    done = subprocess.run([str(python), '-I', '-S', '-c', LEAN, zipapp, *argv], capture_output=True, text=True,
                          env={ENDPOINT_ENV: endpoint} if endpoint else {}, timeout=60, check=False)
    return done.returncode, done.stderr.splitlines()[-1].split()


@OLDEST
@pytest.mark.parametrize('args', [('list',), ('watch', '--once', '--state-dir', '{state}')], ids=['list', 'watch'])
def test_plain_http_never_imports_ssl(python, zipapp, emulator, tmp_path, args):
    argv = [arg.format(state=tmp_path / 'state') for arg in args]
    code, heavy = imported_heavy(python, zipapp, argv, endpoint=emulator.url)
    assert code == 0 and 'ssl' not in heavy and 'http.client' in heavy


@OLDEST
@pytest.mark.parametrize('argv, code', [(['--version'], 0), (['service', 'install'], 2)], ids=['version', 'service'])
def test_commands_that_do_not_talk_to_imds_import_neither_http_nor_the_watcher(python, zipapp, argv, code):
    """Each install runs ``service`` through Run Command: what it does not need is not imported."""
    assert imported_heavy(python, zipapp, argv) == (code, [])


@OLDEST
def test_watch_stops_on_sigterm_and_sigint(python, zipapp, emulator, tmp_path):
    for signum in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [str(python), '-I', '-S', zipapp, 'watch', '--interval', '0.1', '--state-dir', str(tmp_path / 'state')],
            env={ENDPOINT_ENV: emulator.url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not [r for r in emulator.requests() if r['path'] == '/metadata/scheduledevents']:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
        assert (proc.returncode, err) == (0, '')
        emulator.clear_requests()
