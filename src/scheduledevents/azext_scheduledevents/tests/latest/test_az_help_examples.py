# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Every example in the commands' help runs as written: the real az, through bash, text unchanged.

The examples come from knack's ``helps`` (registered by ``_help.py``), each entry's YAML read with
``yaml.safe_load``; each text goes to ``bash -e -o pipefail -c`` as it is. The test only chooses the
environment and the working directory:

* on-VM examples (list, show, approve, watch) reach an IMDS emulator through
  AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT, seeded before each example with the events the examples name, and
  a fresh az config directory (so watch's state starts empty); stand-ins for the handler programs the
  examples name (drain, undrain, checkpoint) are on PATH and record how they were called;
* fleet examples (-g) and cycle reach the fake ARM, logged in with managed identity: scale set my-rg/web
  (simulated VMs, each with its own IMDS) and VM my-rg/db1;
* the emulator's examples start it themselves, on its fixed port; an example that says "from another
  shell" runs its first line in the background, and the rest once that line is ready;
* the hosts of URLs in an example (hooks.example.com, an Event Grid topic) resolve to 127.0.0.1 in a
  mount namespace of that example's own (/etc/hosts bound over), where an HTTPS receiver answers with a
  certificate of a throwaway CA (REQUESTS_CA_BUNDLE), and records what it was sent.

A long-running example (watch without --once, the emulator) passes when it does what its name says and
then exits 0 on Ctrl-C (SIGINT to its process group). Every example has an expectation below that looks
at what it did, so a broken example fails. The module runs inside a network namespace of its own, made by
test_az_fleet_in_namespace.py: the fixed ports are free there and nothing can leave the machine.
"""

import datetime
import hashlib
import io
import ipaddress
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import yaml
from knack.help_files import helps

import azext_scheduledevents._help  # noqa: F401  pylint: disable=unused-import
from azext_scheduledevents.commands import load_command_table
from azext_scheduledevents.emulator.imds import ImdsEmulator

from .azcli import AZ
from .conftest import http_call, wait_until
from .fakearm.lifecycle import Timings
from .fakearm.server import FakeArm, az_login

IN_NAMESPACE = os.environ.get('SCHEDULED_EVENTS_TEST_NAMESPACE') == '1'
needs_namespace = pytest.mark.skipif(not IN_NAMESPACE, reason='runs inside its own network namespace, '
                                                              'from test_az_fleet_in_namespace.py')

PREFIX = 'scheduled-events'
EVENT_ID = 'C7061BAC-AFDC-4513-B24B-AA5F13A16123'       # the id the examples use
PREEMPT_ID = '2D8E5A0C-3F1B-4E6D-9A7C-5B4F3E2D1C0B'
OTHER_VM_ID = '7A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D'    # a Freeze for another VM
REDEPLOY_ID = 'E4D3C2B1-A0F9-4E8D-B7C6-A5B4C3D2E1F0'
API_EVENT_ID = '9F8E7D6C-5B4A-4392-8170-6F5E4D3C2B1A'    # my-rg/api publishes to Resource Graph
GRID_KEY = 'example-topic-key'
EMULATOR_URL = 'http://127.0.0.1:8169'                    # the emulator command's default port
LONG_RUN_IN_SECONDS = 60                                  # the most a long-running example may take to show it works

# This VM is web_0. A Reboot and a Preempt for it, a Freeze for web_1 only. Approved, each stays Started for
# 5 s: long enough for a check to read it after az exits, and for watch (a poll a second) to see it Started.
ON_VM_EVENTS = [
    {'EventId': EVENT_ID, 'EventType': 'Reboot', 'notice': 600, 'runs_for': 5},
    {'EventId': PREEMPT_ID, 'EventType': 'Preempt', 'runs_for': 5},
    {'EventId': OTHER_VM_ID, 'EventType': 'Freeze', 'Resources': ['web_1']},
]
# my-rg/web: one Reboot for web_0 and web_3 (the platform puts it in both documents), a Freeze for web_1.
SHARED_REBOOT = {'EventId': EVENT_ID, 'EventType': 'Reboot', 'Resources': ['web_0', 'web_3']}
FLEET_EVENTS = {
    'web_0': [SHARED_REBOOT], 'web_3': [SHARED_REBOOT],
    'web_1': [{'EventId': OTHER_VM_ID, 'EventType': 'Freeze'}],
    'db1': [{'EventId': REDEPLOY_ID, 'EventType': 'Redeploy'}],
}

STAND_IN = '''#!/bin/sh
# Stands in for the user's own program: records how the watcher called it, then succeeds.
cat > /dev/null
printf '%s\\t%s\\t%s\\t%s\\n' "${0##*/}" "$SCHEDULED_EVENT_TRANSITION" "$SCHEDULED_EVENT_ID" "$*" >> "$STAND_IN_LOG"
'''
STAND_INS = ('drain', 'undrain', 'checkpoint')
# The scripts the cycle examples name, in each example's working directory; they run on the instances.
WORK_FILES = {
    'drain.sh': 'echo "draining $CYCLE_INSTANCE_NAME ($CYCLE_ACTION, attempt $CYCLE_ATTEMPT)"\n',
    'smoke.sh': '#!/bin/sh\necho "$CYCLE_INSTANCE_NAME answers"\n',
}


# The examples --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Example:
    command: str        # without the 'scheduled-events ' prefix
    index: int
    name: str
    text: str

    @property
    def id(self):
        return f'{self.command}-{self.index}'

    @property
    def backend(self):
        if self.command == 'emulator':
            return 'none'
        if (self.command == 'cycle' or re.search(r'(^|\s)(-g|--resource-group)\s', self.text)
                or '--route control-plane' in self.text):
            return 'fake_arm'
        return 'imds'

    @property
    def hosts(self):
        """The non-loopback hosts of the URLs in the text, with the scheme and port of each URL."""
        found = set()
        for url in re.findall(r'https?://[^\s"\']+', self.text):
            parts = urlsplit(url)
            if parts.hostname in ('localhost', None) or _is_ip(parts.hostname):
                continue
            found.add((parts.hostname, parts.scheme, parts.port or {'http': 80, 'https': 443}[parts.scheme]))
        return found


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def help_entries():
    return {key: yaml.safe_load(text) for key, text in helps.items() if key.split()[0] == PREFIX}


def help_examples():
    return [Example(key.split(' ', 1)[1], index, example['name'], example['text'])
            for key, entry in help_entries().items() if entry.get('type') == 'command'
            for index, example in enumerate(entry.get('examples') or [])]


def registered_commands():
    """The commands commands.py registers, read with a loader that only records names."""
    names = []

    class Group:
        def __init__(self, prefix):
            self.prefix = prefix

        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

        def __getattr__(self, _):
            return lambda name, *args, **kwargs: names.append(f'{self.prefix} {name}')

    load_command_table(SimpleNamespace(command_group=lambda prefix, *_, **__: Group(prefix)), None)
    return names


EXAMPLES = help_examples()


# What each example must do --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Expect:
    """``check(run)`` asserts on the finished example. ``until(run)`` makes it a long-running one: it is
    stopped with Ctrl-C once ``until`` holds (after ``live(run)``, asserts made while it still runs).
    ``another_shell``: the first line runs on its own, the other lines in another shell once ``until``."""

    check: object
    code: int = 0
    until: object = None
    live: object = None
    another_shell: bool = False


@dataclass
class Run:
    example: Example
    folder: Path                    # stdout, stderr and the stand-ins' log; the example runs in folder/work
    backend: object
    outside: object
    code: int | None = None
    client: object = None           # the other shell's result, for another_shell

    @property
    def cwd(self):
        return self.folder / 'work'

    @property
    def stand_in_log(self):
        return self.folder / 'stand-ins.log'

    @property
    def out(self):
        return (self.folder / 'stdout').read_text()

    @property
    def err(self):
        return (self.folder / 'stderr').read_text()

    def lines(self):
        """The JSON lines printed so far (a line still being written is left for later)."""
        return [json.loads(line) for line in self.out.splitlines(keepends=True) if line.endswith('\n')]

    def transitions(self, event_id=None):
        return [line['transition'] for line in self.lines() if event_id in (None, line['EventId'])]

    def stand_in_runs(self):
        """(program, transition, EventId, arguments) of every stand-in run, in order."""
        return [tuple(line.split('\t')) for line in self.stand_in_log.read_text().splitlines()]

    def __repr__(self):
        return (f'<example {self.example.id} {self.example.text!r} exit {self.code}\nstdout: {self.out}\n'
                f'stderr: {self.err}\nstand-ins: {self.stand_in_runs()}\nanother shell: {self.client}>')


def _document(run):
    return {e['EventId']: e for e in run.backend.document()['Events']}


def _table_rows(text):
    """The data rows of az's table output (after the header and the dashes)."""
    lines = text.splitlines()
    assert len(lines) >= 2 and set(lines[1].replace(' ', '')) == {'-'}, text
    return lines[2:]


def check_list_table(run):
    rows = _table_rows(run.out)
    assert run.out.split()[0] == 'EventId' and len(rows) == 3
    assert any(EVENT_ID in row and 'Reboot' in row and 'Scheduled' in row for row in rows)


def check_list_this_vm(run):
    assert sorted((e['EventId'], e['AffectsThisVm']) for e in json.loads(run.out)) == \
        sorted([(EVENT_ID, True), (PREEMPT_ID, True)])


def check_list_query(run):
    assert run.out.split() == [EVENT_ID]


def check_list_document(run):
    document = json.loads(run.out)
    assert isinstance(document['DocumentIncarnation'], int)
    assert {e['EventId'] for e in document['Events']} == {EVENT_ID, PREEMPT_ID, OTHER_VM_ID}


def check_fleet_table(run):
    rows = _table_rows(run.out)
    assert run.out.split()[:2] == ['Instance', 'EventId']
    assert sorted(row.split()[:2] for row in rows) == [['web_0', EVENT_ID], ['web_1', OTHER_VM_ID],
                                                       ['web_3', EVENT_ID]]


def check_fleet_instance_ids(run):
    assert [(e['Instance'], e['EventId'], e['AffectsThisVm']) for e in json.loads(run.out)] == \
        [('web_0', EVENT_ID, True), ('web_3', EVENT_ID, True)]


def check_fleet_vm(run):
    assert [(e['Instance'], e['EventId'], e['EventType']) for e in json.loads(run.out)] == \
        [('db1', REDEPLOY_ID, 'Redeploy')]


def check_show(run):
    event = json.loads(run.out)
    assert (event['EventId'], event['EventStatus'], event['AffectsThisVm']) == (EVENT_ID, 'Scheduled', True)


def check_show_seconds(run):
    assert 500 < float(run.out) <= 600


def check_approve(run):
    assert [(r['EventId'], r['StatusBefore'], r['EventStatus']) for r in json.loads(run.out)] == \
        [(EVENT_ID, 'Scheduled', 'Started')]
    assert _document(run)[EVENT_ID]['EventStatus'] == 'Started'


def check_approve_this_vm(run):
    assert sorted((r['EventId'], r['EventStatus']) for r in json.loads(run.out)) == \
        sorted([(EVENT_ID, 'Started'), (PREEMPT_ID, 'Started')])
    assert _document(run)[OTHER_VM_ID]['EventStatus'] == 'Scheduled'


def check_fleet_approve(run):
    assert [(r['EventId'], r['Instance'], r['EventStatus']) for r in json.loads(run.out)] == \
        [(EVENT_ID, 'web_0', 'Started')]
    web_3 = run.backend.scale_sets[('my-rg', 'web')].instances['3'].vm
    assert [e['EventStatus'] for e in web_3.document()['events']] == ['Started']


def until_scheduled(run):
    return {EVENT_ID, PREEMPT_ID} <= {line['EventId'] for line in run.lines() if line['transition'] == 'scheduled'}


def check_watch(run):
    assert {line['EventId'] for line in run.lines()} == {EVENT_ID, PREEMPT_ID}
    assert 'approved' not in run.transitions() and _document(run)[EVENT_ID]['EventStatus'] == 'Scheduled'


def until_undrained(run):
    return ('undrain', 'completed', EVENT_ID, '') in run.stand_in_runs()


def check_drain(run):
    assert run.transitions(EVENT_ID) == ['scheduled', 'approved', 'started', 'completed']
    runs = run.stand_in_runs()
    drained, undrained = ('drain', 'scheduled', EVENT_ID, '--grace 20'), ('undrain', 'completed', EVENT_ID, '')
    assert runs.index(drained) < runs.index(undrained)


def until_checkpointed(run):
    return 'approved' in run.transitions(PREEMPT_ID) and run.stand_in_runs()


def check_checkpoint(run):
    assert run.transitions(EVENT_ID) == [] and run.transitions(PREEMPT_ID)[:2] == ['scheduled', 'approved']
    assert run.stand_in_runs() == [('checkpoint', 'scheduled', PREEMPT_ID, '')]


def until_notified(run):
    return {r['host'] for r in run.outside.requests} >= {'hooks.example.com',
                                                         'mytopic.westus2-1.eventgrid.azure.net'}


def check_notified(run):
    hook = next(r for r in run.outside.requests if r['host'] == 'hooks.example.com')
    assert hook['path'] == '/se' and hook['headers']['Content-Type'].startswith('application/cloudevents+json')
    assert hook['body']['specversion'] == '1.0' and hook['body']['data']['transition'] == 'scheduled'
    grid = next(r for r in run.outside.requests if r['host'] == 'mytopic.westus2-1.eventgrid.azure.net')
    assert grid['path'] == '/api/events' and grid['headers']['aeg-sas-key'] == GRID_KEY
    assert grid['body'][0]['eventType'].startswith('Microsoft.Compute.ScheduledEvents.')
    assert GRID_KEY not in run.out + run.err


def check_once(run):
    assert sorted(run.transitions()) == ['approved', 'approved', 'scheduled', 'scheduled']
    assert sorted(r[:3] for r in run.stand_in_runs()) == sorted([('drain', 'scheduled', EVENT_ID),
                                                                ('drain', 'scheduled', PREEMPT_ID)])
    assert _document(run)[EVENT_ID]['EventStatus'] == 'Started'


def check_unit_file(run):
    unit = (run.cwd / 'scheduled-events-watch.service').read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith('ExecStart='))
    # The program by the full path PATH found, as a service's PATH is not the shell's.
    assert re.search(r' scheduled-events watch --on-scheduled /\S+/stand-ins\w*/drain --approve after-handlers ',
                     exec_start), exec_start
    assert '--state-dir /var/lib/scheduled-events' in exec_start and 'Restart=always' in unit
    assert run.out == unit and run.stand_in_runs() == []


