# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""`az scheduled-events cycle` for roll-outs, end to end: the real az, logged in to the fake ARM, updating
outdated instances through the manual upgrade with before- and after-scripts that Run Command runs on
simulated VMs; zone by zone; held back by a Started event; the JUnit report. The fake's history and
ledger say what happened to which instance, and when.

These run only inside a network namespace of their own, which test_az_fleet_in_namespace.py makes.
"""

import json
import os
import time
from xml.etree import ElementTree

import pytest

from .conftest import wait_until
from .fakearm.lifecycle import Timings
from .fakearm.server import FakeArm, az_login

IN_NAMESPACE = os.environ.get('SCHEDULED_EVENTS_TEST_NAMESPACE') == '1'
pytestmark = pytest.mark.skipif(not IN_NAMESPACE, reason='runs inside its own network namespace, '
                                                         'from test_az_fleet_in_namespace.py')

# Longer than az's 2-second instance-view reads, as on Azure (minutes): a dip is always seen.
TIMINGS = Timings(reimage=3.0, update=3.0, create=3.0, delete=0.5, health_delay=1.0)
DRAIN = 'echo "draining $CYCLE_INSTANCE_NAME: $CYCLE_HOOK $CYCLE_ACTION $CYCLE_INSTANCE_ID $CYCLE_ATTEMPT"\n'
SMOKE = '#!/bin/sh\necho "$CYCLE_INSTANCE_NAME answers"\n'


@pytest.fixture(scope='module')
def arm(az, tmp_path_factory):
    with FakeArm(tmp_path_factory.mktemp('arm'), timings=TIMINGS) as server:
        server.env = az_login(az, server)
        yield server


def outdated_set(arm, name, count, up_to_date=()):
    scale_set = arm.add_scale_set('rg', name, count=count, health_extension=True)
    arm.change_model(scale_set)
    for instance_id in up_to_date:
        scale_set.instances[instance_id].life.model_version = scale_set.model_version
    return scale_set


def cycle(az, arm, tmp_path, *args):
    (tmp_path / 'drain.sh').write_text(DRAIN)
    (tmp_path / 'smoke.sh').write_text(SMOKE)
    return az.run('scheduled-events', 'cycle', '-g', 'rg', *args, cwd=tmp_path, **arm.env)


def upgrades(arm, name):
    return [r['body']['instanceIds'] for r in arm.requests('POST', rf'/{name}/manualupgrade$')]


def happenings(arm, prefix):
    """(kind, instance, hook or action) of everything done to the instances named ``prefix``_N, in order."""
    rows = []
    for entry in arm.history.entries:
        if entry.instance.startswith(prefix + '_') and entry.kind != 'run-command-end':
            hook = entry.detail['script'].split(':', 1)[1].split()[0] if entry.kind == 'run-command-start' \
                else entry.detail
            rows.append((entry.instance, hook))
        elif entry.instance.startswith(prefix + '_'):
            rows.append((entry.instance, f'exit {entry.detail}'))
    return rows


def test_update_drains_updates_and_checks_only_the_outdated_one_at_a_time(az, arm, tmp_path):
    outdated_set(arm, 'roll', 5, up_to_date=('1', '3'))
    result = cycle(az, arm, tmp_path, '-n', 'roll', '--action', 'update', '--before-script', 'drain.sh',
                   '--after-script', 'smoke.sh', '--junit', 'cycle.xml')
    assert result.returncode == 0, result
    assert upgrades(arm, 'roll') == [['0'], ['2'], ['4']]                # each alone, by its own id
    expected = []
    for name in ('roll_0', 'roll_2', 'roll_4'):
        expected += [(name, 'before-script'), (name, 'exit 0'), (name, 'update'), (name, 'after-script'),
                     (name, 'exit 0')]
    assert happenings(arm, 'roll') == expected                          # drained, updated, checked, then the next
    assert arm.ledger.max_below() == 1
    rows = {r['name']: r for r in result.json['instances']}
    assert [r['result'] for r in rows.values()] == ['healthy', 'up-to-date', 'healthy', 'up-to-date', 'healthy']
    before = rows['roll_2']['hooks']['before-script']
    assert [(run['exitCode'], run['stdout']) for run in before] == [
        (0, 'draining roll_2: before-script update 2 1')]
    assert rows['roll_4']['hooks']['after-script'][0]['stdout'] == 'roll_4 answers'
    # Healthy again before its after-script started: the smoke test ran on the updated instance.
    after_start = next(e.at for e in arm.history.entries if e.instance == 'roll_0' and e.kind == 'run-command-start'
                       and 'after-script' in e.detail['script'])
    updated = next(e.at for e in arm.history.entries if e.instance == 'roll_0' and e.kind == 'action')
    assert any(updated < at < after_start and 'roll_0' not in below for at, below, _ in arm.ledger.entries)
    suite = ElementTree.parse(tmp_path / 'cycle.xml').getroot().find('testsuite')
    assert (suite.get('tests'), suite.get('failures'), suite.get('skipped')) == ('5', '0', '2')
    cases = {case.get('name'): case for case in suite.iter('testcase')}
    assert float(cases['roll_0'].get('time')) >= TIMINGS.update
    assert 'draining roll_0' in cases['roll_0'].find('system-out').text
    assert cases['roll_1'].find('skipped').get('message').startswith('up to date')


def test_a_failed_before_script_stops_with_that_instance_untouched(az, arm, tmp_path):
    outdated_set(arm, 'drainfail', 3)
    script = 'echo "cannot drain $CYCLE_INSTANCE_ID" >&2\n[ "$CYCLE_INSTANCE_ID" != 1 ] || exit 4\n'
    result = cycle(az, arm, tmp_path, '-n', 'drainfail', '--action', 'update', '--before-script', script,
                   '--after-script', 'smoke.sh')
    assert result.returncode == 1, result
    assert upgrades(arm, 'drainfail') == [['0']]                         # 1 and 2 untouched
    assert [(r['name'], r['result']) for r in result.json['instances']] == [
        ('drainfail_0', 'healthy'), ('drainfail_1', 'failed'), ('drainfail_2', 'skipped')]
    failed = result.json['instances'][1]
    assert failed['reason'] == 'the before-script exited 4; the instance was not touched'
    assert failed['hooks']['before-script'][0]['stderr'] == 'cannot drain 1'
    assert 'drainfail_1: the before-script exited 4' in result.stderr and 'Traceback' not in result.stderr
    assert [name for name, _ in happenings(arm, 'drainfail')].count('drainfail_2') == 0


def test_a_failed_after_script_stops_before_the_next_instance(az, arm, tmp_path):
    outdated_set(arm, 'smokefail', 3)
    result = cycle(az, arm, tmp_path, '-n', 'smokefail', '--action', 'update', '--after-script', 'exit 9',
                   '--junit', 'cycle.xml')
    assert result.returncode == 1, result
    assert upgrades(arm, 'smokefail') == [['0']]
    assert result.json['instances'][0]['reason'] == 'the after-script exited 9 after the update'
    case = ElementTree.parse(tmp_path / 'cycle.xml').getroot().find('testsuite').find('testcase')
    assert case.get('name') == 'smokefail_0' and 'after-script exited 9' in case.find('failure').get('message')


def test_zone_by_zone_over_three_zones(az, arm, tmp_path):
    arm.add_scale_set('rg', 'zonal', count=6, health_extension=True, simulate_vms=False, zones=['1', '2', '3'])
    dry = cycle(az, arm, tmp_path, '-n', 'zonal', '--zone-by-zone', '--max-unavailable', '2', '--dry-run')
    assert dry.json['batches'] == [['0', '3'], ['1', '4'], ['2', '5']] and dry.json['zones']['4'] == '2'
    mark = len(arm.ledger.entries)
    result = cycle(az, arm, tmp_path, '-n', 'zonal', '--zone-by-zone', '--max-unavailable', '2')
    assert result.returncode == 0, result
    zonal = [{zone: names for zone, names in zones.items() if names[0].startswith('zonal_')}
             for _, zones in arm.below_by_zone()[mark:]]
    assert max(len(zones) for zones in zonal) == 1                      # never two zones below 7 at once
    assert [r['zone'] for r in result.json['instances']] == ['1', '2', '3', '1', '2', '3']


def test_an_instance_under_a_started_event_is_held_back(az, arm, tmp_path):
    held = arm.add_scale_set('rg', 'held', count=3, health_extension=True, simulate_vms=False, publish=True)
    event = arm.publish(held, {'EventType': 'Reboot', 'Resources': ['held_0']})['name']
    arm.set_event_status(event, 'Started')
    dry = cycle(az, arm, tmp_path, '-n', 'held', '--respect-maintenance', '--max-unavailable', '2', '--dry-run')
    assert dry.json['underMaintenance'] == ['0'] and 'Route: control-plane' in dry.stderr
    proc = az.popen('scheduled-events', 'cycle', '-g', 'rg', '-n', 'held', '--respect-maintenance',
                    '--max-unavailable', '2', cwd=tmp_path, **arm.env)
    try:
        wait_until(lambda: reimaged(arm, 'held'), timeout=60)
        ended = time.time()
        arm.set_event_status(event, 'Completed')
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    sends = arm.requests('POST', r'/held/virtualMachines/\d+/reimage$')
    assert sends[0]['path'].endswith('/1/reimage')                     # held_0 held back, held_1 went first
    assert [r['time'] >= ended for r in sends if r['path'].endswith('/0/reimage')] == [True]
    assert json.loads(out)['totals']['cycled'] == 3


def reimaged(arm, name):
    return [r['path'].rsplit('/', 2)[-2] for r in arm.requests('POST', rf'/{name}/virtualMachines/\d+/reimage$')]


def test_without_resource_graph_maintenance_is_read_on_the_instances(az, arm, tmp_path):
    scale_set = arm.add_scale_set('rg', 'rc', count=3, health_extension=True)
    vms = [i.vm for i in scale_set.instances.values()]
    event, = vms[0].add_events([{'EventType': 'Reboot', 'Resources': ['rc_0']}])
    for vm in vms[1:]:
        vm.add_events([{'EventType': 'Reboot', 'Resources': ['rc_0'], 'EventId': event}])
    for vm in vms:
        vm.start_events([event])            # under way: every instance's document says Started
    proc = az.popen('scheduled-events', 'cycle', '-g', 'rg', '-n', 'rc', '--respect-maintenance',
                    '--max-unavailable', '2', cwd=tmp_path, **arm.env)
    try:
        wait_until(lambda: reimaged(arm, 'rc'), timeout=60)
        ended = time.time()
        for vm in vms:
            vm.control('DELETE', '/_emulator/events')       # the maintenance is over: the event leaves
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert 'Route: run-command' in err
    sends = arm.requests('POST', r'/rc/virtualMachines/\d+/reimage$')
    assert sends[0]['path'].endswith('/1/reimage')
    assert [r['time'] >= ended for r in sends if r['path'].endswith('/0/reimage')] == [True]
    reads = [r for r in arm.run_commands if r['instance'].startswith('rc_') and 'read Scheduled Events' in r['script']]
    assert 3 <= len(reads) <= 3 * 3                     # every instance, once per batch (at most three here)
