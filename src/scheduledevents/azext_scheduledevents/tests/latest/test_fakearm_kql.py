# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The fake Resource Graph's KQL subset (fakearm/kql.py): what it evaluates, and what it refuses."""

import pytest

from .fakearm.kql import KqlError, has_term, run

EVENTS = 'microsoft.maintenance/scheduledevents'


def row(name, status, resources, *, event_type='Reboot', rg='rg', sub='s1', duration=-1, description='',
        not_before='Mon, 19 Sep 2016 18:29:47 GMT', kind=EVENTS):
    return {'id': f'/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/web/'
                  f'providers/Microsoft.Maintenance/scheduledevents/{name}',
            'name': name, 'type': kind, 'tenantId': 't', 'location': 'westus', 'resourceGroup': rg,
            'subscriptionId': sub, 'zones': None,
            'properties': {'EventId': name, 'EventType': event_type, 'ResourceType': 'VirtualMachine',
                           'Resources': resources, 'EventStatus': status, 'NotBefore': not_before,
                           'Description': description, 'EventSource': 'Platform', 'DurationInSeconds': duration}}


ROWS = [
    row('A', 'Scheduled', ['web_1', 'web_3'], description='Host server is undergoing maintenance.'),
    row('B', 'Started', ['web_30'], event_type='Freeze', duration=9, not_before=''),
    row('C', 'Completed', ['web_2'], rg='Other', sub='s2', event_type='Redeploy', not_before=''),
    row('D', 'Canceled', [], kind='microsoft.maintenance/updates', duration=5, not_before=''),
]
TABLES = {'maintenanceresources': ROWS}


def _query_id(value):
    return (value.replace('maintenanceresources | ', '') or '(empty)') if isinstance(value, str) else None


def names(query):
    return [r['name'] for r in run(query, TABLES).rows]


