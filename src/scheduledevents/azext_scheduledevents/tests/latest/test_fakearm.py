# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The fake ARM's own model, driven through azure-mgmt-compute: health, reimage over time, scale, delete, the
scale set's model and manual upgrade, zones, and the history of actions and Run Commands."""

import time
from dataclasses import replace

import pytest

from azure.core.exceptions import HttpResponseError

from azext_scheduledevents.core.health import InstanceHealth

from .conftest import require_namespaces
from .fakearm.lifecycle import Timings
from .fakearm.server import FakeArm
from .test_fleet import compute_for

FAST = Timings(reimage=0.4, restart=0.2, redeploy=0.4, update=0.4, create=0.4, delete=0.2, health_delay=0.3)


@pytest.fixture
def arm(tmp_path):
    with FakeArm(tmp_path, timings=FAST) as server:
        yield server


def healths(compute):
    return {vm.instance_id: InstanceHealth.from_vm(vm)
            for vm in compute.virtual_machine_scale_set_vms.list('rg', 'web', expand='instanceView')}


def test_health_extension_shows_in_the_model_and_the_instance_views(arm):
    arm.add_scale_set('rg', 'web', count=2, health_extension=True, simulate_vms=False)
    compute = compute_for(arm)
    model = compute.virtual_machine_scale_sets.get('rg', 'web')
    assert [e.type_properties_type for e in model.virtual_machine_profile.extension_profile.extensions] == \
        ['ApplicationHealthLinux']
    assert {i: h.score for i, h in healths(compute).items()} == {'0': 7, '1': 7}


def test_reimage_moves_through_real_states_and_the_ledger_sees_it(tmp_path):
    # Slower than FAST, so that a loaded machine still reads each state in time: stopped for 0.8 of the
    # reimage (1.2 s), initializing for 1 s.
    timings = replace(FAST, reimage=1.5, health_delay=1.0)
    with FakeArm(tmp_path, timings=timings) as arm:
        arm.add_scale_set('rg', 'web', count=2, health_extension=True, simulate_vms=False)
        compute = compute_for(arm)
        poller = compute.virtual_machine_scale_set_vms.begin_reimage('rg', 'web', '0', polling_interval=0.05)
        during = healths(compute)['0']
        assert (during.provisioning_state, during.power_state) == ('updating', 'stopped') and during.score == 0
        poller.result()
        after = healths(compute)['0']
        assert (after.score, after.health_state) == (3, 'initializing')
        time.sleep(timings.health_delay + 0.05)
        assert healths(compute)['0'].score == 7
        assert arm.ledger.max_below() == 1
        assert [r['path'].rsplit('/', 1)[-1] for r in arm.requests('POST')] == ['reimage']


def test_a_failed_operation_is_an_error(arm):
    web = arm.add_scale_set('rg', 'web', count=1, simulate_vms=False)
    web.instances['0'].life.fail_next_operation = True
    with pytest.raises(HttpResponseError):
        compute_for(arm).virtual_machine_scale_set_vms.begin_reimage('rg', 'web', '0', polling_interval=0.05).result()
    assert healths(compute_for(arm))['0'].provisioning_state == 'failed'


def test_scale_out_and_back(arm):
    arm.add_scale_set('rg', 'web', count=1, health_extension=True, simulate_vms=False)
    compute = compute_for(arm)
    compute.virtual_machine_scale_sets.begin_update('rg', 'web', {'sku': {'capacity': 2}},
                                                    polling_interval=0.05).result()
    time.sleep(FAST.health_delay + 0.05)
    assert {i: h.score for i, h in healths(compute).items()} == {'0': 7, '1': 7}
    compute.virtual_machine_scale_sets.begin_update('rg', 'web', {'sku': {'capacity': 1}},
                                                    polling_interval=0.05).result()
    time.sleep(FAST.delete + 0.05)
    assert list(healths(compute)) == ['0']
    assert compute.virtual_machine_scale_sets.get('rg', 'web').sku.capacity == 1


def test_delete_one_instance(arm):
    arm.add_scale_set('rg', 'web', count=3, simulate_vms=False)
    compute = compute_for(arm)
    compute.virtual_machine_scale_set_vms.begin_delete('rg', 'web', '1', polling_interval=0.05).result()
    time.sleep(0.05)
    assert sorted(healths(compute)) == ['0', '2']