def _actions(run, action):
    return [r['path'].rsplit('/', 2)[-2] for r in run.backend.requests()[run.backend.mark:]
            if r['method'] == 'POST' and r['path'].endswith('/' + action) and '/web/' in r['path']]


def _most_below(run):
    """The most instances below a healthy score at once since the example started (the fake's ledger)."""
    return max(len(below) for at, below, _ in run.backend.ledger.entries if at >= run.backend.mark_time)


def check_cycle(run):
    report = json.loads(run.out)
    assert [(r['name'], r['action'], r['result']) for r in report['instances']] == \
        [(f'web_{i}', 'reimage', 'healthy') for i in range(4)]
    assert _actions(run, 'reimage') == ['0', '1', '2', '3'] and _most_below(run) == 1


def check_cycle_dry_run(run):
    plan = json.loads(run.out)
    assert plan['order'] == ['0', '1', '2', '3'] and plan['requiredScore'] == 7
    assert plan['action'] == 'update' and plan['outdated'] == ['0', '1', '2', '3'] and plan['zoneByZone']
    assert {r['method'] for r in run.backend.requests()[run.backend.mark:]} == {'GET'}


def check_cycle_update(run):
    report = json.loads(run.out)
    assert [(r['name'], r['action'], r['result']) for r in report['instances']] == \
        [(f'web_{i}', 'update', 'healthy') for i in range(4)]
    assert [r['hooks']['before-script'][0]['stdout'] for r in report['instances']] == \
        [f'draining web_{i} (update, attempt 1)' for i in range(4)]
    assert [r['hooks']['after-script'][0]['stdout'] for r in report['instances']] == \
        [f'web_{i} answers' for i in range(4)]
    upgrades = [r['body']['instanceIds'] for r in run.backend.requests()[run.backend.mark:]
                if r['method'] == 'POST' and r['path'].endswith('/web/manualupgrade')]
    assert upgrades == [['0'], ['1'], ['2'], ['3']] and _most_below(run) == 1
    suite = ElementTree.parse(run.cwd / 'cycle.xml').getroot().find('testsuite')
    assert suite.get('tests') == '4' and suite.get('failures') == '0'
    assert [case.get('name') for case in suite.iter('testcase')] == [f'web_{i}' for i in range(4)]


