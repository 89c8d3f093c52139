# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Fleet ``list`` and ``approve`` through the control plane, ``--route auto``, and ``policy show``, end to
end: the real az against the fake ARM's Resource Graph (which runs the query), acknowledge API and models.

Runs inside a network namespace of its own (test_az_fleet_in_namespace.py makes it), like test_az_fleet.py.
"""

import os
import uuid

import pytest

from .fakearm.server import FakeArm, az_login

IN_NAMESPACE = os.environ.get('SCHEDULED_EVENTS_TEST_NAMESPACE') == '1'
pytestmark = pytest.mark.skipif(not IN_NAMESPACE, reason='runs inside its own network namespace, '
                                                         'from test_az_fleet_in_namespace.py')
OTHER_SUBSCRIPTION = '00000000-0000-0000-0000-000000000002'


@pytest.fixture(scope='module')
def fleet(az, tmp_path_factory):
    """big (publishes; 2,500 events over two subscriptions' sets), web (publishes), calm (does not; a
    simulated VM for Run Command), db1 and the availability set dbset (publish)."""
    with FakeArm(tmp_path_factory.mktemp('arm')) as arm:
        arm.add_subscription(OTHER_SUBSCRIPTION)
        big = arm.add_scale_set('rg', 'big', count=10, simulate_vms=False, publish=True)
        far = arm.add_scale_set('far-rg', 'far', count=2, simulate_vms=False, publish=True,
                                subscription=OTHER_SUBSCRIPTION)
        for index in range(2400):
            arm.publish(big, {'Resources': [f'big_{index % 10}']})
        for _ in range(100):
            arm.publish(far, {'Resources': ['far_0']})
        web = arm.add_scale_set('rg', 'web', count=4, simulate_vms=False, publish=True)
        events = {'web': arm.publish(web, {'Resources': ['web_1', 'web_3']})['name'],
                  'old': arm.publish(web, {'EventType': 'Freeze'})['name']}
        arm.set_event_status(events['old'], 'Completed')
        calm = arm.add_scale_set('rg', 'calm', count=1)
        events['calm'], = calm.instances['0'].vm.add_events([{'EventType': 'Freeze'}])
        arm.add_vm('rg', 'db1', simulate_vm=False, publish=True)
        arm.add_vm('rg', 'db2', simulate_vm=False)
        arm.add_availability_set('rg', 'dbset', ['db2'], publish=True)
        yield arm, az_login(az, arm), events


def run(az, fleet, *args):
    _, env, _ = fleet
    return az.run('scheduled-events', *args, **env)


def acknowledgements(arm):
    return arm.requests('POST', r'.*/providers/Microsoft\.Maintenance/scheduledevents.*')


def test_every_subscription_in_one_query_followed_through_every_page(az, fleet):
    arm, _, _ = fleet
    before = len(arm.requests('POST', r'.*/Microsoft\.ResourceGraph/resources'))
    result = run(az, fleet, 'list', '--route', 'control-plane', '--only-show-errors')
    assert result.returncode == 0, result
    assert len(result.json) >= 2500
    assert {row['SubscriptionId'] for row in result.json} == {arm.subscription, OTHER_SUBSCRIPTION}
    pages = arm.requests('POST', r'.*/Microsoft\.ResourceGraph/resources')[before:]
    assert len(pages) >= 3 and set(pages[0]['body']['subscriptions']) == {arm.subscription, OTHER_SUBSCRIPTION}
    only = run(az, fleet, 'list', '--route', 'control-plane', '--subscriptions', OTHER_SUBSCRIPTION,
               '--query', 'length(@)', '--only-show-errors')
    assert only.json == 100


def test_auto_takes_the_control_plane_for_a_target_that_publishes_and_filters_in_the_query(az, fleet):
    arm, _, events = fleet
    result = run(az, fleet, 'list', '-g', 'rg', '--vmss-name', 'web')
    assert result.returncode == 0, result
    assert 'Route: control-plane' in result.stderr
    row, = result.json
    assert (row['EventId'], row['InstanceIds'], row['Route']) == (events['web'], ['1', '3'], 'control-plane')
    query = arm.requests('POST', r'.*/Microsoft\.ResourceGraph/resources')[-1]['body']['query']
    assert "id has 'web'" in query
    table = run(az, fleet, 'list', '-g', 'rg', '--vmss-name', 'web', '-o', 'table', '--only-show-errors')
    assert events['web'] in table.stdout


def test_auto_takes_run_command_where_the_target_does_not_publish(az, fleet):
    _, _, events = fleet
    result = run(az, fleet, 'list', '-g', 'rg', '--vmss-name', 'calm')
    assert result.returncode == 0, result
    assert 'Route: run-command' in result.stderr
    assert [(r['Instance'], r['EventId']) for r in result.json] == [('calm_0', events['calm'])]


def test_history_through_status(az, fleet):
    _, _, events = fleet
    result = run(az, fleet, 'list', '-g', 'rg', '--vmss-name', 'web', '--status', 'Completed', 'Canceled',
                 '--only-show-errors')
    assert [(r['EventId'], r['EventStatus']) for r in result.json] == [(events['old'], 'Completed')]
    refused = run(az, fleet, 'list', '-g', 'rg', '--vmss-name', 'web', '--route', 'run-command', '--status',
                  'Completed')
    assert refused.returncode != 0 and 'control-plane route' in refused.stderr


def test_approve_one_and_several_through_the_acknowledge_api(az, fleet):
    arm, _, events = fleet
    sent, commands = len(acknowledgements(arm)), len(arm.requests('POST', r'.*/runcommand'))
    one = run(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'web', '--event-id', events['web'],
              '--only-show-errors')
    assert one.returncode == 0, one
    assert [(r['EventId'], r['StatusBefore'], r['EventStatus']) for r in one.json] == \
        [(events['web'], 'Scheduled', 'Started')]
    dbset = arm.availability_sets[('rg', 'dbset')]
    ids = [arm.publish(dbset)['name'] for _ in range(2)]
    several = run(az, fleet, 'approve', '-g', 'rg', '--availability-set', 'dbset', '--event-id', *ids,
                  '--only-show-errors')
    assert several.returncode == 0, several
    assert [r['EventStatus'] for r in several.json] == ['Started', 'Started']
    assert len(acknowledgements(arm)) == sent + 2
    assert len(arm.requests('POST', r'.*/runcommand')) == commands


def test_unknown_started_and_malformed_ids_send_nothing(az, fleet):
    arm, _, events = fleet
    sent = len(acknowledgements(arm))
    unknown = run(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'web', '--event-id', str(uuid.uuid4()).upper())
    assert unknown.returncode != 0 and 'not an event of' in unknown.stderr
    started = run(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'web', '--event-id', events['old'])
    assert started.returncode != 0 and 'Only Scheduled events' in started.stderr
    malformed = run(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'web', '--event-id', 'not-a-guid')
    assert malformed.returncode != 0 and 'Traceback' not in malformed.stderr
    assert len(acknowledgements(arm)) == sent
    assert all(r.stderr.count('ERROR: ') == 1 for r in (unknown, started, malformed))


def test_a_partial_failure_prints_every_id_and_exits_1(az, fleet):
    arm, _, events = fleet
    fresh = arm.publish(arm.scale_sets[('rg', 'web')])['name']
    result = run(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'web', '--route', 'control-plane', '--force',
                 '--event-id', fresh, events['old'])
    assert result.returncode == 1, result
    assert [(r['EventId'], r['ApprovalSent']) for r in result.json] == [(fresh, True), (events['old'], False)]
    assert '1 of 2 events were not approved' in result.stderr


def test_without_the_role_the_error_says_which_one(az, fleet):
    arm, _, _ = fleet
    fresh = arm.publish(arm.scale_sets[('rg', 'web')])['name']
    arm.acknowledge_forbidden = True
    try:
        result = run(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'web', '--event-id', fresh)
    finally:
        arm.acknowledge_forbidden = False
    assert result.returncode != 0 and 'Scheduled Events Contributor' in result.stderr
    assert 'Traceback' not in result.stderr


def test_policy_show_with_and_without_publishing(az, fleet):
    web = run(az, fleet, 'policy', 'show', '-g', 'rg', '--vmss-name', 'web', '--only-show-errors')
    assert web.returncode == 0, web
    assert web.json['PublishesToResourceGraph'] is True and web.json['FeatureState'] == 'Registered'
    calm = run(az, fleet, 'policy', 'show', '-g', 'rg', '--vmss-name', 'calm', '-o', 'table', '--only-show-errors')
    assert calm.returncode == 0, calm
    assert 'az vmss update -g rg -n calm --additional-scheduled-events true' in calm.stdout
    missing = run(az, fleet, 'policy', 'show', '-g', 'rg', '--vmss-name', 'nothing')
    assert missing.returncode != 0 and 'Traceback' not in missing.stderr


def test_without_the_preview_the_error_names_the_registration(az, fleet):
    arm, _, _ = fleet
    fresh = arm.publish(arm.scale_sets[('rg', 'web')])['name']
    arm.feature_registered = False
    try:
        result = run(az, fleet, 'approve', '-g', 'rg', '--vmss-name', 'web', '--route', 'control-plane',
                     '--event-id', fresh)
    finally:
        arm.feature_registered = True
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert 'az feature register --namespace Microsoft.Compute --name SendScheduledEventsPolicy' in result.stderr