def test_without_the_extension_there_is_no_vm_health(arm):
    arm.add_scale_set('rg', 'web', count=1, simulate_vms=False)
    health = healths(compute_for(arm))['0']
    assert (health.health_state, health.score) == (None, 3)


def latest(compute):
    return {vm.instance_id: vm.latest_model_applied for vm in compute.virtual_machine_scale_set_vms.list('rg', 'web')}


def upgrade(compute, *instance_ids):
    return compute.virtual_machine_scale_sets.begin_update_instances('rg', 'web', {'instance_ids': list(instance_ids)},
                                                                     polling_interval=0.05)


def test_a_manual_upgrade_brings_only_the_named_instance_to_the_model(arm):
    web = arm.add_scale_set('rg', 'web', count=3, health_extension=True, simulate_vms=False)
    compute = compute_for(arm)
    assert latest(compute) == {'0': True, '1': True, '2': True}
    arm.change_model(web)
    assert latest(compute) == {'0': False, '1': False, '2': False}
    poller = upgrade(compute, '1')
    during = healths(compute)
    assert (during['1'].provisioning_state, during['1'].power_state) == ('updating', 'running')
    assert during['1'].score < 7 and during['0'].score == during['2'].score == 7
    assert latest(compute)['1'] is False                    # only once the operation is over
    poller.result()
    assert latest(compute) == {'0': False, '1': True, '2': False}
    request, = arm.requests('POST', r'/manualupgrade$')
    assert request['body'] == {'instanceIds': ['1']}
    assert [(h.kind, h.instance, h.detail) for h in arm.history.entries] == [('action', 'web_1', 'update')]
    assert arm.ledger.max_below() == 1


def test_star_upgrades_all_to_the_model_of_when_it_started(arm):
    """A model changed during the upgrade is not the one it applies: the instances are outdated again."""
    web = arm.add_scale_set('rg', 'web', count=3, simulate_vms=False)
    compute = compute_for(arm)
    arm.change_model(web)
    upgrade(compute, '*').result()
    assert latest(compute) == {'0': True, '1': True, '2': True}
    poller = upgrade(compute, '*')
    arm.change_model(web)
    poller.result()
    assert latest(compute) == {'0': False, '1': False, '2': False}
    assert [i.life.model_version for i in web.instances.values()] == [1, 1, 1] and web.model_version == 2


def test_a_manual_upgrade_refuses_what_is_not_an_instance_and_starts_nothing(arm):
    arm.add_scale_set('rg', 'web', count=2, simulate_vms=False)
    compute = compute_for(arm)
    with pytest.raises(HttpResponseError) as raised:
        upgrade(compute, '0', '7')
    assert raised.value.status_code == 404 and "'7'" in raised.value.message and "'0'" not in raised.value.message
    with pytest.raises(HttpResponseError) as raised:
        upgrade(compute)
    assert (raised.value.status_code, raised.value.error.code) == (400, 'InvalidParameter')
    assert arm.history.entries == [] and {h.provisioning_state for h in healths(compute).values()} == {'succeeded'}


def test_a_patch_of_the_profile_is_a_new_model_and_scale_out_runs_it(arm):
    arm.add_scale_set('rg', 'web', count=2, simulate_vms=False)
    compute = compute_for(arm)
    profile = {'storage_profile': {'image_reference': {'version': '2.0.0'}}}
    compute.virtual_machine_scale_sets.begin_update('rg', 'web', {'virtual_machine_profile': profile},
                                                    polling_interval=0.05).result()
    assert latest(compute) == {'0': False, '1': False}
    compute.virtual_machine_scale_sets.begin_update('rg', 'web', {'sku': {'capacity': 3}, 'virtual_machine_profile':
                                                                  profile}, polling_interval=0.05).result()
    assert latest(compute) == {'0': False, '1': False, '2': True}
    assert compute.virtual_machine_scale_sets.get('rg', 'web').sku.capacity == 3
    with pytest.raises(HttpResponseError) as raised:
        compute.virtual_machine_scale_sets.begin_update('rg', 'web', {'tags': {'a': 'b'}}, polling_interval=0.05)
    assert raised.value.status_code == 400