def check_cycle_resume(run):
    decoder, text, reports = json.JSONDecoder(), run.out.strip(), []
    while text:
        report, end = decoder.raw_decode(text)
        reports.append(report)
        text = text[end:].strip()
    first, resumed = reports
    assert [(r['action'], r['result']) for r in first['instances']] == [('restart', 'healthy')] * 4
    assert [r['result'] for r in resumed['instances']] == ['done-before-resume'] * 4
    assert sorted(_actions(run, 'restart')) == ['0', '1', '2', '3'] and _most_below(run) == 2
    assert sorted(json.loads((run.cwd / 'cycle.json').read_text())['finished']) == ['0', '1', '2', '3']


def _take_agents_off(run):
    """A new OS disk for every instance, so no agent keeps acting on the events of the examples after."""
    for instance in run.backend.scale_sets[('my-rg', 'web')].instances.values():
        instance.vm.reimage()


def check_agent_package(run):
    agent = (run.cwd / 'scheduled-events-agent.pyz').read_bytes()
    assert agent.startswith(b'#!/usr/bin/env python3\n') and zipfile.is_zipfile(io.BytesIO(agent))
    assert json.loads(run.out)['Sha256'] == hashlib.sha256(agent).hexdigest()


def check_agent_install(run):
    try:
        rows = json.loads(run.out)
        assert [(r['Instance'], r['Result']) for r in rows] == [(f'web_{i}', 'installed') for i in range(4)]
        unit = run.backend.scale_sets[('my-rg', 'web')].instances['0'].vm.read_file(
            '/etc/systemd/system/azure-scheduled-events-agent.service').decode()
        assert 'watch --approve after-handlers --state-dir /var/lib/azure-scheduled-events' in unit
    finally:
        _take_agents_off(run)