@pytest.mark.parametrize('query, expected', [
    ('maintenanceresources', ['A', 'B', 'C', 'D']),
    ('MaintenanceResources', ['A', 'B', 'C', 'D']),
    (f'maintenanceresources | where type == "{EVENTS}"', ['A', 'B', 'C']),
    (f"maintenanceresources | where type == '{EVENTS}'", ['A', 'B', 'C']),
    ('maintenanceresources | where type == "Microsoft.Maintenance/ScheduledEvents"', []),
    ('maintenanceresources | where type =~ "Microsoft.Maintenance/ScheduledEvents"', ['A', 'B', 'C']),
    ('maintenanceresources | where type !~ "Microsoft.Maintenance/ScheduledEvents"', ['D']),
    ('maintenanceresources | where properties.EventStatus == "Scheduled"', ['A']),
    ('maintenanceresources | where properties.EventStatus == "scheduled"', []),
    ('maintenanceresources | where properties.EventStatus != "Scheduled"', ['B', 'C', 'D']),
    ('maintenanceresources | where properties.eventStatus == "Scheduled"', []),
    ("maintenanceresources | where properties['EventType'] == 'Freeze'", ['B']),
    ('maintenanceresources | where properties["EventType"] =~ "freeze"', ['B']),
    ('maintenanceresources | where properties.Resources[0] == "web_1"', ['A']),
    ('maintenanceresources | where properties.Resources[5] == "web_1"', []),
    ('maintenanceresources | where properties.Resources has "web_3"', ['A']),
    ('maintenanceresources | where properties.Resources has "WEB_30"', ['B']),
    ('maintenanceresources | where properties.Resources !has "web_3"', ['B', 'C', 'D']),
    ('maintenanceresources | where properties.Description has "HOST"', ['A']),
    ('maintenanceresources | where properties.Description has "undergo"', []),
    ('maintenanceresources | where properties.Description has "server is"', ['A']),
    ('maintenanceresources | where name in ("A", "C")', ['A', 'C']),
    ('maintenanceresources | where name in ("a", "c")', []),
    ('maintenanceresources | where name in~ ("a", "c")', ['A', 'C']),
    ('maintenanceresources | where name !in ("A", "C")', ['B', 'D']),
    ('maintenanceresources | where name !in~ ("a")', ['B', 'C', 'D']),
    ('maintenanceresources | where properties.EventStatus in ("Scheduled", "Started")', ['A', 'B']),
    ('maintenanceresources | where resourceGroup =~ "other" and subscriptionId == "s2"', ['C']),
    ('maintenanceresources | where name == "A" or name == "B" and properties.EventType == "Reboot"', ['A']),
    ('maintenanceresources | where (name == "A" or name == "B") and properties.EventType == "Reboot"', ['A']),
    ('maintenanceresources | where not(name == "A")', ['B', 'C', 'D']),
    ('maintenanceresources | where not(properties.EventStatus in ("Completed", "Canceled"))', ['A', 'B']),
    ('maintenanceresources | where properties.DurationInSeconds == -1', ['A', 'C']),
    ('maintenanceresources | where properties.DurationInSeconds > 0', ['B', 'D']),
    ('maintenanceresources | where properties.DurationInSeconds >= 9 or properties.DurationInSeconds < -0.5',
     ['A', 'B', 'C']),
    ('maintenanceresources | where toint(properties.DurationInSeconds) <= 5', ['A', 'C', 'D']),
    ('maintenanceresources | where tostring(properties.DurationInSeconds) == "9"', ['B']),
    ('maintenanceresources | where tolower(properties.EventType) == "redeploy"', ['C']),
    ('maintenanceresources | where toupper(name) == "A"', ['A']),
    ('maintenanceresources | where isempty(properties.NotBefore)', ['B', 'C', 'D']),
    ('maintenanceresources | where isnotempty(properties.NotBefore)', ['A']),
    ('maintenanceresources | where isempty(properties.Missing)', ['A', 'B', 'C', 'D']),
    ('maintenanceresources | where properties.Missing != "x"', []),
    ('maintenanceresources | where tostring(properties.Missing) != "x"', ['A', 'B', 'C', 'D']),
    ("maintenanceresources | where properties.Description == 'Host server is undergoing maintenance.'", ['A']),
    (r"maintenanceresources | where 'it\'s' == " + '"it\'s"', ['A', 'B', 'C', 'D']),
    ('maintenanceresources | where true', ['A', 'B', 'C', 'D']),
    ('maintenanceresources | where false or null', []),
    ('maintenanceresources | extend status = tostring(properties.EventStatus) | where status =~ "started"', ['B']),
    ('maintenanceresources | order by name', ['D', 'C', 'B', 'A']),
    ('maintenanceresources | order by name asc', ['A', 'B', 'C', 'D']),
    ('maintenanceresources | sort by toint(properties.DurationInSeconds) desc, name asc', ['B', 'D', 'A', 'C']),
    ('maintenanceresources | order by properties.Missing asc, name desc', ['D', 'C', 'B', 'A']),
    ('maintenanceresources | take 2', ['A', 'B']),
    ('maintenanceresources | order by name asc | limit 3 | where name != "A"', ['B', 'C']),
    ('maintenanceresources | take 0', []),
], ids=_query_id)
def test_where_extend_order_take(query, expected):
    assert names(query) == expected


@pytest.mark.parametrize('query, columns, first', [
    ('maintenanceresources | project id, name | take 1', ['id', 'name'], {'id': ROWS[0]['id'], 'name': 'A'}),
    ('maintenanceresources | project name, properties.EventStatus | take 1', ['name', 'properties_EventStatus'],
     {'name': 'A', 'properties_EventStatus': 'Scheduled'}),
    ("maintenanceresources | project name, properties['EventType'] | take 1", ['name', 'properties_EventType'],
     {'name': 'A', 'properties_EventType': 'Reboot'}),
    ('maintenanceresources | project eventId = name, status = tostring(properties.EventStatus) | take 1',
     ['eventId', 'status'], {'eventId': 'A', 'status': 'Scheduled'}),
    ('maintenanceresources | project name, toint(properties.DurationInSeconds) | take 1', ['name', 'Column1'],
     {'name': 'A', 'Column1': -1}),
    ('maintenanceresources | extend status = properties.EventStatus | project status, name | take 1',
     ['status', 'name'], {'status': 'Scheduled', 'name': 'A'}),
    ('maintenanceresources | project name | extend n = 1 | take 1', ['name', 'n'], {'name': 'A', 'n': 1}),
    ('maintenanceresources | project properties.Resources | take 1', ['properties_Resources'],
     {'properties_Resources': ['web_1', 'web_3']}),
], ids=_query_id)
def test_project_names_columns_as_kusto_does(query, columns, first):
    result = run(query, TABLES)
    assert result.columns == columns
    assert result.rows[0] == first


