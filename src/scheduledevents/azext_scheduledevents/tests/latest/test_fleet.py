# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The fan-out in-process: azure-mgmt-compute against the fake ARM, whose Run Command really runs the
scripts inside each simulated VM's network namespace against that VM's IMDS emulator."""

import os
import time

import pytest

from azext_scheduledevents.core.config import FanoutSettings
from azext_scheduledevents.core.errors import (EventNotFoundError, InvalidEventIdError, RunCommandOutputError,
                                               TargetNotFoundError)
from azext_scheduledevents.core.fleet import Fleet
from azext_scheduledevents.core.runcommand import approve_script, parse_output, read_script

from .conftest import require_namespaces
from .fakearm.server import FakeArm

API = '2020-07-01'


class StaticCredential:
    """A bearer token for the fake ARM, which checks none."""

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken
        return AccessToken('fake-token', int(time.time()) + 3600)


@pytest.fixture
def arm(tmp_path):
    require_namespaces()
    with FakeArm(tmp_path) as server:
        yield server


def compute_for(arm):
    from azure.mgmt.compute import ComputeManagementClient
    return ComputeManagementClient(StaticCredential(), arm.subscription, base_url=arm.url,
                                   connection_verify=str(arm.certs.ca), credential_scopes=[arm.url + '/.default'])


def run_commands(arm):
    return arm.requests('POST', r'/runcommand$')


def test_reads_every_instance_concurrently(arm):
    scale_set = arm.add_scale_set('rg', 'web', count=5)
    reboot, = scale_set.instances['1'].vm.add_events([{'EventType': 'Reboot', 'Resources': ['web_1', 'web_3']}])
    scale_set.instances['3'].vm.add_events([{'EventType': 'Reboot', 'Resources': ['web_1', 'web_3'],
                                            'EventId': reboot}])
    fleet = Fleet(compute_for(arm), 'rg', vmss_name='web')
    results = fleet.read(fleet.targets(), api_version=API)
    assert [r.target.name for r in results] == [f'web_{i}' for i in range(5)]
    assert all(r.ok for r in results) and [r.vm_name for r in results] == [f'web_{i}' for i in range(5)]
    assert [[e.event_id for e in r.document.events] for r in results] == [[], [reboot], [], [reboot], []]
    assert {r['body']['commandId'] for r in run_commands(arm)} == {'RunShellScript'}


def test_polls_compute_without_waiting_30_seconds(arm):
    arm.add_scale_set('rg', 'web', count=1)
    started = time.monotonic()
    fleet = Fleet(compute_for(arm), 'rg', vmss_name='web')
    assert fleet.read(fleet.targets(), api_version=API)[0].ok
    assert time.monotonic() - started < 10          # the SDK's default for a 202 without Retry-After is 30 s


def test_one_failing_instance_never_stops_the_others(arm):
    scale_set = arm.add_scale_set('rg', 'web', count=6, os_types={1: 'Windows'})
    scale_set.instances['2'].fail_run_command = 'VM agent is not ready'
    scale_set.instances['3'].life.power_state = 'deallocated'
    scale_set.instances['4'].hang_run_command = True
    # Random text: too large for Run Command's output window even gzipped.
    scale_set.instances['5'].vm.add_events([{'EventType': 'Freeze', 'Description': os.urandom(3072).hex()}
                                            for _ in range(3)])
    # The timeout applies to every instance: the healthy ones (nsenter, sh and curl, six at once) need room too.
    fleet = Fleet(compute_for(arm), 'rg', vmss_name='web', settings=FanoutSettings(instance_timeout_in_seconds=8))
    results = {r.target.name: r for r in fleet.read(fleet.targets(), api_version=API)}
    assert results['web_0'].ok
    assert 'RunPowerShellScript' in results['web_1'].error
    assert 'VM agent is not ready' in results['web_2'].error
    assert results['web_3'].error == 'the VM is deallocated, not running'
    assert 'did not finish within 8 s' in results['web_4'].error
    assert "does not fit in Run Command's 4096-byte output window even compressed" in results['web_5'].error
    windows, = [r for r in run_commands(arm) if r['path'].endswith('/1/runCommand')]
    assert windows['body']['commandId'] == 'RunPowerShellScript'
    assert not [r for r in run_commands(arm) if r['path'].endswith('/3/runCommand')]


def test_a_busy_instance_is_reported(arm):
    scale_set = arm.add_scale_set('rg', 'web', count=2)
    scale_set.instances['0'].busy.acquire()          # another Run Command is running there
    fleet = Fleet(compute_for(arm), 'rg', vmss_name='web')
    busy, free = fleet.read(fleet.targets(), api_version=API)
    assert 'Run command extension execution is in progress' in busy.error and free.ok


def test_max_parallel_bounds_the_work_in_flight(tmp_path):
    require_namespaces()
    with FakeArm(tmp_path, run_command_latency=0.6) as arm:
        arm.add_scale_set('rg', 'web', count=6)
        settings = FanoutSettings(max_parallel=2, poll_interval_in_seconds=0.1)
        fleet = Fleet(compute_for(arm), 'rg', vmss_name='web', settings=settings)
        started = time.monotonic()
        assert all(r.ok for r in fleet.read(fleet.targets(), api_version=API))
        elapsed = time.monotonic() - started
    assert 1.8 <= elapsed < 12                         # three rounds of 0.6 s, not one


def test_approve_on_one_instance(arm):
    scale_set = arm.add_scale_set('rg', 'web', count=2)
    event_id, = scale_set.instances['1'].vm.add_events([{'EventType': 'Reboot'}])
    fleet = Fleet(compute_for(arm), 'rg', vmss_name='web')
    target = fleet.targets(['1'])[0]
    after = fleet.approve(target, [event_id], api_version=API)
    assert after.document.get(event_id).event_status == 'Started'
    post, = [r for r in scale_set.instances['1'].vm.requests() if r['method'] == 'POST']
    assert post['body'] == '{"StartRequests":[{"EventId":"%s"}]}' % event_id


def test_a_malicious_id_never_reaches_a_script(arm):
    arm.add_scale_set('rg', 'web', count=1)
    fleet = Fleet(compute_for(arm), 'rg', vmss_name='web')
    target = fleet.targets()[0]
    with pytest.raises(InvalidEventIdError):
        fleet.approve(target, ["x'; rm -rf / #"], api_version=API)
    assert run_commands(arm) == []


def test_standalone_vm(arm):
    vm = arm.add_vm('rg', 'db1')
    vm.vm.add_events([{'EventType': 'Redeploy'}])
    fleet = Fleet(compute_for(arm), 'rg', vm_name='db1')
    result, = fleet.read(fleet.targets(), api_version=API)
    assert (result.target.instance_id, result.vm_name) == (None, 'db1')
    assert [e.event_type for e in result.document.events] == ['Redeploy']


@pytest.mark.parametrize('kwargs, message', [
    ({'vmss_name': 'nope'}, 'nope'),
    ({'vm_name': 'nope'}, 'nope'),
], ids=['scale-set', 'vm'])
def test_unknown_targets(arm, kwargs, message):
    with pytest.raises(TargetNotFoundError, match=message):
        Fleet(compute_for(arm), 'rg', **kwargs).targets()


def test_unknown_instance_ids(arm):
    arm.add_scale_set('rg', 'web', count=2)
    with pytest.raises(TargetNotFoundError, match='no instance 7'):
        Fleet(compute_for(arm), 'rg', vmss_name='web').targets(['0', '7'])


def result_with(stdout, stderr=''):
    return {'value': [{'code': 'ProvisioningState/succeeded',
                       'message': f'Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n{stderr}'}]}


def test_windows_output_parsing_only_no_powershell_here():
    # RunPowerShellScript output: CRLF line ends, as Windows writes them.
    stdout = ('@@se name 200@@ web_2\r\n@@se doc 200@@ {"DocumentIncarnation":4,"Events":[]}\r\n'
              '@@se end@@\r\n')
    answers = parse_output(result_with(stdout))
    assert answers['name'] == (200, 'web_2') and answers['doc'][0] == 200


@pytest.mark.parametrize('stdout, message', [
    ('"Events":[]}\n@@se end@@', 'beginning was cut off'),
    ('@@se name 200@@ web_0\n', 'did not finish'),
    ('@@se name 200@@ web_0\n@@se doc-too-large@@ 9000\n@@se end@@', '9000 bytes'),
], ids=['cut', 'unfinished', 'too-large'])
def test_output_that_cannot_be_read(stdout, message):
    with pytest.raises(RunCommandOutputError, match=message):
        parse_output(result_with(stdout))


def test_windows_script_text_only_no_powershell_here():
    command, lines = read_script('Windows')
    script = '\n'.join(lines)
    assert command == 'RunPowerShellScript'
    assert 'GetEmptyWebProxy()' in script and "Headers.Add('Metadata', 'true')" in script
    assert "Say 'doc' 'http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01'" in script


def test_approve_scripts_carry_only_validated_ids():
    guid = 'C7061BAC-AFDC-4513-B24B-AA5F13A16123'
    for os_type in ('Linux', 'Windows'):
        _, lines = approve_script(os_type, [guid])
        assert '{"StartRequests":[{"EventId":"%s"}]}' % guid in '\n'.join(lines)
    with pytest.raises(InvalidEventIdError):
        approve_script('Linux', ["'$(reboot)'"])


def test_throttling_is_ridden_out(arm):
    arm.add_scale_set('rg', 'web', count=2)
    arm.add_fault(method='POST', path=r'/runcommand$', status=429, count=2, retry_after=1)
    arm.add_fault(method='GET', path=r'/operations/', status=500, count=1)
    fleet = Fleet(compute_for(arm), 'rg', vmss_name='web')
    assert all(r.ok for r in fleet.read(fleet.targets(), api_version=API))
    assert len(run_commands(arm)) == 4                  # two throttled, then one each


def test_approve_where_seen_prefers_an_instance_the_event_names(arm):
    scale_set = arm.add_scale_set('rg', 'web', count=3)
    event_id, = scale_set.instances['0'].vm.add_events([{'EventType': 'Reboot', 'Resources': ['web_2']}])
    scale_set.instances['2'].vm.add_events([{'EventType': 'Reboot', 'Resources': ['web_2'], 'EventId': event_id}])
    fleet = Fleet(compute_for(arm), 'rg', vmss_name='web')
    results, chosen, after, approvals = fleet.approve_where_seen(fleet.targets(), [event_id], api_version=API)
    assert len(results) == 3 and chosen.target.name == 'web_2'
    assert after.document.get(event_id).event_status == 'Started'
    assert [(a.event_id, a.status_before, a.status_after, a.sent) for a in approvals] == \
        [(event_id, 'Scheduled', 'Started', True)]
    with pytest.raises(EventNotFoundError, match='web_1'):
        fleet.approve_where_seen(fleet.targets(['1']), [event_id], api_version=API)


def test_approving_on_one_instance_starts_the_event_for_every_vm_it_names(arm):
    scale_set = arm.add_scale_set('rg', 'web', count=3)
    event = {'EventType': 'Reboot', 'Resources': ['web_0', 'web_2']}
    event_id, = scale_set.instances['0'].vm.add_events([event])
    scale_set.instances['2'].vm.add_events([dict(event, EventId=event_id)])
    fleet = Fleet(compute_for(arm), 'rg', vmss_name='web')
    fleet.approve(fleet.targets(['0'])[0], [event_id], api_version=API)
    status = {r.target.name: r.document.get(event_id) and r.document.get(event_id).event_status
              for r in fleet.read(fleet.targets(), api_version=API)}
    assert status == {'web_0': 'Started', 'web_1': None, 'web_2': 'Started'}
