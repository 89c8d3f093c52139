# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The fake ARM's control plane of Scheduled Events, over real HTTPS: Resource Graph (the query evaluated,
paged), the Maintenance acknowledge API, the policy in the model and the preview's feature flag."""

import email.utils
import http.client
import json
import ssl
from datetime import datetime, timezone
from urllib.parse import urlencode, urlsplit

import pytest

from .conftest import FakeClock, require_namespaces
from .fakearm.maintenance import GraphQuota, scheduled_events_policy, scheduled_events_profile
from .fakearm.server import SUBSCRIPTION, TENANT, FakeArm
from .test_fleet import compute_for

GRAPH = '/providers/Microsoft.ResourceGraph/resources'
EVENTS = 'maintenanceresources | where type == "microsoft.maintenance/scheduledevents"'
STABLE, PREVIEW, OLD_PREVIEW = '2025-11-01', '2025-10-01-preview', '2023-10-01-preview'
OTHER_SUBSCRIPTION = '00000000-0000-0000-0000-000000000002'


@pytest.fixture
def arm(tmp_path):
    with FakeArm(tmp_path) as server:
        yield server


def call(arm, method, path, body=None, **query):
    """One request to the fake -> (status, headers with lower-case names, decoded JSON body)."""
    parts = urlsplit(arm.url)
    context = ssl.create_default_context(cafile=str(arm.certs.ca))
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=30)
    try:
        conn.request(method, f'{path}?{urlencode(query)}', body=None if body is None else json.dumps(body).encode(),
                     headers={'Authorization': 'Bearer fake-token', 'Content-Type': 'application/json'})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data or b'null')


def graph(arm, query, *, api_version='2021-03-01', **request):
    request.setdefault('subscriptions', [arm.subscription])
    return call(arm, 'POST', GRAPH, dict(request, query=query), **{'api-version': api_version})


def target_path(kind, name, rg='rg', sub=SUBSCRIPTION):
    return f'/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Compute/{kind}/{name}'


def acknowledge(arm, event_id, kind='virtualMachineScaleSets', name='web', api_version=STABLE, **where):
    path = f'{target_path(kind, name, **where)}/providers/Microsoft.Maintenance/scheduledevents/{event_id}/acknowledge'
    return call(arm, 'POST', path, **{'api-version': api_version})


def acknowledge_list(arm, event_ids, kind='virtualMachineScaleSets', name='web', api_version=STABLE, **where):
    path = f'{target_path(kind, name, **where)}/providers/Microsoft.Maintenance/scheduledevents'
    return call(arm, 'POST', path, {'value': event_ids}, **{'api-version': api_version})


def status_of(arm, event_id):
    return arm.events.get(event_id)['properties']['EventStatus']


# Publishing and the row ------------------------------------------------------------------------------------

def test_a_published_event_is_a_row_exactly_as_the_contract_has_it(arm):
    web = arm.add_scale_set('rg', 'web', count=4, simulate_vms=False, publish=True)
    published = arm.publish(web.instances['3'])
    status, headers, answer = graph(arm, EVENTS)
    assert status == 200 and answer['totalRecords'] == answer['count'] == 1
    assert {'totalRecords', 'count', 'data', 'facets', 'resultTruncated'} <= set(answer)
    assert answer['facets'] == [] and answer['resultTruncated'] == 'false' and '$skipToken' not in answer
    row, = answer['data']
    event_id = row['name']
    assert event_id == published['name'] == event_id.upper() and len(event_id) == 36
    assert row['id'] == (f'/subscriptions/{SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.Compute/'
                         f'virtualMachineScaleSets/web/providers/Microsoft.Maintenance/scheduledevents/{event_id}')
    assert {k: v for k, v in row.items() if k not in ('id', 'name', 'properties')} == {
        'type': 'microsoft.maintenance/scheduledevents', 'resourceGroup': 'rg', 'subscriptionId': SUBSCRIPTION,
        'location': 'westus', 'zones': None, 'tenantId': TENANT}
    properties = dict(row['properties'])
    not_before = email.utils.parsedate_to_datetime(properties.pop('NotBefore'))
    assert properties == {'EventId': event_id, 'EventType': 'Reboot', 'ResourceType': 'VirtualMachine',
                          'Resources': ['web_3'], 'EventStatus': 'Scheduled', 'Description': '',
                          'EventSource': 'Platform', 'DurationInSeconds': -1}
    ahead = (not_before - datetime.now(timezone.utc)).total_seconds()
    assert 14 * 60 < ahead <= 15 * 60 and row['properties']['NotBefore'].endswith(' GMT')
    assert headers['x-ms-user-quota-remaining'] == '14' and headers['x-ms-user-quota-resets-after'] == '00:00:05'


