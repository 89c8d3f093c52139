# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Fleet ``list`` and ``approve`` through Azure's control plane: events from Resource Graph, approval
through the Maintenance acknowledge API, with the rows the VM's own commands give plus where each event
belongs. ``send`` is ARM's REST through the caller's authenticated pipeline (``arm.ArmAnswer``).

    rows = list_events(send, subscriptions=['S'], statuses=DEFAULT_STATUSES, now=datetime.now(timezone.utc))
    rows = approve_events(send, target, ['C7061BAC-AFDC-4513-B24B-AA5F13A16123'], force=False, now=...)
"""

from .errors import EventNotFoundError, EventNotScheduledError, PartialApprovalError, PreviewNotEnabledError
from .events import ScheduledEvent, validate_event_id
from .log import get_logger
from .maintenance import acknowledge
from .policy import REGISTER_FEATURE, feature_state
from .resourcegraph import instance_ids, query_events
from .targets import ArmTarget
from .vocabulary import EventStatus, Route, TargetKind

logger = get_logger(__name__)

# What is coming or under way; Completed and Canceled are the history.
DEFAULT_STATUSES = (EventStatus.SCHEDULED, EventStatus.STARTED)
ALL_STATUSES = (EventStatus.SCHEDULED, EventStatus.STARTED, EventStatus.COMPLETED, EventStatus.CANCELED)


def event_row(row, *, now):
    """One Resource Graph row as the VM's ``list`` shows an event, plus Target, SubscriptionId,
    ResourceGroup, Route and, for a scale set, InstanceIds."""
    event = ScheduledEvent.from_wire(row.get('properties') or {})
    target = ArmTarget.from_event_id(row.get('id'))
    view = event.to_view(vm_name=None, now=now)
    view.update(Target=target.id if target else None, SubscriptionId=row.get('subscriptionId'),
                ResourceGroup=row.get('resourceGroup'), Route=str(Route.CONTROL_PLANE))
    if target is not None and target.kind == TargetKind.SCALE_SET:
        view['InstanceIds'] = instance_ids(target, event.resources)
    return view


def list_events(send, *, statuses, now, subscriptions=None, management_groups=None, target=None):
    """The events of every subscription (or those named, or the management groups'), or of ``target``."""
    rows = query_events(send, statuses=[str(s) for s in statuses], subscriptions=subscriptions,
                        management_groups=management_groups, target=target)
    if not rows:
        for subscription in subscriptions or []:
            state = feature_state(send, subscription)
            if state not in (None, 'Registered'):
                logger.warning('No events: the preview that publishes them is %s in subscription %s. Turn it on '
                               'with: %s --subscription %s', state, subscription, REGISTER_FEATURE, subscription)
    return [event_row(row, now=now) for row in rows]


def approve_events(send, target, event_ids, *, force, now):
    """Approve ``event_ids`` of ``target`` -> one row per id, with its status before and after.

    Unless ``force``, each id is looked up first: one that is not ``target``'s, or not Scheduled, raises
    and nothing is sent. A partial failure raises ``PartialApprovalError`` with every id's row.
    """
    ids = [validate_event_id(event_id).upper() for event_id in event_ids]
    before = {} if force else _events_by_id(send, target, now)
    if not force:
        missing = [i for i in ids if i not in before]
        if missing and feature_state(send, target.subscription) not in (None, 'Registered'):
            raise PreviewNotEnabledError(f'{", ".join(missing)} cannot be looked up: the preview that publishes '
                                         f'scheduled events is not registered in subscription {target.subscription}',
                                         feature='SendScheduledEventsPolicy')
        if missing:
            raise EventNotFoundError(f'{", ".join(missing)} is not an event of {target.id} in Resource Graph',
                                     event_ids=missing)
        late = [f'{i} ({before[i]["EventStatus"]})' for i in ids if before[i]['EventStatus'] != EventStatus.SCHEDULED]
        if late:
            raise EventNotScheduledError(f'Only Scheduled events can be approved: {", ".join(late)}', event_ids=ids)
    failures = acknowledge(send, target, ids)
    after = _events_by_id(send, target, now)
    results = [{'EventId': i, 'EventType': (after.get(i) or before.get(i) or {}).get('EventType'),
                'StatusBefore': (before.get(i) or {}).get('EventStatus'),
                'EventStatus': (after.get(i) or {}).get('EventStatus'), 'ApprovalSent': i not in failures,
                'Target': target.id, 'Route': str(Route.CONTROL_PLANE), 'Error': failures.get(i)} for i in ids]
    if failures:
        raise PartialApprovalError(f'{len(failures)} of {len(ids)} events were not approved: '
                                   + '; '.join(f'{i}: {why}' for i, why in failures.items()),
                                   failures=failures, results=results)
    return results


def _events_by_id(send, target, now):
    rows = query_events(send, statuses=[str(s) for s in ALL_STATUSES], subscriptions=[target.subscription],
                        target=target)
    return {view['EventId'].upper(): view for view in (event_row(row, now=now) for row in rows)}
