# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""What the fake ARM knows of Scheduled Events outside the VM (the control-plane contract): the policy in
the model, the events published to Resource Graph (one row per event, updated in place), Resource Graph's
paging and quota. Free of HTTP: ``server.py`` routes requests here.

    store = EventStore()
    row = store.add(event_row('sub', 'rg', 'virtualMachineScaleSets', 'web', {'Resources': ['web_0']}))
    page_of(run(query, {'maintenanceresources': store.rows()}), query, {'$top': 1000})
"""

import base64
import email.utils
import hashlib
import json
import math
import threading
import time
import uuid

SCHEDULED_EVENTS_API_VERSION = '2020-07-01'
EVENT_RESOURCE_TYPE = 'microsoft.maintenance/scheduledevents'
ACKNOWLEDGE_ACTION = 'Microsoft.Maintenance/scheduledevents/acknowledge/action'
FEATURE = 'SendScheduledEventsPolicy'
POLICY_MIN_COMPUTE_API_VERSION = '2024-03-01'     # Compute shows the policy from this api-version on
RESOURCE_GRAPH_API_VERSIONS = frozenset({'2021-03-01', '2022-10-01', '2024-04-01'})
ACKNOWLEDGE_API_VERSIONS = frozenset({'2025-11-01', '2025-10-01-preview', '2023-10-01-preview'})
ACKNOWLEDGE_LIST_API_VERSIONS = frozenset({'2025-11-01', '2025-10-01-preview'})
STATUSES = ('Scheduled', 'Started', 'Completed', 'Canceled')
DEFAULT_TOP, MAX_TOP = 100, 1000
DEFAULT_NOTICE_IN_SECONDS = 15 * 60
# Resource Graph's documented example quota: 15 queries per 5 seconds for each user.
GRAPH_QUOTA, GRAPH_QUOTA_WINDOW_IN_SECONDS = 15, 5.0

_EVENT_FIELDS = ('EventId', 'EventType', 'ResourceType', 'Resources', 'EventStatus', 'NotBefore', 'Description',
                 'EventSource', 'DurationInSeconds')


# The policy (contract section 3) ---------------------------------------------------------------------------

def scheduled_events_policy(*, publish=False, auto_approve_reboot=None, auto_approve_redeploy=None,
                            auto_approve_all_instances_down=None, api_version=SCHEDULED_EVENTS_API_VERSION):
    """``properties.scheduledEventsPolicy`` as Compute serves it, or None when nothing is set.

        scheduled_events_policy(publish=True)
        # {'scheduledEventsAdditionalPublishingTargets': {'eventGridAndResourceGraph':
        #     {'enable': True, 'scheduledEventsApiVersion': '2020-07-01'}}}
    """
    policy = {}
    for key, value in (('userInitiatedRedeploy', auto_approve_redeploy), ('userInitiatedReboot', auto_approve_reboot),
                       ('allInstancesDown', auto_approve_all_instances_down)):
        if value is not None:
            policy[key] = {'automaticallyApprove': bool(value)}
    if publish:
        policy['scheduledEventsAdditionalPublishingTargets'] = {
            'eventGridAndResourceGraph': {'enable': True, 'scheduledEventsApiVersion': api_version}}
    return policy or None


def scheduled_events_profile(*, terminate_timeout=None, os_image_timeout=None):
    """``scheduledEventsProfile`` (``'PT5M'``.. style timeouts; None leaves a notification off), or None."""
    profile = {}
    if terminate_timeout is not None:
        profile['terminateNotificationProfile'] = {'enable': True, 'notBeforeTimeout': terminate_timeout}
    if os_image_timeout is not None:
        profile['osImageNotificationProfile'] = {'enable': True, 'notBeforeTimeout': os_image_timeout}
    return profile or None


def publishes(policy):
    """Whether a ``scheduledEventsPolicy`` sends events to Event Grid and Resource Graph."""
    targets = (policy or {}).get('scheduledEventsAdditionalPublishingTargets') or {}
    return (targets.get('eventGridAndResourceGraph') or {}).get('enable') is True


def shows_policy(compute_api_version):
    return (compute_api_version or '')[:10] >= POLICY_MIN_COMPUTE_API_VERSION


# Events as Resource Graph holds them (contract section 1) --------------------------------------------------

def event_row(subscription, resource_group, kind, name, event, *, tenant, location, zones=None):
    """The ``maintenanceresources`` row of one event of ``kind`` (virtualMachineScaleSets, virtualMachines,
    availabilitySets) ``name``. ``event`` holds IMDS fields; the missing ones get the IMDS emulator's defaults."""
    unknown = set(event) - set(_EVENT_FIELDS)
    if unknown:
        raise ValueError(f'unknown event fields: {", ".join(sorted(unknown))} (known: {", ".join(_EVENT_FIELDS)})')
    status = event.get('EventStatus', 'Scheduled')
    if status not in STATUSES:
        raise ValueError(f'EventStatus {status!r} is not one of {", ".join(STATUSES)}')
    event_id = event.get('EventId') or str(uuid.uuid4()).upper()
    not_before = email.utils.formatdate(time.time() + DEFAULT_NOTICE_IN_SECONDS, usegmt=True) \
        if status == 'Scheduled' else ''
    properties = {'EventId': event_id, 'EventType': 'Reboot', 'ResourceType': 'VirtualMachine', 'Resources': [],
                  'EventStatus': status, 'NotBefore': not_before, 'Description': '', 'EventSource': 'Platform',
                  'DurationInSeconds': -1}
    properties.update(event)
    properties['Resources'] = list(properties['Resources'])
    # The casing of the id as Azure has it: lower-case 'resourcegroups', the providers as registered.
    target = f'/subscriptions/{subscription}/resourcegroups/{resource_group}/providers/Microsoft.Compute/{kind}/{name}'
    return {'id': f'{target}/providers/Microsoft.Maintenance/scheduledevents/{event_id}', 'name': event_id,
            'type': EVENT_RESOURCE_TYPE, 'tenantId': tenant, 'location': location,
            'resourceGroup': resource_group.lower(), 'subscriptionId': subscription, 'zones': zones,
            'properties': properties}


