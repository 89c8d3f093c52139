# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""An instance's health as one bitwise score, from its instance view.

    1  ProvisioningState/succeeded
    2  PowerState/running
    4  HealthState/healthy (the Application Health extension's vmHealth)

7 is healthy. Without the extension, bit 4 cannot be observed and 3 is the most an instance can score.
Initializing and Unknown are not healthy.
"""

from dataclasses import dataclass

PROVISIONED, RUNNING, APP_HEALTHY = 1, 2, 4
HEALTHY = PROVISIONED | RUNNING | APP_HEALTHY


def health_score(provisioning_state, power_state, health_state):
    """The score of an instance; ``health_state`` is ``None`` when there is no Application Health extension."""
    score = PROVISIONED if (provisioning_state or '').lower() == 'succeeded' else 0
    score |= RUNNING if (power_state or '').lower() == 'running' else 0
    score |= APP_HEALTHY if (health_state or '').lower() == 'healthy' else 0
    return score


@dataclass(frozen=True)
class InstanceHealth:
    """What an instance view says of one instance, and its score."""

    name: str
    instance_id: str
    provisioning_state: str | None
    power_state: str | None
    health_state: str | None

    @property
    def score(self):
        return health_score(self.provisioning_state, self.power_state, self.health_state)

    def is_healthy(self, required=HEALTHY):
        """All of ``required``'s bits set: 7, or 3 (PROVISIONED | RUNNING) where bit 4 cannot be observed."""
        return self.score & required == required

    def shortfall(self, required):
        """Why it is not healthy, in words: 'scores 3, needs 7 (ProvisioningState ...)'."""
        return (f'scores {self.score}, needs {required} (ProvisioningState {self.provisioning_state}, '
                f'PowerState {self.power_state}, HealthState {self.health_state})')

    def parts(self):
        return {'ProvisioningState': self.provisioning_state, 'PowerState': self.power_state,
                'HealthState': self.health_state}

    @classmethod
    def from_vm(cls, vm):
        """From an azure-mgmt-compute scale-set VM listed or read with its instance view."""
        view = getattr(vm, 'instance_view', None)
        statuses = getattr(view, 'statuses', None) or []
        provisioning = _status(statuses, 'ProvisioningState/') or getattr(vm, 'provisioning_state', None)
        power = _status(statuses, 'PowerState/')
        vm_health = getattr(getattr(view, 'vm_health', None), 'status', None)
        health = _status([vm_health] if vm_health else [], 'HealthState/')
        return cls(vm.name, vm.instance_id, provisioning, power, health)


def _status(statuses, prefix):
    for status in statuses:
        code = getattr(status, 'code', None) or ''
        if code.startswith(prefix):
            return code.split('/', 2)[1]
    return None