def check_agent_cloud_init(run):
    text = (run.cwd / 'agent-cloud-init.yaml').read_text()
    document = yaml.safe_load(text)
    assert text.startswith('#cloud-config\n') and document['write_files'][0]['encoding'] == 'gz+b64'
    assert 'service install' in document['runcmd'][0][2]


def check_agent_status(run):
    try:
        lines = run.out.splitlines()             # the install's JSON, then the table
        header = next(i for i, line in enumerate(lines) if line.split()[:2] == ['Instance', 'Agent'])
        rows = _table_rows('\n'.join(lines[header:]))
        assert len(rows) == 4
        assert all(row.split()[1] == 'running' for row in rows), run.out
    finally:
        _take_agents_off(run)


def check_agent_uninstall(run):
    assert {r['Result'] for r in json.loads(run.out)} <= {'removed', 'absent'}


def check_control_plane_list(run):
    rows = _table_rows(run.out)
    assert run.out.split()[:3] == ['Target', 'Type', 'Status'] and len(rows) == 1
    assert rows[0].split()[1:] == ['Reboot', 'Scheduled'] and rows[0].split()[0].endswith('/api')


def check_control_plane_approve(run):
    row, = json.loads(run.out)
    assert (row['EventId'], row['StatusBefore'], row['EventStatus']) == (API_EVENT_ID, 'Scheduled', 'Started')
    assert not [r for r in run.backend.requests()[run.backend.mark:] if r['path'].endswith('/runcommand')]


