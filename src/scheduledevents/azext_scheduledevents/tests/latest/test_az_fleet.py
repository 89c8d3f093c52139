# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The fleet commands end to end: the real az, logged in to the fake ARM with managed identity.

These run only inside a network namespace of their own, which test_az_fleet_in_namespace.py makes
(``unshare -n``) before running this module there: nothing in it can reach beyond loopback.
"""

import json
import os
import signal

import pytest

from .conftest import wait_until
from .fakearm.lifecycle import Timings
from .fakearm.server import FakeArm, az_login

IN_NAMESPACE = os.environ.get('SCHEDULED_EVENTS_TEST_NAMESPACE') == '1'
pytestmark = pytest.mark.skipif(not IN_NAMESPACE, reason='runs inside its own network namespace, '
                                                         'from test_az_fleet_in_namespace.py')


@pytest.fixture(scope='module')
def fleet(az, tmp_path_factory):
    """Scale set web: 0 and 3 share a Reboot, 1 is Windows, 2 is busy, 4's document is 42 KB (read gzipped),
    5's too large for Run Command's window even gzipped."""
    # Reimages slower than az's 2-second health polls, as they are on Azure (minutes).
    timings = Timings(reimage=3.0, health_delay=1.0, create=3.0, delete=0.5)
    with FakeArm(tmp_path_factory.mktemp('arm'), timings=timings) as arm:
        web = arm.add_scale_set('rg', 'web', count=6, os_types={1: 'Windows'})
        reboot, = web.instances['0'].vm.add_events([{'EventType': 'Reboot', 'Resources': ['web_0', 'web_3']}])
        web.instances['3'].vm.add_events([{'EventType': 'Reboot', 'Resources': ['web_0', 'web_3'],
                                          'EventId': reboot}])
        web.instances['2'].busy.acquire()
        # As a large scale set's events name hundreds of instances: 42 KB, 2.1 KB gzipped and in base64.
        web.instances['4'].vm.add_events([{'EventType': 'Freeze', 'Description': 'x' * 600,
                                           'Resources': ['web_4'] + [f'web_{i}' for i in range(100, 500)]}
                                          for _ in range(8)])
        # Random text gzip cannot shrink: 19 KB, 15 KB gzipped and in base64.
        web.instances['5'].vm.add_events([{'EventType': 'Freeze', 'Description': os.urandom(3072).hex()}
                                          for _ in range(3)])
        calm = arm.add_scale_set('rg', 'calm', count=2)
        db = arm.add_vm('rg', 'db1')
        db.vm.add_events([{'EventType': 'Redeploy'}])
        arm.add_scale_set('rg', 'pool', count=2, health_extension=True, simulate_vms=False)
        fragile = arm.add_scale_set('rg', 'fragile', count=3, health_extension=True, simulate_vms=False)
        fragile.instances['0'].life.never_healthy = True
        arm.add_scale_set('rg', 'long', count=3, health_extension=True, simulate_vms=False)
        arm.add_scale_set('rg', 'single', count=1, health_extension=True, simulate_vms=False)
        env = az_login(az, arm)
        yield arm, env, reboot, calm


def az_fleet(az, fleet, *args):
    _, env, _, _ = fleet
    return az.run('scheduled-events', *args, '--only-show-errors', **env)


def test_list_aggregates_the_scale_set_and_reports_each_failure(az, fleet):
    arm, _, reboot, _ = fleet
    result = az_fleet(az, fleet, 'list', '-g', 'rg', '--vmss-name', 'web')
    assert result.returncode == 1, result
    freezes = arm.scale_sets[('rg', 'web')].instances['4'].vm.document()['events']
    assert [(row['Instance'], row['EventId'], row['AffectsThisVm']) for row in result.json] == \
        [('web_0', reboot, True), ('web_3', reboot, True)] + [('web_4', e['EventId'], True) for e in freezes]
    # web_4's document came back whole: every event with all its 401 Resources and its Description.
    wire = [{name: value for name, value in event.items() if name != 'started_seconds_ago'} for event in freezes]
    assert len(json.dumps(wire)) > 40_000 and all(len(event['Resources']) == 401 for event in wire)
    assert [{name: row[name] for name in event} for row, event in zip(result.json[2:], wire)] == wire
    errors = result.stderr.splitlines()
    assert any(line.startswith('ERROR: web_1: ') and 'RunPowerShellScript' in line for line in errors)
    assert any(line.startswith('ERROR: web_2: ') and 'in progress' in line for line in errors)
    assert not any(line.startswith('ERROR: web_4: ') for line in errors)
    assert any(line.startswith('ERROR: web_5: ') and "does not fit in Run Command's 4096-byte output window even "
               'compressed; read it with --route control-plane' in line for line in errors), result.stderr
    assert '3 of 6 instances could not be read' in result.stderr and 'Traceback' not in result.stderr


def test_ignore_errors_and_instance_ids(az, fleet):
    result = az_fleet(az, fleet, 'list', '-g', 'rg', '--vmss-name', 'web', '--ignore-errors', '-o', 'table')
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[0].split()[:2] == ['Instance', 'EventId']
    only = az_fleet(az, fleet, 'list', '-g', 'rg', '--vmss-name', 'web', '--instance-ids', '3')
    assert (only.returncode, [row['Instance'] for row in only.json]) == (0, ['web_3'])


def test_approve_through_one_instance(az, fleet):
    arm, _, _, calm = fleet
    event_id, = calm.instances['1'].vm.add_events([{'EventType': 'Freeze'}])
    result = az_fleet(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'calm', '--event-id', event_id)
    assert result.returncode == 0, result
    assert result.json[0]['EventStatus'] == 'Started' and result.json[0]['Instance'] == 'calm_1'


def test_approve_where_the_document_is_large(az, fleet):
    arm = fleet[0]
    vm = arm.scale_sets[('rg', 'web')].instances['4'].vm
    event_id = vm.document()['events'][-1]['EventId']
    result = az_fleet(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'web', '--instance-id', '4',
                      '--event-id', event_id)
    assert result.returncode == 0, result
    assert [(row['Instance'], row['EventId'], row['EventStatus']) for row in result.json] == \
        [('web_4', event_id, 'Started')]
    assert [e['EventStatus'] for e in vm.document()['events']] == ['Scheduled'] * 7 + ['Started']


def test_a_malicious_event_id_is_refused_before_any_run_command(az, fleet):
    arm = fleet[0]
    before = len(arm.requests('POST', r'/runcommand$'))
    result = az_fleet(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'calm', '--event-id', "x'; reboot; '")
    assert result.returncode != 0 and 'is not an event id' in result.stderr
    assert len(arm.requests('POST', r'/runcommand$')) == before


def test_standalone_vm(az, fleet):
    result = az_fleet(az, fleet, 'list', '-g', 'rg', '--vm-name', 'db1')
    assert result.returncode == 0, result
    assert [(row['Instance'], row['EventType']) for row in result.json] == [('db1', 'Redeploy')]


@pytest.mark.parametrize('args, code, message', [
    (('list', '-g', 'rg', '--vmss-name', 'nope'), 3, 'nope'),
    (('list', '--vmss-name', 'web'), None, '--resource-group/-g is required'),
    (('list', '-g', 'rg', '--vmss-name', 'web', '--vm-name', 'db1'), None, 'exactly one of'),
    (('list', '-g', 'rg', '--vmss-name', 'web', '--instance-ids', '9'), 3, 'no instance 9'),
], ids=['unknown-scale-set', 'no-group', 'both', 'unknown-instance'])
def test_bad_fleet_input(az, fleet, args, code, message):
    result = az_fleet(az, fleet, *args)
    assert result.returncode != 0 and (code is None or result.returncode == code), result
    assert message in result.stderr and 'Traceback' not in result.stderr


def test_a_failed_run_command_is_that_instances_error(az, fleet):
    _, _, _, calm = fleet
    calm.instances['0'].fail_run_command = 'The VM agent is not ready'
    try:
        result = az_fleet(az, fleet, 'list', '-g', 'rg', '--vmss-name', 'calm')
    finally:
        calm.instances['0'].fail_run_command = None
    assert result.returncode == 1, result
    assert 'ERROR: calm_0: (VMExtensionProvisioningError) The VM agent is not ready' in result.stderr
    assert '1 of 2 instances could not be read: calm_0' in result.stderr


def test_cycle_dry_run_changes_nothing(az, fleet):
    arm = fleet[0]
    before = len(arm.requests())
    result = az_fleet(az, fleet, 'cycle', '-g', 'rg', '-n', 'pool', '--dry-run')
    assert result.returncode == 0, result
    assert result.json['order'] == ['0', '1'] and result.json['requiredScore'] == 7
    assert result.json['action'] == 'reimage'          # the default, as a value (not az's default marker)
    assert {r['method'] for r in arm.requests()[before:]} == {'GET'}


def test_cycle_reimages_one_instance_at_a_time(az, fleet):
    arm = fleet[0]
    _, env, _, _ = fleet
    result = az.run('scheduled-events', 'cycle', '-g', 'rg', '-n', 'pool', **env)
    assert result.returncode == 0, result
    results = [(r['name'], r['result'], r['action']) for r in result.json['instances']]
    assert results == [('pool_0', 'healthy', 'reimage'), ('pool_1', 'healthy', 'reimage')]
    assert 'pool_0: reimage sent' in result.stderr and 'pool_1: healthy after' in result.stderr
    reimages = [r['path'] for r in arm.requests('POST') if '/pool/' in r['path']]
    assert [p.rsplit('/', 2)[-2:] for p in reimages] == [['0', 'reimage'], ['1', 'reimage']]


def test_cycle_stops_and_exits_1_when_an_instance_stays_unhealthy(az, fleet):
    arm = fleet[0]
    result = az_fleet(az, fleet, 'cycle', '-g', 'rg', '-n', 'fragile', '--timeout-minutes', '0.1')
    assert result.returncode == 1, result
    assert [r['result'] for r in result.json['instances']] == ['timeout', 'skipped', 'skipped']
    assert 'ERROR: fragile_0: not healthy 6 s after the reimage was sent' in result.stderr
    assert [r['path'].rsplit('/', 2)[-2] for r in arm.requests('POST') if '/fragile/' in r['path']] == ['0']


@pytest.mark.parametrize('args, message', [
    (('--max-unavailable', '0'), '--max-unavailable'),
    (('--resume',), '--state-file'),
    (('--action', 'explode'), 'explode'),
    (('--include-up-to-date',), '--include-up-to-date goes with --action update or --only-outdated'),
    (('--before-script', 'no-such-drain.sh'), '--before-script: no file no-such-drain.sh'),
    (('--after-script', ' '), 'the after-script (inline) is empty'),
], ids=['max-unavailable', 'resume', 'action', 'up-to-date-alone', 'missing-script-file', 'empty-script'])
def test_cycle_refuses_bad_input(az, fleet, args, message):
    result = az_fleet(az, fleet, 'cycle', '-g', 'rg', '-n', 'pool', *args)
    assert result.returncode != 0 and message in result.stderr and 'Traceback' not in result.stderr


def test_cycle_killed_mid_run_then_resumed(az, fleet, tmp_path):
    arm, env, _, _ = fleet
    state = tmp_path / 'cycle.json'
    args = ('scheduled-events', 'cycle', '-g', 'rg', '-n', 'long', '--state-file', str(state), '--only-show-errors')
    proc = az.popen(*args, **env)
    wait_until(lambda: state.exists() and json.loads(state.read_text())['finished'] == ['0'], timeout=60)
    proc.kill()
    proc.communicate()
    # The fake's states move when someone looks: look until the interrupted reimage is over.
    long_set = arm.scale_sets[('rg', 'long')]
    wait_until(lambda: arm.advance() or all(i.life.is_healthy() for i in long_set.instances.values()), timeout=60)
    before = len(arm.requests('POST'))
    result = az.run(*args, '--resume', **env)
    assert result.returncode == 0, result
    assert [r['result'] for r in result.json['instances']][0] == 'done-before-resume'
    resent = [r['path'].rsplit('/', 2)[-2] for r in arm.requests('POST')[before:] if '/long/' in r['path']]
    assert '0' not in resent and resent == sorted(resent)


def test_ctrl_c_scales_the_added_instance_back(az, fleet):
    arm, env, _, _ = fleet
    proc = az.popen('scheduled-events', 'cycle', '-g', 'rg', '-n', 'single', '--only-show-errors', **env)
    wait_until(lambda: arm.requests('PATCH', r'/single$'), timeout=60)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    deletes = [r['path'] for r in arm.requests('DELETE') if '/single/' in r['path']]
    assert deletes == [deletes[0]] and deletes[0].endswith('/virtualMachines/1')