def test_publish_refuses_a_target_whose_policy_does_not_publish(arm):
    quiet = arm.add_scale_set('rg', 'quiet', count=1, simulate_vms=False,
                              policy=scheduled_events_policy(auto_approve_reboot=True))
    with pytest.raises(ValueError, match='does not publish'):
        arm.publish(quiet)
    with pytest.raises(ValueError, match='does not publish'):
        arm.publish(quiet.instances['0'])
    vm = arm.add_vm('rg', 'solo', simulate_vm=False)
    with pytest.raises(ValueError, match='does not publish'):
        arm.publish(vm)
    quiet.scheduled_events_policy = scheduled_events_policy(publish=True)      # settable later
    assert arm.publish(quiet)['properties']['Resources'] == ['quiet_0']
    with pytest.raises(TypeError):
        arm.publish('quiet')
    with pytest.raises(ValueError, match='unknown event fields: Status'):
        arm.publish(quiet, {'Status': 'Scheduled'})
    row = arm.publish(quiet, {'EventId': 'AAAAAAAA-0000-0000-0000-000000000001'})
    with pytest.raises(ValueError, match='published already'):
        arm.publish(quiet, {'EventId': row['name'].lower()})


def test_events_of_vms_and_availability_sets_hang_off_them(arm):
    arm.add_vm('rg', 'solo', simulate_vm=False, publish=True)
    arm.add_vm('rg', 'a1', simulate_vm=False)
    arm.add_vm('rg', 'a2', simulate_vm=False)
    pair = arm.add_availability_set('rg', 'pair', ['a1', 'a2'], publish=True)
    solo = arm.publish(arm.vms[('rg', 'solo')], {'EventType': 'Freeze', 'DurationInSeconds': 9})
    together = arm.publish(pair)
    member = arm.publish(arm.vms[('rg', 'a1')])     # its availability set's policy publishes
    assert solo['id'].startswith(target_path('virtualMachines', 'solo') + '/providers/Microsoft.Maintenance/')
    assert together['id'].startswith(target_path('availabilitySets', 'pair') + '/providers/Microsoft.Maintenance/')
    assert together['properties']['Resources'] == ['a1', 'a2'] and member['properties']['Resources'] == ['a1']
    with pytest.raises(ValueError, match='no VM nope'):
        arm.add_availability_set('rg', 'bad', ['nope'])
    _, _, answer = graph(arm, EVENTS + ' | where properties.EventType == "Freeze" | project id, '
                                       'properties.DurationInSeconds')
    assert answer['data'] == [{'id': solo['id'], 'properties_DurationInSeconds': 9}]


# Resource Graph --------------------------------------------------------------------------------------------

def test_2500_events_page_in_three_pages_of_at_most_1000(arm):
    web = arm.add_scale_set('rg', 'web', count=1000, simulate_vms=False, publish=True)
    ids = [arm.publish(web.instances[str(n % 1000)])['name'] for n in range(2500)]
    pages, token = [], None
    while True:
        options = {'$top': 1000, 'resultFormat': 'objectArray', **({'$skipToken': token} if token else {})}
        status, _, answer = graph(arm, EVENTS + ' | project id, name, properties', options=options)
        assert status == 200 and answer['totalRecords'] == 2500 and answer['resultTruncated'] == 'false'
        pages.append(answer)
        token = answer.get('$skipToken')
        if token is None:
            break
    assert [p['count'] for p in pages] == [1000, 1000, 500]
    assert [row['name'] for p in pages for row in p['data']] == ids
    assert len(arm.requests('POST', 'resourcegraph')) == 3


