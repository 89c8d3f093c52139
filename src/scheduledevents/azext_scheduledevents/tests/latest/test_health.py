# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""core/health.py: the bitwise score (1 provisioned | 2 running | 4 app healthy) and InstanceHealth.from_vm."""

from types import SimpleNamespace

import pytest
from azure.mgmt.compute.models import VirtualMachineScaleSetVM

from azext_scheduledevents.core.health import InstanceHealth, health_score


@pytest.mark.parametrize('bits, score', [
    (('succeeded', 'running', 'healthy'), 7), (('succeeded', 'running', None), 3),
    (('updating', 'running', 'healthy'), 6), (('succeeded', 'starting', 'initializing'), 1),
    (('Succeeded', 'running', 'unknown'), 3),
], ids=['healthy', 'no-extension', 'updating', 'starting', 'unknown'])
def test_health_score(bits, score):
    assert health_score(*bits) == score


@pytest.mark.parametrize('bits, score', [
    ((None, None, None), 0),
    (('failed', 'stopped', 'unhealthy'), 0),
    (('succeeded', None, None), 1),
    ((None, 'running', None), 2),
    ((None, None, 'healthy'), 4),
    (('succeeded', 'deallocated', 'healthy'), 5),
    (('creating', 'running', 'unhealthy'), 2),
    (('', '', ''), 0),
], ids=['nothing-known', 'all-bad', 'only-provisioned', 'only-running', 'only-app-healthy', 'deallocated',
        'unhealthy-is-not-healthy', 'empty-strings'])
def test_each_bit_stands_alone(bits, score):
    assert health_score(*bits) == score


@pytest.mark.parametrize('bits', [
    ('SUCCEEDED', 'RUNNING', 'HEALTHY'), ('Succeeded', 'Running', 'Healthy'), ('sUcCeEdEd', 'rUnNiNg', 'hEaLtHy'),
], ids=['upper', 'title', 'mixed'])
def test_values_are_case_insensitive(bits):
    assert health_score(*bits) == 7


@pytest.mark.parametrize('states, required, healthy', [
    (('succeeded', 'running', 'healthy'), 7, True),
    (('succeeded', 'running', None), 7, False),
    (('succeeded', 'running', None), 3, True),
    (('succeeded', 'running', 'unhealthy'), 3, True),
    (('updating', 'running', 'healthy'), 3, False),
    (('succeeded', 'stopped', 'healthy'), 3, False),
    (('succeeded', 'running', 'initializing'), 7, False),
    (('succeeded', 'running', 'unknown'), 7, False),
], ids=['7-of-7', 'no-extension-vs-7', 'no-extension-vs-3', 'app-ignored-at-3', 'updating-vs-3', 'stopped-vs-3',
        'initializing', 'unknown'])
def test_is_healthy(states, required, healthy):
    assert InstanceHealth('web_0', '0', *states).is_healthy(required) is healthy


def test_is_healthy_requires_all_seven_bits_by_default():
    assert InstanceHealth('web_0', '0', 'succeeded', 'running', 'healthy').is_healthy()
    assert not InstanceHealth('web_0', '0', 'succeeded', 'running', None).is_healthy()


def test_score_and_parts_follow_the_fields():
    health = InstanceHealth('web_1', '1', 'succeeded', 'stopped', 'healthy')
    assert health.score == 5
    assert health.parts() == {'ProvisioningState': 'succeeded', 'PowerState': 'stopped', 'HealthState': 'healthy'}


def status(code):
    return SimpleNamespace(code=code)


def sdk_like_vm(statuses=(), vm_health=None, provisioning_state='Succeeded', name='web_3', instance_id='3',
                view=True):
    """A scale-set VM shaped as azure-mgmt-compute's, built from plain attributes."""
    instance_view = None
    if view:
        health = None if vm_health is None else SimpleNamespace(status=status(vm_health))
        instance_view = SimpleNamespace(statuses=[status(code) for code in statuses], vm_health=health)
    return SimpleNamespace(name=name, instance_id=instance_id, provisioning_state=provisioning_state,
                           instance_view=instance_view)