def test_a_reimage_applies_the_model_and_a_restart_or_a_failed_reimage_does_not(arm):
    web = arm.add_scale_set('rg', 'web', count=3, simulate_vms=False)
    compute = compute_for(arm)
    arm.change_model(web)
    web.instances['2'].life.fail_next_operation = True
    vms = compute.virtual_machine_scale_set_vms
    pollers = [vms.begin_restart('rg', 'web', '0', polling_interval=0.05),
               vms.begin_reimage('rg', 'web', '1', polling_interval=0.05),
               vms.begin_reimage('rg', 'web', '2', polling_interval=0.05)]
    pollers[0].result()
    pollers[1].result()
    with pytest.raises(HttpResponseError):
        pollers[2].result()
    assert latest(compute) == {'0': False, '1': True, '2': False}


def test_a_zonal_scale_set_spreads_its_instances_round_robin(arm):
    arm.add_scale_set('rg', 'web', count=4, zones=['1', '2', '3'], health_extension=True, simulate_vms=False)
    compute = compute_for(arm)
    assert compute.virtual_machine_scale_sets.get('rg', 'web').zones == ['1', '2', '3']
    compute.virtual_machine_scale_sets.begin_update('rg', 'web', {'sku': {'capacity': 5}},
                                                    polling_interval=0.05).result()
    zones = {vm.instance_id: vm.zones for vm in compute.virtual_machine_scale_set_vms.list('rg', 'web')}
    assert zones == {'0': ['1'], '1': ['2'], '2': ['3'], '3': ['1'], '4': ['2']}
    time.sleep(FAST.health_delay + 0.05)
    compute.virtual_machine_scale_sets.begin_update('rg', 'web', {'sku': {'capacity': 4}},
                                                    polling_interval=0.05).result()
    time.sleep(FAST.delete + 0.05)
    healths(compute)                                         # the deletion is seen
    assert arm.zone_of('web_4') == '2' and arm.zone_of('web_0') == '1' and arm.zone_of('db_0') is None
    assert [below for _, below in arm.below_by_zone()] == [{}, {'2': ['web_4']}, {}, {'2': ['web_4']}, {}]


def test_a_run_command_that_cannot_run_ends_with_its_failure(arm):
    arm.add_scale_set('rg', 'web', count=1, simulate_vms=False)
    with pytest.raises(HttpResponseError):
        compute_for(arm).virtual_machine_scale_set_vms.begin_run_command(
            'rg', 'web', '0', {'command_id': 'RunShellScript', 'script': ['true']}, polling_interval=0.05).result()
    run, = arm.run_commands
    assert (run['exit_code'], run['ended'] >= run['started']) == (None, True) and 'no Linux VM' in run['failure']
    assert [(h.kind, h.detail) for h in arm.history.entries] == [
        ('run-command-start', {'script': 'true', 'parameters': {}}), ('run-command-end', run['failure'])]


def test_the_history_has_hooks_and_actions_in_the_order_they_happened(arm):
    """What a test of before/after hooks reads: each Run Command ends before the action, which starts the next."""
    require_namespaces()
    arm.add_scale_set('rg', 'web', count=1)
    compute = compute_for(arm)

    def hook(script, **parameters):
        compute.virtual_machine_scale_set_vms.begin_run_command('rg', 'web', '0', {
            'command_id': 'RunShellScript', 'script': script,
            'parameters': [{'name': k, 'value': v} for k, v in parameters.items()]}, polling_interval=0.05).result()
    hook(['echo "$PHASE"'], PHASE='before')
    upgrade(compute, '0').result()
    hook(['echo "$PHASE"', 'exit 3'], PHASE='after')
    assert [(h.kind, h.instance, h.detail) for h in arm.history.entries] == [
        ('run-command-start', 'web_0', {'script': 'echo "$PHASE"', 'parameters': {'PHASE': 'before'}}),
        ('run-command-end', 'web_0', 0),
        ('action', 'web_0', 'update'),
        ('run-command-start', 'web_0', {'script': 'echo "$PHASE"\nexit 3', 'parameters': {'PHASE': 'after'}}),
        ('run-command-end', 'web_0', 3)]
    times = [h.at for h in arm.history.entries]
    assert times == sorted(times)
    assert [{k: r[k] for k in ('instance', 'instance_id', 'parameters', 'exit_code', 'failure')}
            for r in arm.run_commands] == [
        {'instance': 'web_0', 'instance_id': '0', 'parameters': {'PHASE': 'before'}, 'exit_code': 0, 'failure': None},
        {'instance': 'web_0', 'instance_id': '0', 'parameters': {'PHASE': 'after'}, 'exit_code': 3, 'failure': None}]
    assert arm.run_commands[0]['ended'] < times[2] < arm.run_commands[1]['started']
