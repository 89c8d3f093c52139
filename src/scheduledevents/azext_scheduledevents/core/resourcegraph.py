# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Scheduled events from Azure Resource Graph: the query (built here and nowhere else) and its paging.

Azure publishes each event of a target whose policy says so as one row of the ``maintenanceresources``
table, updated in place (Scheduled, Started, then Completed or Canceled, which IMDS never shows). One
query covers every subscription a login sees; ``$skipToken`` pages follow until none comes (the query
projects ``id``, without which no token is given). A target is filtered in the query itself.

    rows = query_events(send, subscriptions=['S'], statuses=['Scheduled', 'Started'],
                        target=ArmTarget('S', 'my-rg', TargetKind.SCALE_SET, 'web'))
    rows[0]['properties']['EventId'], ArmTarget.from_event_id(rows[0]['id'])
"""

from .arm import check
from .errors import GraphQueryError
from .targets import ArmTarget
from .vocabulary import TargetKind

GRAPH_PATH = '/providers/Microsoft.ResourceGraph/resources'
GRAPH_API_VERSION = '2021-03-01'
PAGE_SIZE = 1000                 # Resource Graph's largest $top
EVENTS_TYPE = 'microsoft.maintenance/scheduledevents'


def _quote(text):
    """A KQL string literal."""
    return "'" + str(text).replace('\\', '\\\\').replace("'", "\\'") + "'"


def events_query(*, statuses, target=None):
    """The KQL for the events with ``statuses``, of ``target`` only when given (its resource group, kind
    and name are each a term of the row's id)."""
    clauses = [f'type == {_quote(EVENTS_TYPE)}',
               f'tostring(properties.EventStatus) in ({", ".join(_quote(s) for s in statuses)})']
    if target is not None:
        clauses += [f'subscriptionId =~ {_quote(target.subscription)}',
                    f'resourceGroup =~ {_quote(target.resource_group)}',
                    f'id has {_quote(target.kind.value)}', f'id has {_quote(target.name)}']
    return ('maintenanceresources | where ' + ' and '.join(clauses)
            + ' | project id, name, subscriptionId, resourceGroup, properties | order by id asc')


def query_events(send, *, statuses, subscriptions=None, management_groups=None, target=None):
    """Every row of the query, following ``$skipToken``; rows of another target than ``target`` (a name
    that is also a term of another id) are dropped, so the answer is exact."""
    body = {'query': events_query(statuses=statuses, target=target),
            'options': {'$top': PAGE_SIZE, 'resultFormat': 'objectArray'}}
    if subscriptions:
        body['subscriptions'] = list(subscriptions)
    if management_groups:
        body['managementGroups'] = list(management_groups)
    rows = []
    while True:
        answer = send('POST', GRAPH_PATH, query={'api-version': GRAPH_API_VERSION}, body=body)
        if answer.status == 400:
            code, message = answer.error()
            raise GraphQueryError(f'Resource Graph refused the query: ({code}) {message}', status=400, code=code)
        page = check(answer).body or {}
        rows.extend(page.get('data') or [])
        token = page.get('$skipToken')
        if not token:
            break
        body['options'] = dict(body['options'], **{'$skipToken': token})
    if target is not None:
        rows = [row for row in rows if getattr(ArmTarget.from_event_id(row.get('id')), 'key', None) == target.key]
    return rows


def instance_ids(target, resources):
    """A scale set's instance ids for an event's Resources (names such as ``web_3``); empty for others."""
    if target is None or target.kind != TargetKind.SCALE_SET:
        return []
    return [i for i in (target.instance_id(name) for name in resources) if i is not None]