def target_of(row):
    """The lower-cased id of the resource an event hangs off (its row id without the Maintenance part)."""
    return row['id'].lower().split('/providers/microsoft.maintenance/', 1)[0]


class EventStore:
    """The published events by EventId (case-insensitive). A row is never changed in place: a status change
    replaces its ``properties``, so a Resource Graph answer being written is never torn."""

    def __init__(self):
        self._rows = {}
        self._lock = threading.Lock()

    def add(self, row):
        key = row['name'].upper()
        with self._lock:
            if key in self._rows:
                raise ValueError(f'event {row["name"]} is published already')
            self._rows[key] = row
        return row

    def get(self, event_id):
        return self._rows.get(str(event_id).upper())

    def rows(self, subscriptions=None):
        """Every row, or those of ``subscriptions`` (lower-cased ids), in publishing order."""
        with self._lock:
            rows = list(self._rows.values())
        return rows if subscriptions is None else [r for r in rows if r['subscriptionId'].lower() in subscriptions]

    def set_status(self, event_id, status):
        if status not in STATUSES:
            raise ValueError(f'EventStatus {status!r} is not one of {", ".join(STATUSES)}')
        with self._lock:
            row = self._rows.get(str(event_id).upper())
            if row is None:
                raise KeyError(f'no published event {event_id}')
            changes = {'EventStatus': status}
            if status != 'Scheduled':
                changes['NotBefore'] = ''
            row['properties'] = dict(row['properties'], **changes)
        return row

    def start_scheduled(self, event_ids):
        """Move the Scheduled ones among ``event_ids`` to Started, as approving does; the others stay."""
        with self._lock:
            for event_id in event_ids:
                row = self._rows.get(str(event_id).upper())
                if row is not None and row['properties']['EventStatus'] == 'Scheduled':
                    row['properties'] = dict(row['properties'], EventStatus='Started', NotBefore='')


# Resource Graph's paging and quota ---------------------------------------------------------------------------

def page_of(result, query, options):
    """The answer to a query whose evaluated ``result`` (kql.Result) is paged by ``options``; raises
    ValueError for a bad ``$top``, ``$skip`` or ``$skipToken``. A ``$skipToken`` comes back only when more
    rows remain and the output has ``id``; otherwise remaining rows make ``resultTruncated`` "true"."""
    top = options.get('$top', DEFAULT_TOP)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
        raise ValueError(f"$top must be a whole number from 1 to {MAX_TOP}, not {top!r}")
    skip = options.get('$skip', 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise ValueError(f'$skip must be a whole number, 0 or more, not {skip!r}')
    if options.get('$skipToken'):
        skip = _read_skip_token(options['$skipToken'], query)
    rows = result.rows
    page = rows[skip:skip + top]
    answer = {'totalRecords': len(rows), 'count': len(page), 'data': page, 'facets': [], 'resultTruncated': 'false'}
    if skip + len(page) < len(rows):
        if 'id' in result.columns:
            answer['$skipToken'] = _skip_token(skip + len(page), query)
        else:
            answer['resultTruncated'] = 'true'
    return answer


def _query_hash(query):
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def _skip_token(offset, query):
    text = json.dumps({'offset': offset, 'query': _query_hash(query)})
    return base64.urlsafe_b64encode(text.encode()).decode()


def _read_skip_token(token, query):
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = state['offset']
        same_query = state['query'] == _query_hash(query)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(f'$skipToken {token!r} is not one this service gave') from None
    if not same_query or not isinstance(offset, int) or offset < 0:
        raise ValueError('$skipToken belongs to another query: send the same query with it')
    return offset


class GraphQuota:
    """Resource Graph's per-user quota: ``take()`` counts one query and returns (whether it is within the
    quota, the throttling headers, the whole seconds until the quota resets)."""

    def __init__(self, quota=GRAPH_QUOTA, window=GRAPH_QUOTA_WINDOW_IN_SECONDS, clock=time.monotonic):
        self.quota, self.window, self._clock = quota, window, clock
        self._start, self._used = None, 0
        self._lock = threading.Lock()

    def take(self):
        now = self._clock()
        with self._lock:
            if self._start is None or now - self._start >= self.window:
                self._start, self._used = now, 0
            self._used += 1
            used, resets = self._used, self.window - (now - self._start)
        seconds = max(0, math.ceil(resets))
        headers = {'x-ms-user-quota-remaining': str(max(0, self.quota - used)),
                   'x-ms-user-quota-resets-after': f'{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'}
        return used <= self.quota, headers, max(1, seconds)