def check_policy_table(run):
    rows = _table_rows(run.out)
    assert run.out.split()[:4] == ['Command', 'Route', 'Works', 'Fix'] and len(rows) == 5
    assert 'az vmss update -g my-rg -n web --additional-scheduled-events true' in run.out


def until_listening(run):
    return f'listening on {EMULATOR_URL}' in run.err


def check_emulator_then_list(run):
    assert run.client.returncode == 0, run.client
    assert any('Preempt' in row and 'Scheduled' in row for row in _table_rows(run.client.stdout))
    assert 'Point az at it' in run.err


def _emulator_document():
    status, _, body = http_call(EMULATOR_URL, path='/metadata/scheduledevents?api-version=2020-07-01',
                                headers={'Metadata': 'true'})
    assert status == 200, body
    return json.loads(body)['Events']


def live_vmss(run):
    assert sorted((e['EventType'], e['Resources']) for e in _emulator_document()) == \
        [('Freeze', ['web_1']), ('Reboot', ['web_0', 'web_3'])]
    status, _, body = http_call(EMULATOR_URL, path='/metadata/instance?api-version=2021-02-01',
                                headers={'Metadata': 'true'})
    assert status == 200 and json.loads(body)['compute']['name'] == 'web_3'


def live_terminate(run):
    event, = _emulator_document()
    not_before = datetime.datetime.strptime(event['NotBefore'], '%a, %d %b %Y %H:%M:%S GMT')
    seconds = (not_before.replace(tzinfo=datetime.timezone.utc) - datetime.datetime.now(datetime.timezone.utc))
    assert event['EventType'] == 'Terminate' and 9 * 60 < seconds.total_seconds() <= 10 * 60


