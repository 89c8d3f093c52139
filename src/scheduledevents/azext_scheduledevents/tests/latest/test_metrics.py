# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``--metrics-file``: the Prometheus text a real watcher writes, read back with Prometheus's own parser."""

import os
import stat
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from azext_scheduledevents.core import metrics
from azext_scheduledevents.core.approval import ApprovalPolicy
from azext_scheduledevents.core.errors import HandlerConfigError
from azext_scheduledevents.core.watchoptions import WatchOptions
from azext_scheduledevents.core.watchstats import EventsView, WatchStats

from .conftest import wait_until
from .test_az_watch import ENDPOINT
from .watching import Recorder, WatcherThread

P = metrics.PREFIX


def parse(text):
    """{family name: family}, as Prometheus reads the text (a counter's family name drops ``_total``)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def values(families, name):
    """The samples of one family as {tuple of label values, in label order: value}."""
    return {tuple(sample.labels.values()): sample.value for sample in families[name].samples}


def read_metrics(path):
    try:
        return parse(path.read_text())
    except FileNotFoundError:
        return {}


def test_every_family_has_help_and_type_and_units_in_its_name():
    families = parse(metrics.render(WatchStats(wall=lambda: 100.0).snapshot(EventsView())))
    assert {name: family.type for name, family in families.items()} == {
        f'{P}events_present': 'gauge', f'{P}handler_runs': 'counter', f'{P}handler_failures': 'counter',
        f'{P}approvals': 'counter', f'{P}imds_errors': 'counter',
        f'{P}last_successful_poll_timestamp_seconds': 'gauge'}
    assert all(family.documentation for family in families.values())
    assert values(families, f'{P}last_successful_poll_timestamp_seconds') == {(): 0.0}


def test_known_label_sets_are_written_as_zero_before_anything_happens():
    families = parse(metrics.render(WatchStats().snapshot(EventsView())))
    assert values(families, f'{P}handler_runs') == {(kind,): 0 for kind in
                                                    ('scheduled', 'rescheduled', 'started', 'completed')}
    assert values(families, f'{P}approvals') == {(result,): 0 for result in
                                                 ('approved', 'by-peer', 'withheld', 'not-sent', 'failed')}
    present = values(families, f'{P}events_present')
    assert len(present) == 10 and set(present.values()) == {0} and present[('Preempt', 'Started')] == 0


@pytest.mark.parametrize('event_type, written', [
    ('Odd"Type', 'Odd\\"Type'), ('back\\slash', 'back\\\\slash'), ('two\nlines', 'two\\nlines'), ('Ünïcode', 'Ünïcode'),
], ids=['quote', 'backslash', 'newline', 'unicode'])
def test_label_values_are_escaped_as_the_format_says(event_type, written):
    # Azure may add event types: a type this version does not know still makes a valid file.
    text = metrics.render(WatchStats().snapshot(EventsView(present=((event_type, 'Scheduled', 2),))))
    assert f'{{event_type="{written}",event_status="Scheduled"}} 2\n' in text
    assert values(parse(text), f'{P}events_present')[(event_type, 'Scheduled')] == 2


def test_the_option_renders_back_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = WatchOptions(metrics_file='se.prom')
    assert options.to_argv() == ['--metrics-file', str(tmp_path / 'se.prom')]
    assert WatchOptions.from_arguments({'metrics_file': '/x/se.prom'}).metrics_file == '/x/se.prom'
    assert list(WatchOptions(metrics_file='/x/se.txt').warnings()) == [
        "--metrics-file: node_exporter's textfile collector reads only *.prom files, not /x/se.txt."]


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(HandlerConfigError, match='is a directory: name a file in it'):
        WatchOptions(metrics_file=str(tmp_path)).check({})


def test_a_real_watcher_counts_handlers_approvals_and_imds_errors(emulator, tmp_path):
    recorder = Recorder.create(tmp_path)
    reboot, freeze = emulator.add_events([{'EventType': 'Reboot', 'notice': 60, 'runs_for': 60},
                                          {'EventType': 'Freeze', 'notice': 60, 'EventSource': 'User'}])
    path = tmp_path / 'textfile' / 'scheduled-events.prom'
    commands = {'scheduled': [recorder.handler('drain')], 'started': [recorder.handler('log', exit_code=3)]}
    began = time.time()
    with WatcherThread(emulator.url, tmp_path / 'state', commands=commands, metrics_file=path,
                       policy=ApprovalPolicy(mode='after-handlers')) as watcher:
        # The Reboot is drained and approved, starts, and its started handler fails; the user's Freeze is
        # drained and not approved (user-initiated).
        watcher.wait_for(lambda: len(recorder.runs('end')) == 3 and watcher.transitions().count('approved') == 1
                         and 'not-approved' in watcher.transitions())
        emulator.add_fault({'kind': 'garbage', 'count': 2, 'path': 'scheduledevents', 'method': 'GET'})
        wait_until(lambda: emulator.state()['faults'] == [])
        faulted = [r['time'] for r in emulator.requests() if r['fault'] == 'garbage']

        def answered_after_the_faults():
            families = read_metrics(path)
            return families and values(families, f'{P}last_successful_poll_timestamp_seconds')[()] > max(faulted)
        wait_until(answered_after_the_faults)
    families = read_metrics(path)
    present = values(families, f'{P}events_present')
    assert present[('Reboot', 'Started')] == 1 and present[('Freeze', 'Scheduled')] == 1
    assert sum(present.values()) == 2
    runs, failures = values(families, f'{P}handler_runs'), values(families, f'{P}handler_failures')
    assert (runs[('scheduled',)], runs[('started',)], runs[('completed',)]) == (2, 1, 0)
    assert (failures[('scheduled',)], failures[('started',)]) == (0, 1)
    approvals = values(families, f'{P}approvals')
    assert (approvals[('approved',)], approvals[('withheld',)], approvals[('failed',)]) == (1, 1, 0)
    assert len(faulted) == 2 and values(families, f'{P}imds_errors') == {(): 2}    # a garbage answer is not retried
    assert began < values(families, f'{P}last_successful_poll_timestamp_seconds')[()] <= time.time()
    assert {reboot, freeze} == {line['EventId'] for line in watcher.lines}
    # Readable by node_exporter's own user, and no temp file for the collector to stumble on.
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(path.parent) == [path.name]


def test_az_watch_once_writes_the_metrics_file(az, emulator, tmp_path):
    recorder = Recorder.create(tmp_path)
    emulator.add_events([{'EventType': 'Freeze', 'notice': 60}])
    path = tmp_path / 'scheduled-events.prom'
    result = az.run('scheduled-events', 'watch', '--once', '--only-show-errors', '--state-dir',
                    str(tmp_path / 'state'), '--metrics-file', str(path), '--on-scheduled', recorder.command('drain'),
                    **{ENDPOINT: emulator.url})
    assert result.returncode == 0, result
    families = parse(path.read_text())
    assert values(families, f'{P}events_present')[('Freeze', 'Scheduled')] == 1
    assert values(families, f'{P}handler_runs')[('scheduled',)] == 1       # written after the poll's work
    assert values(families, f'{P}imds_errors') == {(): 0}
    assert values(families, f'{P}last_successful_poll_timestamp_seconds')[()] > 0
    assert (tmp_path / 'state' / 'status.json').exists()