def test_the_whole_row_keeps_the_table_columns_in_order():
    result = run('maintenanceresources | take 1', TABLES)
    assert result.columns == ['id', 'name', 'type', 'tenantId', 'location', 'resourceGroup', 'subscriptionId',
                              'zones', 'properties']
    assert result.rows == [ROWS[0]]


def test_the_resources_table_and_an_empty_table():
    assert run('resources | project id', {}).rows == []
    assert run('Resources | where type =~ "x"', {'resources': [{'id': '/a', 'type': 'X'}]}).rows[0]['id'] == '/a'


@pytest.mark.parametrize('query, message', [
    ('', 'empty'),
    ('   ', 'empty'),
    ('events', 'expected a table'),
    ('| where name == "A"', 'expected a table'),
    ('maintenanceresources | summarize count() by type', "unsupported tabular operator"),
    ('maintenanceresources | WHERE name == "A"', 'unsupported tabular operator'),
    ('maintenanceresources | project-away id', "found 'project-away'"),
    ('maintenanceresources | mv-expand properties.Resources', "found 'mv-expand'"),
    ('maintenanceresources | where name contains "A"', "unsupported operator 'contains'"),
    ('maintenanceresources | where name startswith "A"', "unsupported operator 'startswith'"),
    ('maintenanceresources | where name matches regex "A"', "unsupported operator 'matches'"),
    ('maintenanceresources | where Name == "A"', "Failed to resolve scalar expression named 'Name'"),
    ('maintenanceresources | where Properties.EventStatus == "A"', "named 'Properties'"),
    ('maintenanceresources | project id | where name == "A"', "named 'name'"),
    ('maintenanceresources | where strcat(name, "x") == "A"', 'unsupported function strcat()'),
    ('maintenanceresources | where name == "A', 'unterminated string'),
    ("maintenanceresources | where name == 'A", 'unterminated string'),
    ('maintenanceresources | where name == "A";', "unexpected character ';'"),
    ('maintenanceresources | where name == "A" |', "unsupported tabular operator"),
    ('maintenanceresources | where name == "A" name', "expected '|' or the end of the query"),
    ('maintenanceresources | where name ==', 'expected a value'),
    ('maintenanceresources | where name in ("A"', "expected ',' or ')'"),
    ('maintenanceresources | where name in "A"', "expected '(' after in"),
    ('maintenanceresources | where (name == "A"', "expected ')'"),
    ('maintenanceresources | where properties.', 'expected a property name'),
    ('maintenanceresources | where properties[EventStatus] == "A"', "expected a quoted property name"),
    ('maintenanceresources | where properties["EventStatus" == "A"', "expected ']'"),
    ('maintenanceresources | order name', "expected 'by'"),
    ('maintenanceresources | take ten', 'expected a whole number'),
    ('maintenanceresources | take 1.5', 'expected a whole number'),
    ('maintenanceresources | where name = "A"', "expected '|' or the end"),
], ids=_query_id)
def test_anything_else_is_a_clear_error(query, message):
    with pytest.raises(KqlError) as caught:
        run(query, TABLES)
    assert message in str(caught.value)


def test_an_error_says_where():
    with pytest.raises(KqlError, match=r"at position 34, found 'contains'"):
        run('maintenanceresources | where name contains "A"', TABLES)


@pytest.mark.parametrize('text, term, expected', [
    ('North America', 'america', True),
    ('North America', 'meric', False),
    ('web_3', 'web_3', True),
    ('web_30', 'web_3', False),
    ('myweb_3', 'web_3', False),
    ('ad67d136-c1db-4f9f', 'c1db', True),
    ('ad67d136-c1db-4f9f', 'c1db-4f9f', True),
    ('["web_1","web_3"]', '"web_3"', True),
    ('', 'x', False),
], ids=repr)
def test_has_matches_whole_terms_ignoring_case(text, term, expected):
    assert has_term(text, term) is expected
