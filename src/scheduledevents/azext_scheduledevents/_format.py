# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Table transformers for ``-o table``."""


def _yes_no(value):
    return '' if value is None else ('yes' if value else 'no')


def transform_event_table(result):
    """Events (a list, one event, or a ``--document``) as rows a person can scan."""
    if isinstance(result, dict):
        result = result.get('Events', [result])
    if result and 'DocumentIncarnation' in result[0]:
        # A fleet's --document: one document per instance.
        result = [dict(event, Instance=doc['Instance']) for doc in result for event in doc['Events']]
    return [{
        **({'Instance': event['Instance']} if 'Instance' in event else {}),
        'EventId': event.get('EventId'),
        'Type': event.get('EventType'),
        'Status': event.get('EventStatus'),
        'NotBefore': event.get('NotBefore'),
        'SecondsLeft': '' if event.get('SecondsUntilNotBefore') is None else event['SecondsUntilNotBefore'],
        'ThisVm': _yes_no(event.get('AffectsThisVm')),
        'Source': event.get('EventSource', ''),
        'Resources': ', '.join(event.get('Resources', [])),
    } for event in result]


def transform_approval_table(result):
    return [{
        'EventId': item['EventId'],
        'Type': item['EventType'] or '',
        'Before': item['StatusBefore'],
        'After': item['EventStatus'],
        'Sent': _yes_no(item['ApprovalSent']),
    } for item in result]


def transform_agent_status_table(result):
    """One line per instance: how its agent runs, and what it last saw."""
    return [{
        'Instance': row['Instance'],
        'Agent': row['Agent'],
        'Version': row.get('Version') or '',
        'Active': row.get('Active') or '',
        'LastPollAge': '' if row.get('LastPollAge') is None else row['LastPollAge'],
        'Pending': '' if row.get('Pending') is None else row['Pending'],
        'Problems': '' if row.get('Problems') is None else row['Problems'],
        'Error': row.get('Error') or '',
    } for row in result]


def transform_policy_table(result):
    """One line per command and route: does it work for this target, and what turns it on."""
    return [{'Command': r['Command'], 'Route': r['Route'], 'Works': _yes_no(r['Works']), 'Fix': r['Fix'] or ''}
            for r in result['Routes']]


def transform_cycle_table(result):
    """A cycle's report, one line per instance; or its --dry-run plan, one line per instance in order."""
    if 'instances' not in result:
        batch_of = {i: n for n, batch in enumerate(result['batches'], 1) for i in batch}
        zones, outdated = result['zones'] or {}, set(result['outdated'])
        maintenance = {**{i: 'Scheduled' for i in result['scheduledMaintenance']},
                       **{i: 'Started' for i in result['underMaintenance']}}
        skipped = {s['instanceId']: s['reason'] for s in result['skipped']}
        return [{'InstanceId': i, 'Batch': batch_of.get(i, ''), 'Zone': zones.get(i) or '',
                 'Outdated': _yes_no(i in outdated), 'Maintenance': maintenance.get(i, ''),
                 'Skipped': skipped.get(i, '')} for i in [*result['order'], *skipped]]
    return [{
        'Instance': row['name'],
        'Zone': row['zone'] or '',
        'Result': row['result'],
        'SecondsToHealthy': '' if row['seconds_to_healthy'] is None else row['seconds_to_healthy'],
        'Scripts': ', '.join(f'{kind} {runs[-1]["exitCode"]}' for kind, runs in row['hooks'].items()),
        'Reason': row['reason'] or '',
    } for row in result['instances']]
