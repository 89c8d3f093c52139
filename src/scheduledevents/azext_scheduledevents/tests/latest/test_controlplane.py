# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""core/resourcegraph.py, maintenance.py, policy.py and controlplane.py against the fake ARM, which runs
the queries it is sent and acknowledges what exists."""

from datetime import datetime, timezone

import pytest

from azext_scheduledevents.core import controlplane
from azext_scheduledevents.core.errors import (AcknowledgeForbiddenError, EventNotFoundError, EventNotScheduledError,
                                               InvalidEventIdError, PartialApprovalError, PreviewNotEnabledError,
                                               TargetNotFoundError)
from azext_scheduledevents.core.maintenance import acknowledge
from azext_scheduledevents.core.policy import REGISTER_FEATURE, choose_route, read_policy
from azext_scheduledevents.core.resourcegraph import events_query, query_events
from azext_scheduledevents.core.targets import ArmTarget
from azext_scheduledevents.core.vocabulary import Route, TargetKind

from .armsend import arm_send
from .fakearm.server import FakeArm

NOW = datetime.now(timezone.utc)
OTHER_SUBSCRIPTION = '00000000-0000-0000-0000-000000000002'


@pytest.fixture(scope='module')
def arm(tmp_path_factory):
    with FakeArm(tmp_path_factory.mktemp('arm')) as fake:
        fake.add_subscription(OTHER_SUBSCRIPTION)
        web = fake.add_scale_set('rg', 'web', count=4, simulate_vms=False, publish=True)
        fake.add_scale_set('rg', 'web2', count=2, simulate_vms=False, publish=True)
        fake.add_scale_set('rg', 'quiet', count=2, simulate_vms=False)
        fake.add_vm('rg2', 'db1', simulate_vm=False, publish=True)
        fake.add_vm('rg2', 'db2', simulate_vm=False)
        fake.add_vm('rg2', 'db3', simulate_vm=False)
        fake.add_availability_set('rg2', 'dbset', ['db2', 'db3'], publish=True)
        other = fake.add_scale_set('rg', 'far', count=1, simulate_vms=False, publish=True,
                                   subscription=OTHER_SUBSCRIPTION)
        fake.rows = {
            'web': fake.publish(web, {'Resources': ['web_1', 'web_3']})['name'],
            'web2': fake.publish(fake.scale_sets[('rg', 'web2')], {'EventType': 'Freeze'})['name'],
            'db1': fake.publish(fake.vms[('rg2', 'db1')], {'EventType': 'Redeploy'})['name'],
            'dbset': fake.publish(fake.availability_sets[('rg2', 'dbset')])['name'],
            'far': fake.publish(other)['name'],
            'done': fake.publish(web, {'EventType': 'Freeze'})['name'],
        }
        fake.set_event_status(fake.rows['done'], 'Completed')
        yield fake


def target(kind, name, rg='rg', subscription=None):
    return ArmTarget(subscription or '00000000-0000-0000-0000-000000000001', rg, kind, name)


WEB = target(TargetKind.SCALE_SET, 'web')


def test_every_subscription_in_one_query_and_a_target_filtered_in_it(arm):
    send = arm_send(arm)
    everything = controlplane.list_events(send, statuses=controlplane.DEFAULT_STATUSES, now=NOW,
                                          subscriptions=[arm.subscription, OTHER_SUBSCRIPTION])
    assert sorted(row['EventId'] for row in everything) == sorted(
        arm.rows[k] for k in ('web', 'web2', 'db1', 'dbset', 'far'))
    web = controlplane.list_events(send, statuses=controlplane.DEFAULT_STATUSES, now=NOW, target=WEB)
    row, = web
    assert (row['EventId'], row['InstanceIds'], row['Route'], row['ResourceGroup']) == \
        (arm.rows['web'], ['1', '3'], 'control-plane', 'rg')
    assert row['Target'].lower() == WEB.id.lower() and row['SecondsUntilNotBefore'] > 0
    query = arm.requests('POST', r'.*/Microsoft.ResourceGraph/resources')[-1]['body']['query']
    assert "id has 'web'" in query and "resourceGroup =~ 'rg'" in query


def test_history_shows_completed_events(arm):
    rows = controlplane.list_events(arm_send(arm), statuses=['Completed', 'Canceled'], now=NOW, target=WEB)
    assert [(r['EventId'], r['EventStatus']) for r in rows] == [(arm.rows['done'], 'Completed')]


def test_paging_follows_every_skip_token(tmp_path):
    with FakeArm(tmp_path) as fake:
        many = fake.add_scale_set('rg', 'big', count=2, simulate_vms=False, publish=True)
        for _ in range(2500):
            fake.publish(many, {'Resources': ['big_0']})
        rows = query_events(arm_send(fake), statuses=['Scheduled'], subscriptions=[fake.subscription])
        pages = fake.requests('POST', r'.*/Microsoft.ResourceGraph/resources')
    assert len(rows) == 2500 and len({r['name'] for r in rows}) == 2500
    assert len(pages) == 3 and all(p['body']['options']['$top'] == 1000 for p in pages)
    assert '$skipToken' not in pages[0]['body']['options'] and pages[2]['body']['options']['$skipToken']


def test_the_query_quotes_what_it_is_given():
    query = events_query(statuses=['Scheduled'], target=target(TargetKind.VM, "it's"))
    assert "id has 'it\\'s'" in query


def test_approve_one_then_several_and_each_status_after(arm):
    send = arm_send(arm)
    row, = controlplane.approve_events(send, WEB, [arm.rows['web'].lower()], force=False, now=NOW)
    assert (row['StatusBefore'], row['EventStatus'], row['ApprovalSent']) == ('Scheduled', 'Started', True)
    assert arm.requests('POST', r'.*/acknowledge')[-1]['query']['api-version'] == '2025-11-01'
    db2, db3 = (arm.publish(arm.availability_sets[('rg2', 'dbset')])['name'] for _ in range(2))
    rows = controlplane.approve_events(send, target(TargetKind.AVAILABILITY_SET, 'dbset', 'rg2'), [db2, db3],
                                       force=False, now=NOW)
    assert [r['EventStatus'] for r in rows] == ['Started', 'Started']
    assert arm.requests('POST', r'.*/scheduledevents')[-1]['body'] == {'value': [db2, db3]}


def test_nothing_is_sent_for_an_unknown_a_started_or_a_malformed_id(arm):
    send = arm_send(arm)
    before = len(arm.requests('POST', r'.*Microsoft.Maintenance.*'))
    with pytest.raises(EventNotFoundError, match='not an event of'):
        controlplane.approve_events(send, WEB, [arm.rows['db1']], force=False, now=NOW)       # another target's
    with pytest.raises(EventNotScheduledError, match='Completed'):
        controlplane.approve_events(send, WEB, [arm.rows['done']], force=False, now=NOW)
    with pytest.raises(InvalidEventIdError):
        controlplane.approve_events(send, WEB, ['../../x'], force=True, now=NOW)
    assert len(arm.requests('POST', r'.*Microsoft.Maintenance.*')) == before


def test_a_partial_failure_names_the_ids_that_failed(arm):
    web2 = target(TargetKind.SCALE_SET, 'web2')
    fresh = arm.publish(arm.scale_sets[('rg', 'web2')])['name']
    with pytest.raises(PartialApprovalError) as caught:
        controlplane.approve_events(arm_send(arm), web2, [fresh, arm.rows['done']], force=True, now=NOW)
    assert list(caught.value.failures) == [arm.rows['done']]
    assert [r['ApprovalSent'] for r in caught.value.results] == [True, False]


def test_without_the_role_the_error_names_the_action(arm):
    arm.acknowledge_forbidden = True
    try:
        with pytest.raises(AcknowledgeForbiddenError, match='scheduledevents/acknowledge/action'):
            acknowledge(arm_send(arm), WEB, [arm.rows['web']])
    finally:
        arm.acknowledge_forbidden = False


def test_a_preview_api_version_only_where_the_stable_one_is_missing(arm):
    saved = arm.acknowledge_api_versions
    arm.acknowledge_api_versions = {'2023-10-01-preview'}
    try:
        fresh = arm.publish(arm.scale_sets[('rg', 'web2')])['name']
        assert acknowledge(arm_send(arm), target(TargetKind.SCALE_SET, 'web2'), [fresh]) == {}
        versions = [r['query']['api-version'] for r in arm.requests('POST', r'.*/acknowledge')[-3:]]
        assert versions == ['2025-11-01', '2025-10-01-preview', '2023-10-01-preview']
        arm.acknowledge_api_versions = set()
        with pytest.raises(PreviewNotEnabledError):
            acknowledge(arm_send(arm), target(TargetKind.SCALE_SET, 'web2'), [fresh])
    finally:
        arm.acknowledge_api_versions = saved


def test_policy_and_the_route_auto_takes(arm):
    send = arm_send(arm)
    web = read_policy(send, WEB)
    assert web.publishes and web.feature_state == 'Registered' and choose_route(web, Route.AUTO) == Route.CONTROL_PLANE
    quiet = read_policy(send, target(TargetKind.SCALE_SET, 'quiet'))
    assert not quiet.publishes and choose_route(quiet, Route.AUTO) == Route.RUN_COMMAND
    fix = next(v['Fix'] for v in quiet.routes() if v['Route'] == 'control-plane')
    assert fix == 'az vmss update -g rg -n quiet --additional-scheduled-events true'
    assert choose_route(quiet, Route.CONTROL_PLANE) == Route.CONTROL_PLANE
    with pytest.raises(TargetNotFoundError):
        read_policy(send, target(TargetKind.SCALE_SET, 'nothing'))


def test_an_unregistered_feature_is_named_with_its_command(arm):
    arm.feature_registered = False
    try:
        policy = read_policy(arm_send(arm), WEB)
    finally:
        arm.feature_registered = True
    verdict = next(v for v in policy.routes() if v['Route'] == 'control-plane')
    assert not verdict['Works'] and verdict['Fix'] == REGISTER_FEATURE and 'NotRegistered' in verdict['Why']


def test_without_the_preview_approve_says_so_and_sends_nothing(arm):
    fresh = arm.publish(arm.scale_sets[('rg', 'web2')])['name']
    before = len(arm.requests('POST', r'.*Microsoft.Maintenance.*'))
    arm.feature_registered = False
    try:
        with pytest.raises(PreviewNotEnabledError, match='not registered'):
            controlplane.approve_events(arm_send(arm), target(TargetKind.SCALE_SET, 'web2'), [fresh], force=False,
                                        now=NOW)
        assert controlplane.list_events(arm_send(arm), statuses=controlplane.DEFAULT_STATUSES, now=NOW,
                                        subscriptions=[arm.subscription]) == []
    finally:
        arm.feature_registered = True
    assert len(arm.requests('POST', r'.*Microsoft.Maintenance.*')) == before
    assert arm.requests('GET', r'.*/features/SendScheduledEventsPolicy')
