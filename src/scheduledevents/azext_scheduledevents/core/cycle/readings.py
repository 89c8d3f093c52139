# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""What one list of a scale set's instances (instance views expanded) says of each, for the cycle: its
health score, its zone, whether it runs the latest model, and what Run Command needs to reach it."""

from dataclasses import dataclass

from ..fleet import FleetTarget, os_type_of
from ..health import InstanceHealth


@dataclass(frozen=True)
class InstanceReading:
    """One instance as read; ``latest_model`` is None where Compute does not say."""

    health: InstanceHealth
    zone: str | None
    latest_model: bool | None
    os_type: str

    @property
    def instance_id(self):
        return self.health.instance_id

    @property
    def name(self):
        return self.health.name

    @property
    def target(self):
        """Where Run Command runs the hooks."""
        return FleetTarget(name=self.name, instance_id=self.instance_id, os_type=self.os_type,
                           power_state=self.health.power_state)

    @classmethod
    def from_vm(cls, vm):
        """From an azure-mgmt-compute scale-set VM listed with its instance view."""
        zones = getattr(vm, 'zones', None) or []
        return cls(InstanceHealth.from_vm(vm), zones[0] if zones else None,
                   getattr(vm, 'latest_model_applied', None), os_type_of(vm))


def numeric(instance_id):
    """Sort key: instance ids by number ('10' after '9')."""
    return (0, int(instance_id)) if str(instance_id).isdigit() else (1, str(instance_id))
