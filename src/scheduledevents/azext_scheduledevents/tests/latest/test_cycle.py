# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The rolling cycle against the fake ARM, whose instances move through real states over (compressed)
time and whose ledger says how many were below 7 at every moment."""

import json
import threading
import time
from xml.etree import ElementTree

import pytest

from azext_scheduledevents._format import transform_cycle_table
from azext_scheduledevents.core.config import CycleSettings
from azext_scheduledevents.core.cycle import Cycle
from azext_scheduledevents.core.cycle.junit import junit_xml
from azext_scheduledevents.core.cycle.platformevents import from_resource_graph
from azext_scheduledevents.core.cycle.statefile import CycleStateFile
from azext_scheduledevents.core.errors import CycleError, PreflightError
from azext_scheduledevents.core.targets import ArmTarget
from azext_scheduledevents.core.vocabulary import TargetKind

from .armsend import arm_send

from .fakearm.lifecycle import Timings
from .fakearm.server import FakeArm
from .test_fleet import compute_for

TIMINGS = Timings(reimage=0.5, restart=0.3, redeploy=0.5, create=0.5, delete=0.2, health_delay=0.3)
# The timeout of the cycles an instance that never becomes healthy stops: the healthy instances before it dip
# and recover in about 1.2 s, well within it even on a loaded machine.
STUCK_TIMEOUT = 5


def settings(**kwargs):
    kwargs.setdefault('timeout_in_seconds', 8)
    return CycleSettings(poll_min_in_seconds=0.1, poll_max_in_seconds=0.3, **kwargs)


@pytest.fixture
def arm(tmp_path):
    with FakeArm(tmp_path, timings=TIMINGS) as server:
        yield server


def web(arm, count=5, **kwargs):
    kwargs.setdefault('health_extension', True)
    return arm.add_scale_set('rg', 'web', count=count, simulate_vms=False, **kwargs)


def actions(arm):
    """[instance id, action] of every POST to a scale set (Resource Graph queries are not actions)."""
    return [r['path'].rsplit('/', 2)[-2:] for r in arm.requests('POST', r'/virtualMachineScaleSets/')]


def test_happy_path_one_at_a_time(arm):
    web(arm)
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings()).run()
    assert [r['result'] for r in report['instances']] == ['healthy'] * 5
    assert [r['score'] for r in report['instances']] == [7] * 5             # the score it finished with
    assert actions(arm) == [[str(i), 'reimage'] for i in range(5)]          # one instance each, in order
    assert arm.ledger.max_below() == 1
    assert all(r['seconds_to_healthy'] >= TIMINGS.reimage for r in report['instances'])
    assert report['totals']['cycled'] == 5 and not arm.requests('POST', r'/reimageall$')


def test_max_unavailable_two(arm):
    web(arm, count=6)
    Cycle(compute_for(arm), 'rg', 'web', settings=settings(max_unavailable=2)).run()
    assert arm.ledger.max_below() == 2
    assert len(actions(arm)) == 6


def test_an_instance_that_never_becomes_healthy_stops_the_cycle(arm):
    scale_set = web(arm)
    scale_set.instances['2'].life.never_healthy = True
    with pytest.raises(CycleError, match=f'web_2: not healthy {STUCK_TIMEOUT} s after the reimage was sent') as raised:
        Cycle(compute_for(arm), 'rg', 'web', settings=settings(timeout_in_seconds=STUCK_TIMEOUT)).run()
    results = [r['result'] for r in raised.value.report['instances']]
    assert results == ['healthy', 'healthy', 'timeout', 'skipped', 'skipped']
    assert actions(arm) == [['0', 'reimage'], ['1', 'reimage'], ['2', 'reimage']]      # nothing after it
    assert arm.ledger.max_below() == 1


def test_a_failed_operation_stops_the_cycle(arm):
    scale_set = web(arm)
    scale_set.instances['1'].life.fail_next_operation = True
    with pytest.raises(CycleError, match='web_1: the reimage failed'):
        Cycle(compute_for(arm), 'rg', 'web', settings=settings()).run()
    assert actions(arm) == [['0', 'reimage'], ['1', 'reimage']]


def test_a_429_storm_is_ridden_out(arm):
    web(arm, count=3)
    arm.add_fault(method='GET', path=r'/virtualmachines$', status=429, count=6, retry_after=0.1)
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings()).run()
    assert report['totals']['cycled'] == 3 and arm.ledger.max_below() == 1


def test_an_instance_deleted_mid_run_is_skipped(arm):
    scale_set = web(arm, count=4)

    def on_progress(text):
        if text == 'web_0: reimage sent':
            arm.operate(scale_set, [scale_set.instances['2']], 'delete')
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings(), on_progress=on_progress).run()
    assert [(r['name'], r['result']) for r in report['instances']] == [
        ('web_0', 'healthy'), ('web_1', 'healthy'), ('web_2', 'skipped'), ('web_3', 'healthy')]


def test_unhealthy_instance_stops_the_preflight_unless_ignored(arm):
    scale_set = web(arm, count=3)
    scale_set.instances['1'].life.health_state = 'unhealthy'
    with pytest.raises(PreflightError, match='web_1 scores 3, needs 7'):
        Cycle(compute_for(arm), 'rg', 'web', settings=settings()).run()
    assert actions(arm) == []
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings(ignore_initial_health=True)).run()
    assert [r['result'] for r in report['instances']] == ['healthy'] * 3          # the unhealthy one too


def test_one_instance_set_scales_out_cycles_and_scales_back(arm):
    web(arm, count=1)
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings()).run()
    assert report['scaledOutInstances'] == ['1'] and report['totals']['cycled'] == 1
    assert [r['method'] for r in arm.requests() if r['method'] in ('PATCH', 'DELETE')] == ['PATCH', 'DELETE']
    assert arm.requests('DELETE')[0]['path'].endswith('/virtualMachines/1')
    assert arm.ledger.max_below() == 1


def test_scale_back_also_when_the_cycle_fails(arm):
    scale_set = web(arm, count=1)
    scale_set.instances['0'].life.fail_next_operation = True
    with pytest.raises(CycleError):
        Cycle(compute_for(arm), 'rg', 'web', settings=settings()).run()
    assert arm.requests('DELETE')[0]['path'].endswith('/virtualMachines/1')


def test_dry_run_plans_with_reads_only(arm):
    scale_set = web(arm, count=5)
    scale_set.instances['3'].life.health_state = 'unhealthy'
    plan = Cycle(compute_for(arm), 'rg', 'web', settings=settings(max_unavailable=2)).plan().to_view()
    assert plan['order'] == ['0', '1', '2', '4'] and plan['batches'] == [['0', '1'], ['2', '4']]
    assert plan['lowestHealthyPredicted'] == 2 and plan['skipped'][0]['instanceId'] == '3'
    assert {r['method'] for r in arm.requests()} == {'GET'}


def test_killed_then_resumed(arm, tmp_path):
    scale_set = web(arm, count=4)
    state = tmp_path / 'cycle.json'
    scale_set.instances['2'].life.never_healthy = True
    with pytest.raises(CycleError):
        Cycle(compute_for(arm), 'rg', 'web', settings=settings(timeout_in_seconds=STUCK_TIMEOUT),
              state_path=str(state)).run()
    assert json.loads(state.read_text())['finished'] == ['0', '1']
    scale_set.instances['2'].life.never_healthy = False
    scale_set.instances['2'].life.health_state = 'healthy'
    before = len(actions(arm))
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings(), state_path=str(state), resume=True).run()
    assert actions(arm)[before:] == [['2', 'reimage'], ['3', 'reimage']]
    assert [r['result'] for r in report['instances']] == ['done-before-resume'] * 2 + ['healthy'] * 2


def test_without_the_extension_health_means_score_3(arm, caplog):
    web(arm, count=2, health_extension=False)
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings()).run()
    assert report['requiredScore'] == 3 and report['totals']['cycled'] == 2
    assert 'no Application Health extension' in caplog.text
    with pytest.raises(PreflightError, match='--health extension'):
        Cycle(compute_for(arm), 'rg', 'web', settings=settings(health='extension')).run()


@pytest.mark.parametrize('action', ['restart', 'redeploy'])
def test_other_actions_use_their_own_per_instance_endpoint(arm, action):
    web(arm, count=2)
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings(action=action)).run()
    assert report['totals']['cycled'] == 2 and actions(arm) == [['0', action], ['1', action]]


def test_an_instance_that_drops_for_another_reason_holds_the_next_start(arm):
    scale_set = web(arm, count=3)
    life = scale_set.instances['2'].life
    healed = {}

    def heal_later():
        time.sleep(1.5)                                     # longer than web_0's whole reimage (0.8 s)
        healed['at'] = time.time()
        life.health_state = 'healthy'

    def on_progress(text):
        if text == 'web_0: reimage sent':
            life.health_state = 'unhealthy'                 # something else breaks web_2 meanwhile
            threading.Thread(target=heal_later, daemon=True).start()
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings(), on_progress=on_progress).run()
    assert report['totals']['cycled'] == 3
    web_1, = [r for r in arm.requests('POST') if r['path'].endswith('/1/reimage')]
    assert web_1['time'] >= healed['at']                     # not started while web_2 was below 7


# Update, selection, zones, maintenance, reports ------------------------------------------------------------

def upgrades(arm):
    """The instance ids of every manual upgrade sent, one list per request."""
    return [r['body']['instanceIds'] for r in arm.requests('POST', r'/manualupgrade$')]


def test_update_brings_only_the_outdated_instances_to_the_model_one_at_a_time(arm):
    scale_set = web(arm, count=5)
    arm.change_model(scale_set)
    for instance_id in ('0', '3'):
        scale_set.instances[instance_id].life.model_version = scale_set.model_version
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings(action='update')).run()
    assert upgrades(arm) == [['1'], ['2'], ['4']]                        # each by its own id, never '*'
    assert [r['result'] for r in report['instances']] == ['up-to-date', 'healthy', 'healthy', 'up-to-date',
                                                          'healthy']
    assert report['totals']['upToDate'] == 2 and arm.ledger.max_below() == 1
    assert all(vm.latest_model_applied for vm in compute_for(arm).virtual_machine_scale_set_vms.list('rg', 'web'))
    assert actions(arm) == [['web', 'manualupgrade']] * 3                 # no other action at all


def test_include_up_to_date_updates_every_instance(arm):
    scale_set = web(arm, count=3)
    scale_set.instances['1'].life.model_version = arm.change_model(scale_set)
    Cycle(compute_for(arm), 'rg', 'web', settings=settings(action='update', include_up_to_date=True)).run()
    assert upgrades(arm) == [['0'], ['1'], ['2']]


def test_only_outdated_reimages_only_what_is_not_on_the_latest_model(arm):
    scale_set = web(arm, count=4)
    arm.change_model(scale_set)
    scale_set.instances['2'].life.model_version = scale_set.model_version
    plan = Cycle(compute_for(arm), 'rg', 'web', settings=settings(only_outdated=True)).plan().to_view()
    assert plan['order'] == ['0', '1', '3'] and plan['outdated'] == ['0', '1', '3']
    assert plan['skipped'] == [{'instanceId': '2', 'reason': 'up to date: already on the latest model '
                                                             '(--include-up-to-date cycles it too)'}]
    Cycle(compute_for(arm), 'rg', 'web', settings=settings(only_outdated=True)).run()
    assert actions(arm) == [['0', 'reimage'], ['1', 'reimage'], ['3', 'reimage']]


def test_zone_by_zone_never_has_two_zones_down_at_once(arm):
    web(arm, count=6, zones=['1', '2', '3'])                # 0 and 3 in zone 1, 1 and 4 in 2, 2 and 5 in 3
    cycle = Cycle(compute_for(arm), 'rg', 'web', settings=settings(max_unavailable=2, zone_by_zone=True))
    plan = cycle.plan().to_view()
    assert plan['order'] == ['0', '3', '1', '4', '2', '5'] and plan['batches'] == [['0', '3'], ['1', '4'], ['2', '5']]
    assert plan['zones'] == {'0': '1', '1': '2', '2': '3', '3': '1', '4': '2', '5': '3'}
    report = cycle.run()
    assert report['totals']['cycled'] == 6
    down = [zones for _, zones in arm.below_by_zone()]
    assert max(len(z) for z in down) == 1                             # never two zones below 7 at once
    assert max(len(names) for zones in down for names in zones.values()) == 2     # the zone's pair together
    assert [r['zone'] for r in report['instances']] == ['1', '2', '3', '1', '2', '3']


def test_without_zone_by_zone_two_zones_go_down_together(arm):
    web(arm, count=4, zones=['1', '2'])
    Cycle(compute_for(arm), 'rg', 'web', settings=settings(max_unavailable=2)).run()
    assert max(len(zones) for _, zones in arm.below_by_zone()) == 2    # the rule above can fail


def test_an_instance_under_a_started_event_is_held_back_and_counted(arm):
    scale_set = web(arm, count=4, publish=True)
    event = arm.publish(scale_set, {'EventType': 'Reboot', 'Resources': ['web_1']})['name']
    arm.set_event_status(event, 'Started')
    target = ArmTarget(arm.subscription, 'rg', TargetKind.SCALE_SET, 'web')
    ended = {}

    def on_progress(text):
        if text == 'web_3: reimage sent':
            ended['at'], ended['monotonic'] = time.time(), time.monotonic()
            arm.set_event_status(event, 'Completed')
    reread = settings(max_unavailable=2, maintenance_reread_in_seconds=0.2)
    cycle = Cycle(compute_for(arm), 'rg', 'web', settings=reread,
                  maintenance=from_resource_graph(arm_send(arm), target), on_progress=on_progress)
    assert cycle.plan().to_view()['underMaintenance'] == ['1']
    report = cycle.run()
    assert report['totals']['cycled'] == 4
    assert [a[0] for a in actions(arm)] == ['0', '2', '3', '1']        # web_1 went last, once its event left
    web_1, = [r for r in arm.requests('POST') if r['path'].endswith('/1/reimage')]
    assert web_1['time'] >= ended['at']
    # While web_1 was under maintenance it took one of the two slots: one other instance down at a time.
    assert max(len(below) for at, below, _ in arm.ledger.entries if at < ended['monotonic']) == 1


def test_a_scheduled_event_is_shown_but_holds_nothing(arm):
    scale_set = web(arm, count=2, publish=True)
    arm.publish(scale_set, {'EventType': 'Freeze', 'Resources': ['web_0']})
    target = ArmTarget(arm.subscription, 'rg', TargetKind.SCALE_SET, 'web')
    cycle = Cycle(compute_for(arm), 'rg', 'web', settings=settings(),
                  maintenance=from_resource_graph(arm_send(arm), target))
    plan = cycle.plan().to_view()
    assert plan['scheduledMaintenance'] == ['0'] and plan['underMaintenance'] == []
    cycle.run()
    assert actions(arm) == [['0', 'reimage'], ['1', 'reimage']]


def test_junit_report_of_a_stopped_cycle(arm):
    scale_set = web(arm, count=4)
    scale_set.instances['1'].life.never_healthy = True
    with pytest.raises(CycleError) as raised:
        Cycle(compute_for(arm), 'rg', 'web', settings=settings(timeout_in_seconds=STUCK_TIMEOUT)).run()
    suites = ElementTree.fromstring(junit_xml(raised.value.report))
    suite, = suites.findall('testsuite')
    assert (suite.get('tests'), suite.get('failures'), suite.get('skipped')) == ('4', '1', '2')
    cases = {case.get('name'): case for case in suite.iter('testcase')}
    assert list(cases) == ['web_0', 'web_1', 'web_2', 'web_3']
    assert cases['web_0'].find('failure') is None and float(cases['web_0'].get('time')) >= TIMINGS.reimage
    failure = cases['web_1'].find('failure')
    assert failure.get('type') == 'timeout'
    assert f'not healthy {STUCK_TIMEOUT} s after the reimage was sent' in failure.get('message')
    assert cases['web_2'].find('skipped').get('message') == 'the cycle stopped before reaching it'


def test_state_file_counts_hook_attempts_and_refuses_another_cycles_file(tmp_path):
    path = str(tmp_path / 'cycle.json')
    first = CycleStateFile(path, 'rg', 'web', 'update').load()
    assert [first.next_attempt('2', 'before-script') for _ in range(2)] == [1, 2]
    first.record_finished('1')
    again = CycleStateFile(path, 'rg', 'web', 'update').load()
    assert again.finished == {'1'} and again.next_attempt('2', 'before-script') == 3
    assert not [p for p in tmp_path.iterdir() if p.name != 'cycle.json']           # no temp file left
    with pytest.raises(PreflightError, match='belongs to another cycle'):
        CycleStateFile(path, 'rg', 'web', 'reimage').load()
    (tmp_path / 'cycle.json').write_text('{not json')
    with pytest.raises(PreflightError, match='cannot be read'):
        CycleStateFile(path, 'rg', 'web', 'update').load()


def test_table_of_a_plan_and_of_a_report(arm):
    scale_set = web(arm, count=3, zones=['1', '2'])
    arm.change_model(scale_set)
    scale_set.instances['1'].life.model_version = scale_set.model_version
    cycle = Cycle(compute_for(arm), 'rg', 'web', settings=settings(action='update', zone_by_zone=True))
    assert transform_cycle_table(cycle.plan().to_view()) == [
        {'InstanceId': '0', 'Batch': 1, 'Zone': '1', 'Outdated': 'yes', 'Maintenance': '', 'Skipped': ''},
        {'InstanceId': '2', 'Batch': 2, 'Zone': '1', 'Outdated': 'yes', 'Maintenance': '', 'Skipped': ''},
        {'InstanceId': '1', 'Batch': '', 'Zone': '2', 'Outdated': 'no', 'Maintenance': '',
         'Skipped': 'up to date: already on the latest model (--include-up-to-date cycles it too)'}]
    rows = transform_cycle_table(cycle.run())
    assert [(r['Instance'], r['Zone'], r['Result'], r['Scripts']) for r in rows] == [
        ('web_0', '1', 'healthy', ''), ('web_1', '2', 'up-to-date', ''), ('web_2', '1', 'healthy', '')]
    assert all(r['SecondsToHealthy'] >= TIMINGS.update for r in rows if r['Result'] == 'healthy')