@pytest.mark.parametrize('vm, parts, score', [
    (sdk_like_vm(['ProvisioningState/succeeded', 'PowerState/running'], 'HealthState/healthy'),
     ('succeeded', 'running', 'healthy'), 7),
    (sdk_like_vm(['ProvisioningState/succeeded', 'PowerState/running']), ('succeeded', 'running', None), 3),
    (sdk_like_vm(['PowerState/running']), ('Succeeded', 'running', None), 3),
    (sdk_like_vm(['ProvisioningState/updating', 'PowerState/running'], 'HealthState/healthy'),
     ('updating', 'running', 'healthy'), 6),
    (sdk_like_vm(['ProvisioningState/failed/InternalError', 'PowerState/stopped']), ('failed', 'stopped', None), 0),
    (sdk_like_vm(['ProvisioningState/succeeded', 'PowerState/running'], 'HealthState/initializing'),
     ('succeeded', 'running', 'initializing'), 3),
    (sdk_like_vm(['ProvisioningState/succeeded', 'PowerState/running'], 'HealthState/unhealthy'),
     ('succeeded', 'running', 'unhealthy'), 3),
    (sdk_like_vm(view=False), ('Succeeded', None, None), 1),
    (sdk_like_vm([], provisioning_state=None), (None, None, None), 0),
    (sdk_like_vm(['OSState/generalized', 'PowerState/deallocating', 'ProvisioningState/succeeded']),
     ('succeeded', 'deallocating', None), 1),
], ids=['healthy', 'no-extension', 'provisioning-from-the-model', 'status-wins-over-model', 'sub-status',
        'initializing', 'unhealthy', 'no-instance-view', 'nothing', 'other-statuses-ignored'])
def test_from_vm(vm, parts, score):
    health = InstanceHealth.from_vm(vm)
    assert (health.name, health.instance_id) == ('web_3', '3')
    assert (health.provisioning_state, health.power_state, health.health_state) == parts
    assert health.score == score


def test_from_vm_without_vm_health_attribute_nor_statuses():
    vm = SimpleNamespace(name='web_0', instance_id='0', provisioning_state='Succeeded',
                         instance_view=SimpleNamespace(statuses=None))
    health = InstanceHealth.from_vm(vm)
    assert health.health_state is None and health.score == 1


def test_from_vm_ignores_statuses_without_a_code():
    vm = sdk_like_vm(['PowerState/running'])
    vm.instance_view.statuses.insert(0, SimpleNamespace(code=None))
    vm.instance_view.statuses.insert(0, SimpleNamespace())
    assert InstanceHealth.from_vm(vm).power_state == 'running'


def wire_vm(statuses, vm_health=None, provisioning_state='Succeeded'):
    """A VirtualMachineScaleSetVM deserialized from ARM's JSON, as the SDK hands it over."""
    view = {'statuses': [{'code': code, 'level': 'Info'} for code in statuses]}
    if vm_health:
        view['vmHealth'] = {'status': {'code': vm_health, 'level': 'Info'}}
    return VirtualMachineScaleSetVM.deserialize({
        'name': 'web_4', 'instanceId': '4', 'location': 'eastus',
        'properties': {'provisioningState': provisioning_state, 'instanceView': view}})


@pytest.mark.parametrize('vm, score, healthy_at', [
    (wire_vm(['ProvisioningState/succeeded', 'PowerState/running'], 'HealthState/healthy'), 7, 7),
    (wire_vm(['ProvisioningState/succeeded', 'PowerState/running']), 3, 3),
    (wire_vm(['PowerState/running'], provisioning_state='Updating'), 2, None),
    (wire_vm(['ProvisioningState/succeeded', 'PowerState/starting'], 'HealthState/initializing'), 1, None),
], ids=['healthy', 'no-extension', 'model-updating', 'starting'])
def test_from_real_sdk_models(vm, score, healthy_at):
    health = InstanceHealth.from_vm(vm)
    assert (health.name, health.instance_id, health.score) == ('web_4', '4', score)
    assert health.is_healthy(7) is (healthy_at == 7)
    assert health.is_healthy(3) is (healthy_at in (3, 7))