def test_top_defaults_to_100_and_paging_needs_id(arm):
    web = arm.add_scale_set('rg', 'web', count=3, simulate_vms=False, publish=True)
    for _ in range(150):
        arm.publish(web)
    _, _, answer = graph(arm, EVENTS)
    assert (answer['count'], answer['totalRecords'], answer['resultTruncated']) == (100, 150, 'false')
    _, _, rest = graph(arm, EVENTS, options={'$skipToken': answer['$skipToken']})
    assert rest['count'] == 50 and '$skipToken' not in rest
    _, _, names_only = graph(arm, EVENTS + ' | project name', options={'$top': 60})
    assert (names_only['count'], names_only['resultTruncated']) == (60, 'true') and '$skipToken' not in names_only
    _, _, taken = graph(arm, EVENTS + ' | take 120', options={'$top': 1000})
    assert taken['totalRecords'] == taken['count'] == 120
    _, _, skipped = graph(arm, EVENTS, options={'$skip': 140})
    assert skipped['count'] == 10
    status, _, refused = graph(arm, EVENTS, options={'$top': 1001})
    assert status == 400 and refused['error']['details'][0]['code'] == 'InvalidParameter'
    status, _, refused = graph(arm, EVENTS + ' | take 10', options={'$skipToken': answer['$skipToken']})
    assert status == 400 and 'another query' in refused['error']['details'][0]['message']


def test_queries_filter_by_what_they_say_and_by_subscription(arm):
    arm.add_subscription(OTHER_SUBSCRIPTION)
    web = arm.add_scale_set('rg', 'web', count=40, simulate_vms=False, publish=True)
    far = arm.add_scale_set('far-rg', 'web', count=2, simulate_vms=False, publish=True, subscription=OTHER_SUBSCRIPTION)
    freeze = arm.publish(web.instances['3'], {'EventType': 'Freeze'})
    reboot = arm.publish(web.instances['30'])
    remote = arm.publish(far.instances['1'])
    arm.set_event_status(reboot['name'], 'Completed')

    def names(query, **request):
        status, _, answer = graph(arm, query, **request)
        assert status == 200, answer
        return sorted(row['name'] for row in answer['data'])

    assert names(EVENTS) == sorted([freeze['name'], reboot['name']])
    assert names(EVENTS, subscriptions=[OTHER_SUBSCRIPTION]) == [remote['name']]
    assert names(EVENTS, subscriptions=[], managementGroups=['root']) == sorted(
        [freeze['name'], reboot['name'], remote['name']])
    assert names(EVENTS, subscriptions=['00000000-0000-0000-0000-00000000dead']) == []
    assert names(EVENTS + ' | where properties.Resources has "web_3"') == [freeze['name']]
    assert names(EVENTS + ' | where properties.EventStatus == "Scheduled"') == [freeze['name']]
    assert names(EVENTS + ' | where properties.EventStatus in ("Completed", "Canceled")') == [reboot['name']]
    assert names(EVENTS + f' | where id has "{web.name}" and resourceGroup =~ "RG"') == sorted(
        [freeze['name'], reboot['name']])
    assert names(f'maintenanceresources | where name =~ "{freeze["name"].lower()}"') == [freeze['name']]
    _, _, answer = graph(arm, 'resources | where type =~ "Microsoft.Compute/virtualMachineScaleSets" | project id, '
                              'publishes = properties.scheduledEventsPolicy.scheduledEventsAdditionalPublishingTargets'
                              '.eventGridAndResourceGraph.enable', subscriptions=[])
    assert sorted((row['id'].split('/')[2], row['publishes']) for row in answer['data']) == [
        (SUBSCRIPTION, True), (OTHER_SUBSCRIPTION, True)]