def check_emulator_stopped(run):
    assert 'listening on' in run.err and 'Traceback' not in run.err


EXPECTATIONS = {
    ('list', 'List the events, as a table.'): Expect(check_list_table),
    ('list', 'Only the events that affect this VM.'): Expect(check_list_this_vm),
    ('list', 'The ids of Reboot events that are still Scheduled.'): Expect(check_list_query),
    ('list', 'The raw document, with DocumentIncarnation.'): Expect(check_list_document),
    ('list', 'Every instance of a scale set, through Run Command, in one table.'): Expect(check_fleet_table),
    ('list', 'Only instances 0 and 3 of the scale set.'): Expect(check_fleet_instance_ids),
    ('list', 'A standalone VM, through Run Command.'): Expect(check_fleet_vm),
    ('list', 'Every scheduled event of every subscription this login sees, from Azure Resource Graph.'):
        Expect(check_control_plane_list),
    ('approve', 'Approve an event of a scale set that publishes to Resource Graph, through the Maintenance API.'):
        Expect(check_control_plane_approve),
    ('policy show', 'Which routes work for a scale set, and what turns on the others.'): Expect(check_policy_table),
    ('show', 'Show an event.'): Expect(check_show),
    ('show', 'Seconds left before an event starts on its own.'): Expect(check_show_seconds),
    ('approve', 'Approve an event.'): Expect(check_approve),
    ('approve', 'Approve every Scheduled event that affects this VM.'): Expect(check_approve_this_vm),
    ('approve', 'Approve an event of a scale set, through Run Command on an instance that sees it.'):
        Expect(check_fleet_approve),
    ('watch', "Print transitions of this VM's events as JSON lines."): Expect(check_watch, until=until_scheduled),
    ('watch', 'Drain before maintenance, approve only after a successful drain, undo it when maintenance is over '
              '(drain and undrain are your programs, on PATH).'): Expect(check_drain, until=until_undrained),
    ('watch', 'Checkpoint on Spot eviction (checkpoint is your program, on PATH) and approve at once.'):
        Expect(check_checkpoint, until=until_checkpointed),
    ('watch', 'Send every transition to a webhook and to a custom Event Grid topic, whose key is in the '
              'environment variable SCHEDULED_EVENTS_EVENT_GRID_KEY.'): Expect(check_notified, until=until_notified),
    ('watch', 'One poll from a timer or cron job.'): Expect(check_once),
    ('watch', 'Write the systemd service unit of a watcher to scheduled-events-watch.service, then install it as '
              'the description says.'): Expect(check_unit_file),
    ('cycle', 'Reimage every instance, one at a time.'): Expect(check_cycle),
    ('cycle', 'See the plan first (outdated instances, zones, hooks, maintenance); change nothing.'):
        Expect(check_cycle_dry_run),
    ('cycle', 'Bring the outdated instances to the latest model, draining each first and checking it after, with '
              'a JUnit report.'): Expect(check_cycle_update),
    ('cycle', 'Restart two at a time, never while Azure maintains an instance, with a state file so that a killed '
              'pipeline can resume.'): Expect(check_cycle_resume),
    ('agent package', 'Write the agent to a file, to bake into an image.'): Expect(check_agent_package),
    ('agent install', 'Install the agent on every instance of a scale set; it approves each event after its '
                      'handlers.'): Expect(check_agent_install),
    ('agent install', 'Custom data for new instances, cloud-init that installs the agent with the same options '
                      'on first boot.'): Expect(check_agent_cloud_init),
    ('agent status', 'Gate a pipeline, exit 1 unless every instance runs the current agent and polled within a '
                     'minute.'): Expect(check_agent_status),
    ('agent uninstall', 'Take the agent off every instance of a scale set, its state too.'):
        Expect(check_agent_uninstall),
    ('emulator', 'A Spot eviction (30 s notice), then list it from another shell.'):
        Expect(check_emulator_then_list, until=until_listening, another_shell=True),
    ('emulator', 'Platform maintenance for two scale-set instances, 60 times faster than real time.'):
        Expect(check_emulator_stopped, until=until_listening, live=live_vmss),
    ('emulator', 'A scale-in Terminate with a 10-minute notice.'):
        Expect(check_emulator_stopped, until=until_listening, live=live_terminate),
}


