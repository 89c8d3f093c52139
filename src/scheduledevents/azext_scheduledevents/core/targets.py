# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""What a scheduled event hangs off in Azure's control plane: a scale set, a VM or an availability set.

ARM ids differ in casing between sources (``resourcegroups`` and ``resourceGroups``), so they are parsed
case-insensitively and compared by ``key``.

    target = ArmTarget('S', 'my-rg', TargetKind.SCALE_SET, 'web')
    target.id      # /subscriptions/S/resourceGroups/my-rg/providers/Microsoft.Compute/virtualMachineScaleSets/web
    ArmTarget.from_event_id(row['id'])              # the target of a Resource Graph row
"""

import re
from dataclasses import dataclass

from .vocabulary import TargetKind

_ID = re.compile(r'^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.compute/'
                 r'(?P<kind>virtualmachinescalesets|virtualmachines|availabilitysets)/(?P<name>[^/]+)', re.I)
_KINDS = {kind.value.lower(): kind for kind in TargetKind}


@dataclass(frozen=True)
class ArmTarget:
    """One target: its subscription, resource group, kind and name."""

    subscription: str
    resource_group: str
    kind: TargetKind
    name: str

    @property
    def id(self):
        return (f'/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/'
                f'Microsoft.Compute/{self.kind.value}/{self.name}')

    @property
    def key(self):
        """The id in lower case: equal for every spelling of the same target."""
        return self.id.lower()

    @classmethod
    def from_event_id(cls, resource_id):
        """The target of an ARM id that starts with one (an event's id), or ``None``."""
        match = _ID.match(resource_id or '')
        if match is None:
            return None
        return cls(match['sub'], match['rg'], _KINDS[match['kind'].lower()], match['name'])

    def instance_id(self, resource_name):
        """A scale set's instance id from the name an event's Resources gives it (``web_3`` -> ``'3'``)."""
        prefix = f'{self.name}_'
        if self.kind != TargetKind.SCALE_SET or not resource_name.lower().startswith(prefix.lower()):
            return None
        rest = resource_name[len(prefix):]
        return rest if rest.isdigit() else None