def test_a_query_it_does_not_understand_is_400_invalid_query(arm):
    for query in (EVENTS + ' | where name contains "A"', EVENTS + ' | summarize count()',
                  EVENTS + ' | where properties.EventStatus = "Scheduled"'):
        status, headers, answer = graph(arm, query)
        assert status == 400, query
        assert answer['error']['code'] == 'BadRequest'
        assert answer['error']['message'].startswith('Please provide below info when asking for support')
        detail, = answer['error']['details']
        assert detail['code'] == 'InvalidQuery' and 'Query is invalid' in detail['message']
        assert 'x-ms-user-quota-remaining' in headers and 'x-ms-user-quota-resets-after' in headers
    _, _, answer = graph(arm, EVENTS + ' | where name contains "A"')
    assert "unsupported operator 'contains'" in answer['error']['details'][0]['message']
    status, _, answer = call(arm, 'POST', GRAPH, {'subscriptions': [arm.subscription]}, **{'api-version': '2021-03-01'})
    assert status == 400 and answer['error']['details'][0]['code'] == 'InvalidRequestContent'


def test_graph_api_versions_and_the_quota(arm):
    arm.graph_quota = GraphQuota(clock=FakeClock())     # time stands still: all 19 queries in one window
    for version in ('2021-03-01', '2022-10-01', '2024-04-01'):
        assert graph(arm, EVENTS, api_version=version)[0] == 200
    status, _, answer = graph(arm, EVENTS, api_version='2019-04-01')
    assert status == 400 and answer['error']['code'] == 'InvalidApiVersionParameter'
    assert "'2024-04-01,2022-10-01,2021-03-01'" in answer['error']['message']
    arm.graph_throttling = True
    statuses = [graph(arm, EVENTS)[:2] for _ in range(15)]
    assert [s for s, _ in statuses] == [200] * 11 + [429] * 4      # four went before, the quota is 15
    assert [h['x-ms-user-quota-remaining'] for _, h in statuses][9:12] == ['1', '0', '0']
    assert int(statuses[-1][1]['retry-after']) >= 1


# The acknowledge API ------------------------------------------------------------------------------------------

def test_single_acknowledge_starts_a_scheduled_event_once(arm):
    web = arm.add_scale_set('rg', 'web', count=2, simulate_vms=False, publish=True)
    arm.add_scale_set('rg', 'other', count=1, simulate_vms=False, publish=True)
    event_id = arm.publish(web.instances['0'])['name']
    assert acknowledge(arm, event_id, name='other')[0] == 404          # not that resource's event
    status, _, answer = acknowledge(arm, event_id)
    assert status == 200 and isinstance(answer['value'], str)
    properties = arm.events.get(event_id)['properties']
    assert (properties['EventStatus'], properties['NotBefore']) == ('Started', '')
    status, _, answer = acknowledge(arm, event_id.lower())
    assert status == 409 and answer['error']['code'] == 'Conflict' and 'Started' in answer['error']['message']
    status, _, answer = acknowledge(arm, '11111111-2222-3333-4444-555555555555')
    assert status == 404 and answer['error']['code'] == 'NotFound'
    assert acknowledge(arm, 'not-a-guid')[0] == 400
    assert acknowledge(arm, event_id, name='nope')[2]['error']['code'] == 'ResourceNotFound'
    _, _, graph_answer = graph(arm, EVENTS + ' | project name, status = properties.EventStatus')
    assert graph_answer['data'] == [{'name': event_id, 'status': 'Started'}]


def test_the_path_is_matched_case_insensitively(arm):
    web = arm.add_scale_set('RG', 'Web', count=1, simulate_vms=False, publish=True)
    event_id = arm.publish(web)['name']
    path = (f'/SUBSCRIPTIONS/{SUBSCRIPTION}/resourceGroups/rg/providers/microsoft.compute/VIRTUALMACHINESCALESETS/web/'
            f'providers/MICROSOFT.MAINTENANCE/ScheduledEvents/{event_id.lower()}/Acknowledge')
    assert call(arm, 'POST', path, **{'api-version': STABLE})[0] == 200
    assert status_of(arm, event_id) == 'Started'