# The tests that need no backend -------------------------------------------------------------------------

def test_every_command_has_an_example():
    commands = registered_commands()
    assert commands and set(commands) <= {f'{PREFIX} {e.command}' for e in EXAMPLES}, commands
    assert {f'{PREFIX} {e.command}' for e in EXAMPLES} <= set(commands)
    assert all(entry['type'] in ('group', 'command') for entry in help_entries().values())


def test_every_example_has_an_expectation():
    missing = [(e.command, e.name) for e in EXAMPLES if (e.command, e.name) not in EXPECTATIONS]
    unused = set(EXPECTATIONS) - {(e.command, e.name) for e in EXAMPLES}
    assert not missing and not unused, f'examples without an expectation: {missing}; expectations of no ' \
                                       f'example: {sorted(unused)}'


def test_examples_need_no_root_no_absolute_paths_and_no_placeholders():
    for example in EXAMPLES:
        for line in example.text.strip().splitlines():
            assert 'az scheduled-events ' in line, (example, line)
        assert not re.search(r'(^|[\s"=])/', example.text), (example, 'a path outside PATH and the working directory')
        assert 'sudo ' not in example.text and '<' not in example.text, example


# The backends --------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def imds():
    with ImdsEmulator(vm_name='web_0', rate_limit=0) as server:
        yield server


@pytest.fixture(scope='module')
def fake_arm(az, tmp_path_factory):
    """my-rg/web (4 instances with the health extension, each a simulated VM) and my-rg/db1."""
    # Operations well over cycle's 2-second instance-view reads, as on Azure (minutes): cycle counts an
    # instance done once it has seen its score drop and come back.
    timings = Timings(reimage=3.5, restart=3.5, redeploy=3.5, update=3.5, create=3.5, delete=0.5, health_delay=0.5)
    with FakeArm(tmp_path_factory.mktemp('arm'), timings=timings) as arm:
        arm.add_scale_set('my-rg', 'web', count=4, health_extension=True)
        arm.add_vm('my-rg', 'db1')
        api = arm.add_scale_set('my-rg', 'api', count=2, simulate_vms=False, publish=True)
        arm.publish(api, {'EventId': API_EVENT_ID, 'Resources': ['api_0', 'api_1']})
        arm.env = az_login(az, arm, config_dir=az.fresh_config_dir('arm-config'))
        yield arm


def _seed_fake_arm(arm):
    web = arm.scale_sets[('my-rg', 'web')]
    wait_until(lambda: arm.advance() or all(i.life.is_healthy() for i in web.instances.values()), timeout=60)
    for instance in [*web.instances.values(), *arm.vms.values()]:
        instance.vm.control('DELETE', '/_emulator/events')
        if FLEET_EVENTS.get(instance.name):
            instance.vm.add_events(FLEET_EVENTS[instance.name])
    arm.set_event_status(API_EVENT_ID, 'Scheduled')
    arm.change_model(web)                   # every instance outdated, for the update examples
    arm.mark, arm.mark_time = len(arm.requests()), time.monotonic()


@pytest.fixture(scope='module')
def stand_ins(tmp_path_factory):
    folder = tmp_path_factory.mktemp('stand-ins')
    for name in STAND_INS:
        (folder / name).write_text(STAND_IN)
        (folder / name).chmod(0o755)
    return folder


class Outside:
    """HTTP(S) receivers on 127.0.0.1 for the hosts the examples' URLs name, and the /etc/hosts naming
    them; every request is recorded with its Host header."""

    def __init__(self, folder, hosts):
        self.requests = []
        self.hosts_file = folder / 'hosts'
        names = sorted({name for name, _, _ in hosts})
        self.hosts_file.write_text(Path('/etc/hosts').read_text() + ''.join(f'127.0.0.1 {n}\n' for n in names))
        self.ca, cert, key = _certificates(folder, names or ['localhost'])
        outside = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                outside.requests.append({'host': self.headers['Host'].split(':')[0], 'path': self.path,
                                         'headers': dict(self.headers), 'body': json.loads(body or b'null')})
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self._servers = []
        for scheme, port in sorted({h[1:] for h in hosts}):
            server = ThreadingHTTPServer(('127.0.0.1', port), Handler)
            if scheme == 'https':
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(cert, key)
                server.socket = context.wrap_socket(server.socket, server_side=True)
            threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()
            self._servers.append(server)

    def close(self):
        for server in self._servers:
            server.shutdown()
            server.server_close()


