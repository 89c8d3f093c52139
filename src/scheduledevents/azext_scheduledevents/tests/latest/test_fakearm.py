# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The fake ARM's own model, driven through azure-mgmt-compute: health, reimage over time, scale, delete."""

import time

import pytest

from azext_scheduledevents.core.health import InstanceHealth

from .fakearm.lifecycle import Timings
from .fakearm.server import FakeArm
from .test_fleet import compute_for

FAST = Timings(reimage=0.4, restart=0.2, redeploy=0.4, create=0.4, delete=0.2, health_delay=0.3)


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


def test_reimage_moves_through_real_states_and_the_ledger_sees_it(arm):
    arm.add_scale_set('rg', 'web', count=2, health_extension=True, simulate_vms=False)
    compute = compute_for(arm)
    poller = compute.virtual_machine_scale_set_vms.begin_reimage('rg', 'web', '0', polling_interval=0.05)
    during = healths(compute)['0']
    assert (during.provisioning_state, during.power_state) == ('updating', 'stopped') and during.score == 0
    poller.result()
    after = healths(compute)['0']
    assert (after.score, after.health_state) == (3, 'initializing')
    time.sleep(FAST.health_delay + 0.05)
    assert healths(compute)['0'].score == 7
    assert arm.ledger.max_below() == 1
    assert [r['path'].rsplit('/', 1)[-1] for r in arm.requests('POST')] == ['reimage']


def test_a_failed_operation_is_an_error(arm):
    web = arm.add_scale_set('rg', 'web', count=1, simulate_vms=False)
    web.instances['0'].life.fail_next_operation = True
    from azure.core.exceptions import HttpResponseError
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