def test_list_acknowledge_answers_200_or_207_naming_the_failed_ids(arm):
    web = arm.add_scale_set('rg', 'web', count=3, simulate_vms=False, publish=True)
    first, second, third, done = (arm.publish(web)['name'] for _ in range(4))
    arm.set_event_status(done, 'Completed')
    status, _, answer = acknowledge_list(arm, [first, second])
    assert status == 200 and isinstance(answer['value'], str)
    assert [status_of(arm, i) for i in (first, second, third)] == ['Started', 'Started', 'Scheduled']
    unknown = '11111111-2222-3333-4444-555555555555'
    status, _, answer = acknowledge_list(arm, [third, first, unknown, done])
    assert status == 207 and status_of(arm, third) == 'Started'
    error = answer['error']
    assert error['code'] and error['message']
    assert [(d['target'], d['code']) for d in error['details']] == [(first, 'Conflict'), (unknown, 'NotFound'),
                                                                    (done, 'Conflict')]
    arm.multi_status_shape = 'response'
    status, _, answer = acknowledge_list(arm, [first])
    assert status == 207 and answer['response']['code'] and answer['details'][0]['target'] == first
    for body in ([], ['x', 1], 'x'):
        assert acknowledge_list(arm, body)[0] == 400


def test_without_the_role_the_acknowledge_routes_answer_403(arm):
    web = arm.add_scale_set('rg', 'web', count=1, simulate_vms=False, publish=True)
    event_id = arm.publish(web)['name']
    arm.acknowledge_forbidden = True
    for status, _, answer in (acknowledge(arm, event_id), acknowledge_list(arm, [event_id])):
        assert status == 403 and answer['error']['code'] == 'AuthorizationFailed'
        assert "perform action 'Microsoft.Maintenance/scheduledevents/acknowledge/action' over scope " \
               f"'{target_path('virtualMachineScaleSets', 'web')}/providers/Microsoft.Maintenance/scheduledevents" \
            in answer['error']['message']
    assert status_of(arm, event_id) == 'Scheduled'


def test_an_unsupported_api_version_is_refused_naming_the_supported_ones(arm):
    web = arm.add_scale_set('rg', 'web', count=1, simulate_vms=False, publish=True)
    first, second = arm.publish(web)['name'], arm.publish(web)['name']
    status, _, answer = acknowledge_list(arm, [first], api_version=OLD_PREVIEW)       # single only
    assert status == 400 and answer['error'] == {
        'code': 'InvalidApiVersionParameter', 'message': f"The api-version '{OLD_PREVIEW}' is invalid. The supported "
                                                         f"versions are '{STABLE},{PREVIEW}'."}
    assert acknowledge(arm, first, api_version=OLD_PREVIEW)[0] == 200
    arm.acknowledge_api_versions = {PREVIEW}            # a region without the stable version yet
    status, _, answer = acknowledge(arm, second)
    assert status == 400 and f"supported versions are '{PREVIEW}'" in answer['error']['message']
    assert acknowledge(arm, second, api_version=PREVIEW)[0] == 200
    status, _, answer = call(arm, 'POST', target_path('virtualMachineScaleSets', 'web') +
                             f'/providers/Microsoft.Maintenance/scheduledevents/{second}/acknowledge')
    assert status == 400 and answer['error']['code'] == 'MissingApiVersionParameter'


def test_acknowledge_on_a_vm_and_an_availability_set(arm):
    arm.add_vm('rg', 'solo', simulate_vm=False, publish=True)
    arm.add_vm('rg', 'a1', simulate_vm=False)
    pair = arm.add_availability_set('rg', 'pair', ['a1'], publish=True)
    solo_event = arm.publish(arm.vms[('rg', 'solo')])['name']
    pair_event = arm.publish(pair)['name']
    assert acknowledge(arm, solo_event, 'virtualMachines', 'solo')[0] == 200
    assert acknowledge(arm, pair_event, 'virtualMachines', 'a1')[0] == 404      # it hangs off the set
    assert acknowledge_list(arm, [pair_event], 'availabilitySets', 'pair')[0] == 200
    assert [status_of(arm, i) for i in (solo_event, pair_event)] == ['Started', 'Started']


def test_acknowledging_starts_the_event_in_the_vms_it_names(tmp_path):
    require_namespaces()
    with FakeArm(tmp_path) as arm:
        web = arm.add_scale_set('rg', 'web', count=3, publish=True)
        event_id, = web.instances['0'].vm.add_events([{'EventType': 'Reboot', 'Resources': ['web_0', 'web_1']}])
        web.instances['1'].vm.add_events([{'EventType': 'Reboot', 'Resources': ['web_0', 'web_1'],
                                           'EventId': event_id}])
        arm.publish(web, {'EventId': event_id, 'Resources': ['web_0', 'web_1']})
        assert acknowledge(arm, event_id)[0] == 200
        for instance_id in ('0', '1'):
            event, = web.instances[instance_id].vm.document()['events']
            assert (event['EventId'], event['EventStatus']) == (event_id, 'Started')
        assert web.instances['2'].vm.document()['events'] == []


