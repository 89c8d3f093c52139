# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The rolling cycle against the fake ARM, whose instances move through real states over (compressed)
time and whose ledger says how many were below 7 at every moment."""

import json
import threading
import time

import pytest

from azext_scheduledevents.core.config import CycleSettings
from azext_scheduledevents.core.cycle import Cycle
from azext_scheduledevents.core.errors import CycleError, PreflightError

from .fakearm.lifecycle import Timings
from .fakearm.server import FakeArm
from .test_fleet import compute_for

TIMINGS = Timings(reimage=0.5, restart=0.3, redeploy=0.5, create=0.5, delete=0.2, health_delay=0.3)


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
    return [r['path'].rsplit('/', 2)[-2:] for r in arm.requests('POST')]


def test_happy_path_one_at_a_time(arm):
    web(arm)
    report = Cycle(compute_for(arm), 'rg', 'web', settings=settings()).run()
    assert [r['result'] for r in report['instances']] == ['healthy'] * 5
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
    with pytest.raises(CycleError, match='web_2: not healthy 2 s after the reimage was sent') as raised:
        Cycle(compute_for(arm), 'rg', 'web', settings=settings(timeout_in_seconds=2)).run()
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
        Cycle(compute_for(arm), 'rg', 'web', settings=settings(timeout_in_seconds=2), state_path=str(state)).run()
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