def _certificates(folder, names):
    """A throwaway CA and a certificate for ``names`` it signed: (CA path, certificate path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, issuer, public_key, signing_key, extensions):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'help examples test CA')])
    ca = certificate(ca_name, ca_name, ca_key.public_key(), ca_key,
                     [(x509.BasicConstraints(ca=True, path_length=0), True),
                      (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)])
    leaf = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]), ca_name, key.public_key(),
                       ca_key, [(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False),
                                (x509.BasicConstraints(ca=False, path_length=None), True),
                                (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)])
    paths = folder / 'ca.pem', folder / 'server.pem', folder / 'server.key'
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture(scope='module')
def outside(tmp_path_factory):
    receivers = Outside(tmp_path_factory.mktemp('outside'), set().union(*(e.hosts for e in EXAMPLES)))
    yield receivers
    receivers.close()


# Running an example ----------------------------------------------------------------------------------------

def _shell(script, run, env, hosts):
    """``bash -e -o pipefail -c script`` in its own process group; in a mount namespace with the example's
    hosts pointed at 127.0.0.1 when it names any."""
    argv = ['bash', '-e', '-o', 'pipefail', '-c', script]
    if hosts:
        argv = ['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"',
                str(run.outside.hosts_file), *argv]
    with open(run.folder / 'stdout', 'w', encoding='utf-8') as out, \
            open(run.folder / 'stderr', 'w', encoding='utf-8') as err:
        return subprocess.Popen(argv, env=env, cwd=run.cwd, stdout=out,  # pylint: disable=consider-using-with
                                stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc, signum=signal.SIGINT):
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


def run_example(example, expect, run, env):
    lines = example.text.strip().splitlines()
    script = lines[0] if expect.another_shell else example.text
    proc = _shell(script, run, env, example.hosts)
    try:
        if expect.until is None:
            try:
                run.code = proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                raise AssertionError(f'the example did not finish in 180 s: {run}') from None
            return
        deadline = time.monotonic() + LONG_RUN_IN_SECONDS
        while not expect.until(run):
            assert proc.poll() is None, f'the long-running example exited on its own: {run}'
            assert time.monotonic() < deadline, f'the example did not do what it says in {LONG_RUN_IN_SECONDS} s: {run}'
            time.sleep(0.05)
        if expect.another_shell:
            run.client = subprocess.run(['bash', '-e', '-o', 'pipefail', '-c', '\n'.join(lines[1:])], env=env,
                                        cwd=run.cwd, capture_output=True, text=True, timeout=120, check=False)
        if expect.live:
            expect.live(run)
        _stop(proc)
        run.code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            _stop(proc, signal.SIGKILL)
            proc.wait()


@needs_namespace
@pytest.mark.parametrize('example', EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_runs_as_written(example, request, az, stand_ins, outside, tmp_path):
    expect = EXPECTATIONS[(example.command, example.name)]
    env = az.environment(PATH=os.pathsep.join([str(stand_ins), str(AZ.parent), os.environ['PATH']]),
                         STAND_IN_LOG=str(tmp_path / 'stand-ins.log'), SCHEDULED_EVENTS_EVENT_GRID_KEY=GRID_KEY,
                         REQUESTS_CA_BUNDLE=str(outside.ca),
                         AZURE_CONFIG_DIR=az.fresh_config_dir(f'config-{example.id}'))
    backend = None
    if example.backend == 'imds':
        backend = request.getfixturevalue('imds')
        backend.withdraw()
        backend.add_events(ON_VM_EVENTS)
        env['AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT'] = backend.url
    elif example.backend == 'fake_arm':
        backend = request.getfixturevalue('fake_arm')
        _seed_fake_arm(backend)
        env.update(backend.env)
    outside.requests.clear()
    run = Run(example, tmp_path, backend, outside)
    run.cwd.mkdir()
    for name, text in WORK_FILES.items():
        (run.cwd / name).write_text(text)
    run.stand_in_log.touch()
    run_example(example, expect, run, env)
    assert run.code == expect.code, run
    assert 'Traceback' not in run.err, run
    try:
        expect.check(run)
    except AssertionError as ex:
        raise AssertionError(f'{ex}\n{run}') from ex