def test_approving_through_imds_shows_in_resource_graph(tmp_path):
    require_namespaces()
    from azext_scheduledevents.core.runcommand import approve_script
    with FakeArm(tmp_path) as arm:
        web = arm.add_scale_set('rg', 'web', count=1, publish=True)
        event_id, = web.instances['0'].vm.add_events([{'EventType': 'Reboot'}])
        arm.publish(web, {'EventId': event_id})
        command_id, script = approve_script('Linux', [event_id])
        compute_for(arm).virtual_machine_scale_set_vms.begin_run_command(
            'rg', 'web', '0', {'commandId': command_id, 'script': script}, polling_interval=0.05).result()
        assert status_of(arm, event_id) == 'Started'


def test_set_event_status_keeps_history_rows(arm):
    web = arm.add_scale_set('rg', 'web', count=1, simulate_vms=False, publish=True)
    done, canceled = arm.publish(web)['name'], arm.publish(web)['name']
    arm.set_event_status(done, 'Completed')
    arm.set_event_status(canceled, 'Canceled')
    _, _, answer = graph(arm, EVENTS + ' | project name, properties.EventStatus, properties.NotBefore'
                                       ' | order by properties_EventStatus asc')
    assert answer['data'] == [
        {'name': canceled, 'properties_EventStatus': 'Canceled', 'properties_NotBefore': ''},
        {'name': done, 'properties_EventStatus': 'Completed', 'properties_NotBefore': ''}]
    with pytest.raises(ValueError):
        arm.set_event_status(done, 'Done')
    with pytest.raises(KeyError):
        arm.set_event_status('11111111-2222-3333-4444-555555555555', 'Completed')


# The preview's feature flag -----------------------------------------------------------------------------------

def test_without_the_feature_there_are_no_rows_and_no_events_to_acknowledge(arm):
    web = arm.add_scale_set('rg', 'web', count=1, simulate_vms=False, publish=True)
    event_id = arm.publish(web)['name']
    path = (f'/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Features/providers/Microsoft.Compute/features/'
            f'SendScheduledEventsPolicy')
    status, _, feature = call(arm, 'GET', path, **{'api-version': '2021-07-01'})
    assert status == 200 and feature == {
        'id': path, 'name': 'Microsoft.Compute/SendScheduledEventsPolicy',
        'type': 'Microsoft.Features/providers/features', 'properties': {'state': 'Registered'}}
    arm.feature_registered = False
    assert call(arm, 'GET', path, **{'api-version': '2021-07-01'})[2]['properties']['state'] == 'NotRegistered'
    assert graph(arm, EVENTS)[2]['data'] == []
    assert acknowledge(arm, event_id)[0] == 404
    assert acknowledge_list(arm, [event_id])[2]['error']['details'][0]['code'] == 'NotFound'
    arm.feature_registered = True
    assert acknowledge(arm, event_id)[0] == 200
    assert call(arm, 'GET', path.replace('SendScheduledEventsPolicy', 'Other'), **{'api-version': '2021-07-01'})[0] \
        == 404


# The policy in the model ----------------------------------------------------------------------------------------

