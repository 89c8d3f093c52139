# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""A target's Scheduled Events settings in its model (``scheduledEventsPolicy`` and
``scheduledEventsProfile``), the preview feature's registration, and what each follows for this tool:
which route works for which command, and the exact ``az`` command that turns on the ones that do not.

    policy = read_policy(send, ArmTarget('S', 'my-rg', TargetKind.SCALE_SET, 'web'))
    policy.publishes, choose_route(policy, Route.AUTO), policy.to_view()
"""

from dataclasses import dataclass, field
from typing import Optional

from .arm import check
from .errors import ArmError
from .targets import ArmTarget
from .vocabulary import Route, TargetKind

# The first Compute api-version whose models carry the policy; the one read here is newer.
COMPUTE_API_VERSION = '2024-11-01'
FEATURE_NAMESPACE, FEATURE_NAME = 'Microsoft.Compute', 'SendScheduledEventsPolicy'
FEATURES_API_VERSION = '2021-07-01'
REGISTER_FEATURE = f'az feature register --namespace {FEATURE_NAMESPACE} --name {FEATURE_NAME}'
_UPDATE = {TargetKind.SCALE_SET: 'az vmss update -g {rg} -n {name}', TargetKind.VM: 'az vm update -g {rg} -n {name}',
           TargetKind.AVAILABILITY_SET: 'az vm availability-set update -g {rg} -n {name}'}


def _get(obj, *path):
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


@dataclass(frozen=True)
class TargetPolicy:
    """What the model of ``target`` says about Scheduled Events, and the feature's state
    (``Registered``, ``NotRegistered``..., or ``None`` when it could not be read)."""

    target: ArmTarget
    policy: dict = field(default_factory=dict)
    profile: dict = field(default_factory=dict)
    feature_state: Optional[str] = None

    @property
    def publishes(self):
        """Events go to Event Grid and Resource Graph, where the control-plane route reads them."""
        return bool(_get(self.policy, 'scheduledEventsAdditionalPublishingTargets', 'eventGridAndResourceGraph',
                         'enable'))

    def _update(self, flags):
        return _UPDATE[self.target.kind].format(rg=self.target.resource_group, name=self.target.name) + ' ' + flags

    def routes(self):
        """One verdict per command and route: ``{Command, Route, Works, Why, Fix}``."""
        verdicts = []
        control_plane_fix = []
        if self.feature_state != 'Registered':
            control_plane_fix.append(REGISTER_FEATURE)
        if not self.publishes:
            control_plane_fix.append(self._update('--additional-scheduled-events true'))
        why = ('the events are published to Resource Graph' if not control_plane_fix else
               f'the preview feature is {self.feature_state or "not known to be registered"}' if self.publishes
               else 'the policy does not publish events to Resource Graph')
        run_command = self.target.kind != TargetKind.AVAILABILITY_SET
        for command in ('list', 'approve'):
            verdicts.append({'Command': command, 'Route': str(Route.CONTROL_PLANE), 'Works': not control_plane_fix,
                             'Why': why, 'Fix': ' && '.join(control_plane_fix) or None})
            verdicts.append({'Command': command, 'Route': str(Route.RUN_COMMAND), 'Works': run_command,
                             'Why': 'Run Command on every instance' if run_command else
                             'Run Command goes to a scale set or a VM, not an availability set',
                             'Fix': None if run_command else 'use --vm-name for each VM of the availability set'})
        verdicts.append({'Command': 'watch / agent', 'Route': 'imds', 'Works': True,
                         'Why': 'IMDS on the VM shows every event that affects it', 'Fix': None})
        return verdicts

    def to_view(self):
        terminate = _get(self.profile, 'terminateNotificationProfile') or {}
        os_image = _get(self.profile, 'osImageNotificationProfile') or {}
        return {
            'Target': self.target.id,
            'ScheduledEventsPolicy': self.policy,
            'ScheduledEventsProfile': self.profile,
            'PublishesToResourceGraph': self.publishes,
            'TerminateNotification': bool(terminate.get('enable')),
            'TerminateNotBeforeTimeout': terminate.get('notBeforeTimeout'),
            'OsImageNotification': bool(os_image.get('enable')),
            'AutoApproveUserReboot': bool(_get(self.policy, 'userInitiatedReboot', 'automaticallyApprove')),
            'AutoApproveUserRedeploy': bool(_get(self.policy, 'userInitiatedRedeploy', 'automaticallyApprove')),
            'FeatureState': self.feature_state,
            'Routes': self.routes(),
        }


def read_policy(send, target):
    """The target's model and the feature's state -> ``TargetPolicy``. A missing target raises
    ``TargetNotFoundError``; a feature state that cannot be read is ``None``."""
    model = check(send('GET', target.id, query={'api-version': COMPUTE_API_VERSION}),
                  resource_group=target.resource_group,
                  **{_TARGET_FIELD[target.kind]: target.name}).body or {}
    properties = model.get('properties') or {}
    profile = (_get(properties, 'virtualMachineProfile', 'scheduledEventsProfile')
               if target.kind == TargetKind.SCALE_SET else properties.get('scheduledEventsProfile'))
    return TargetPolicy(target, policy=properties.get('scheduledEventsPolicy') or {}, profile=profile or {},
                        feature_state=feature_state(send, target.subscription))


_TARGET_FIELD = {TargetKind.SCALE_SET: 'vmss_name', TargetKind.VM: 'vm_name',
                 TargetKind.AVAILABILITY_SET: 'availability_set'}


def feature_state(send, subscription):
    """The preview feature's registration state in ``subscription`` (``Registered``, ``NotRegistered``...),
    or ``None`` when it cannot be read."""
    path = (f'/subscriptions/{subscription}/providers/Microsoft.Features/providers/{FEATURE_NAMESPACE}/features/'
            f'{FEATURE_NAME}')
    try:
        answer = check(send('GET', path, query={'api-version': FEATURES_API_VERSION}))
    except ArmError:
        return None
    return _get(answer.body, 'properties', 'state')


def choose_route(policy, requested):
    """The route to take: ``requested`` unless ``auto``, which takes the control plane where the target
    publishes to Resource Graph, and Run Command otherwise."""
    if requested != Route.AUTO:
        return Route(requested)
    return Route.CONTROL_PLANE if policy.publishes else Route.RUN_COMMAND