def test_the_policy_is_in_the_get_bodies_from_2024_03_01(arm):
    profile = scheduled_events_profile(terminate_timeout='PT10M', os_image_timeout='PT15M')
    arm.add_scale_set('rg', 'web', count=1, simulate_vms=False, publish=True, profile=profile,
                      policy=scheduled_events_policy(auto_approve_reboot=False, auto_approve_redeploy=True))
    arm.add_vm('rg', 'solo', simulate_vm=False, publish=True,
               profile=scheduled_events_profile(terminate_timeout='PT5M'))
    arm.add_availability_set('rg', 'pair', ['solo'],
                             policy=scheduled_events_policy(auto_approve_all_instances_down=True))
    publishing = {'eventGridAndResourceGraph': {'enable': True, 'scheduledEventsApiVersion': '2020-07-01'}}
    _, _, body = call(arm, 'GET', target_path('virtualMachineScaleSets', 'web'), **{'api-version': '2024-03-01'})
    assert body['properties']['scheduledEventsPolicy'] == {
        'userInitiatedRedeploy': {'automaticallyApprove': True}, 'userInitiatedReboot': {'automaticallyApprove': False},
        'scheduledEventsAdditionalPublishingTargets': publishing}
    assert body['properties']['virtualMachineProfile']['scheduledEventsProfile'] == {
        'terminateNotificationProfile': {'enable': True, 'notBeforeTimeout': 'PT10M'},
        'osImageNotificationProfile': {'enable': True, 'notBeforeTimeout': 'PT15M'}}
    _, _, old = call(arm, 'GET', target_path('virtualMachineScaleSets', 'web'), **{'api-version': '2023-09-01'})
    assert 'scheduledEventsPolicy' not in old['properties']
    assert 'scheduledEventsProfile' not in old['properties']['virtualMachineProfile']
    _, _, vm = call(arm, 'GET', target_path('virtualMachines', 'solo'), **{'api-version': '2024-11-04'})
    assert vm['properties']['scheduledEventsPolicy'] == {'scheduledEventsAdditionalPublishingTargets': publishing}
    assert vm['properties']['scheduledEventsProfile']['terminateNotificationProfile']['notBeforeTimeout'] == 'PT5M'
    assert vm['properties']['availabilitySet']['id'].endswith('/availabilitySets/pair')
    status, _, pair = call(arm, 'GET', target_path('availabilitySets', 'pair'), **{'api-version': '2024-11-04'})
    assert status == 200 and pair['type'] == 'Microsoft.Compute/availabilitySets'
    assert pair['properties']['scheduledEventsPolicy'] == {'allInstancesDown': {'automaticallyApprove': True}}
    assert [v['id'] for v in pair['properties']['virtualMachines']] == [vm['id']]


def test_the_sdk_az_bundles_reads_the_policy(arm):
    arm.add_scale_set('rg', 'web', count=1, simulate_vms=False, publish=True,
                      profile=scheduled_events_profile(terminate_timeout='PT7M'))
    model = compute_for(arm).virtual_machine_scale_sets.get('rg', 'web')
    targets = model.scheduled_events_policy.scheduled_events_additional_publishing_targets
    assert targets.event_grid_and_resource_graph.enable is True
    terminate = model.virtual_machine_profile.scheduled_events_profile.terminate_notification_profile
    assert (terminate.enable, terminate.not_before_timeout) == (True, 'PT7M')


# Subscriptions -----------------------------------------------------------------------------------------------

def test_a_second_subscription_is_listed_and_holds_its_own_resources(arm):
    arm.add_subscription(OTHER_SUBSCRIPTION)
    arm.add_scale_set('rg', 'far', count=1, simulate_vms=False, subscription=OTHER_SUBSCRIPTION)
    status, _, answer = call(arm, 'GET', '/subscriptions', **{'api-version': '2022-12-01'})
    assert status == 200 and [s['subscriptionId'] for s in answer['value']] == [SUBSCRIPTION, OTHER_SUBSCRIPTION]
    far = target_path('virtualMachineScaleSets', 'far', sub=OTHER_SUBSCRIPTION)
    status, _, body = call(arm, 'GET', far, **{'api-version': '2024-11-04'})
    assert status == 200 and body['id'].startswith(f'/subscriptions/{OTHER_SUBSCRIPTION}/')
    assert call(arm, 'GET', target_path('virtualMachineScaleSets', 'far'), **{'api-version': '2024-11-04'})[0] == 404
    unknown = target_path('virtualMachineScaleSets', 'far', sub='00000000-0000-0000-0000-00000000dead')
    assert call(arm, 'GET', unknown, **{'api-version': '2024-11-04'})[2]['error']['code'] == 'SubscriptionNotFound'
    assert 'far' not in {s[1] for s in arm.scale_sets}        # arm.scale_sets: the first subscription's
