# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""core/cycle/decide.py: the cycle's admission and follow-up rules, as tables, with no server at all.

``decide`` is pure, so every rule that keeps a scale set available (max-unavailable, zone by zone,
maintenance under way, the pause between starts) and every way one instance ends (healthy, its hooks,
a failure, a timeout, a disappearance) is checked here by its exact actions and next state, one step or a
few steps at a time, with the time given by hand. The fake-ARM tests (test_cycle.py) only see what
happened; these say why, and cover the cases that are too slow or too racy to stage there.
"""

import pytest

from azext_scheduledevents.core.cycle.decide import (Finished, RollState, Rules, RunHook, Send, Skipped, Stop, Taken,
                                                     decide)
from azext_scheduledevents.core.cycle.hooks import HookRun
from azext_scheduledevents.core.cycle.readings import InstanceReading
from azext_scheduledevents.core.health import InstanceHealth
from azext_scheduledevents.core.vocabulary import CyclePhase, CycleResult, EventStatus, HookKind

NOW = 1000.0
STARTED, SCHEDULED = EventStatus.STARTED, EventStatus.SCHEDULED
BEFORE, AFTER = HookKind.BEFORE, HookKind.AFTER


def reading(instance_id, zone='1', health='healthy', power='running', provisioning='Succeeded'):
    """One instance as the cycle reads it; healthy (scores 7) unless told otherwise."""
    return InstanceReading(InstanceHealth(f'web_{instance_id}', instance_id, provisioning, power, health),
                           zone, True, 'Linux')


def fleet(count=5, *, below=(), zones=None, gone=(), failed=()):
    """{id: reading} of instances '0'..count-1: those in ``below`` unhealthy (scores 3), those in ``failed``
    ProvisioningState Failed, those in ``gone`` absent; ``zones`` maps an id to its zone (else zone '1')."""
    zones = zones or {}
    readings = {}
    for number in range(count):
        instance_id = str(number)
        if instance_id in gone:
            continue
        readings[instance_id] = reading(instance_id, zone=zones.get(instance_id, '1'),
                                        health='unhealthy' if instance_id in below else 'healthy',
                                        provisioning='Failed' if instance_id in failed else 'Succeeded')
    return readings


def rules(**kwargs):
    return Rules(required_score=7, **kwargs)


def queue(*ids):
    return RollState(tuple(ids))


def sent(at, seen_below=False):
    """What ``decide`` keeps for an instance whose action it sent at ``at``."""
    return Taken(CyclePhase.ACTION_SENT, at, sent_at=at, seen_below=seen_below)


def passed(kind, attempt=1):
    return HookRun(kind, attempt, exit_code=0, stdout='ok')


TWO_ZONES = {'0': '1', '1': '1', '2': '2', '3': '2'}


# Admission: one step from nothing taken ---------------------------------------------------------------------

ADMISSION = [
    # id, rules, readings, maintenance, queue, the instances sent
    ('one-at-a-time', rules(), fleet(), {}, '01234', ['0']),
    ('max-unavailable-2-takes-two', rules(max_unavailable=2), fleet(), {}, '01234', ['0', '1']),
    ('max-unavailable-3-takes-three', rules(max_unavailable=3), fleet(), {}, '01234', ['0', '1', '2']),
    ('no-more-than-the-queue', rules(max_unavailable=3), fleet(), {}, '4', ['4']),
    ('another-below-blocks-the-next-start', rules(), fleet(below='4'), {}, '0123', []),
    ('another-below-takes-one-of-two-slots', rules(max_unavailable=2), fleet(below='4'), {}, '0123', ['0']),
    ('two-below-fill-max-unavailable-2', rules(max_unavailable=2), fleet(below='34'), {}, '012', []),
    ('a-below-candidate-is-waited-for', rules(max_unavailable=2), fleet(below='0'), {}, '012', []),
    ('ignore-initial-health-takes-the-below-first', rules(ignore_initial_health=True), fleet(below='2'), {},
     '0123', ['2']),
    ('ignore-initial-health-below-first-then-in-order', rules(max_unavailable=2, ignore_initial_health=True),
     fleet(below='2'), {}, '0123', ['2', '0']),
    ('started-event-counts-against-max-unavailable', rules(), fleet(), {'0': STARTED}, '012', []),
    ('started-event-on-one-not-queued-counts', rules(), fleet(), {'4': STARTED}, '0123', []),
    ('started-event-holds-back-and-the-next-goes', rules(max_unavailable=2), fleet(), {'0': STARTED}, '012',
     ['1']),
    ('started-event-on-an-instance-that-is-gone-does-not-count', rules(), fleet(gone='4'), {'4': STARTED},
     '0123', ['0']),
    ('scheduled-event-does-not-count', rules(), fleet(), {'0': SCHEDULED, '1': SCHEDULED}, '012', ['0']),
    ('scheduled-event-does-not-count-2', rules(max_unavailable=2), fleet(), {'0': SCHEDULED}, '012', ['0', '1']),
    ('zone-by-zone-stops-at-the-zone-end', rules(max_unavailable=3, zone_by_zone=True), fleet(4, zones=TWO_ZONES),
     {}, '0123', ['0', '1']),
    ('without-zone-by-zone-zones-mix', rules(max_unavailable=3), fleet(4, zones=TWO_ZONES), {}, '0123',
     ['0', '1', '2']),
    ('zone-by-zone-a-below-in-zone-1-holds-zone-2', rules(max_unavailable=2, zone_by_zone=True),
     fleet(4, zones=TWO_ZONES, below='0'), {}, '23', []),
    ('without-zone-by-zone-a-below-in-zone-1-leaves-room', rules(max_unavailable=2),
     fleet(4, zones=TWO_ZONES, below='0'), {}, '23', ['2']),
    ('zone-by-zone-a-below-in-zone-1-lets-zone-1-go', rules(max_unavailable=2, zone_by_zone=True),
     fleet(4, zones=TWO_ZONES, below='0'), {}, '123', ['1']),
    ('zone-by-zone-a-started-event-in-zone-1-holds-zone-2', rules(max_unavailable=2, zone_by_zone=True),
     fleet(4, zones=TWO_ZONES), {'1': STARTED}, '23', []),
    ('zone-by-zone-zone-2-first-when-queued-first', rules(max_unavailable=3, zone_by_zone=True),
     fleet(4, zones=TWO_ZONES), {}, '2301', ['2', '3']),
]


@pytest.mark.parametrize('the_rules, readings, maintenance, order, expected', [case[1:] for case in ADMISSION],
                         ids=[case[0] for case in ADMISSION])
def test_admission(the_rules, readings, maintenance, order, expected):
    state, actions = decide(queue(*order), readings, maintenance, NOW, the_rules)
    assert actions == [Send(i) for i in expected]
    assert state.queue == tuple(i for i in order if i not in expected)
    below = {i for i, r in readings.items() if not r.health.is_healthy(7)}
    assert state.taken == {i: sent(NOW, seen_below=i in below) for i in expected}
    assert state.last_started == (NOW if expected else None)
    assert state.blocked_since == (None if expected else NOW)


@pytest.mark.parametrize('max_unavailable, expected', [(1, [RunHook('0', BEFORE)]),
                                                       (2, [RunHook('0', BEFORE), RunHook('1', BEFORE)])])
def test_a_before_script_is_what_starts_an_instance(max_unavailable, expected):
    state, actions = decide(queue('0', '1', '2'), fleet(), {}, NOW, rules(max_unavailable=max_unavailable,
                                                                          before_script=True))
    assert actions == expected
    assert state.taken == {a.instance_id: Taken(CyclePhase.BEFORE_SCRIPT, NOW) for a in expected}


# One at a time, over several steps ---------------------------------------------------------------------------

def test_one_at_a_time_the_second_waits_for_the_first_to_be_healthy_again():
    the_rules, order = rules(), ('0', '1', '2')
    state, actions = decide(queue(*order), fleet(3), {}, NOW, the_rules)
    assert actions == [Send('0')]
    state, actions = decide(state, fleet(3), {}, NOW + 5, the_rules)         # not seen below yet
    assert actions == [] and state.taken == {'0': sent(NOW)} and state.queue == ('1', '2')
    state, actions = decide(state, fleet(3, below='0'), {}, NOW + 10, the_rules)
    assert actions == [] and state.taken == {'0': sent(NOW, seen_below=True)} and state.queue == ('1', '2')
    state, actions = decide(state, fleet(3, below='0'), {}, NOW + 20, the_rules)
    assert actions == []
    state, actions = decide(state, fleet(3), {}, NOW + 31.25, the_rules)
    assert actions == [Finished('0', 31.2), Send('1')]
    assert state.taken == {'1': sent(NOW + 31.25)} and state.queue == ('2',) and state.last_started == NOW + 31.25


def test_max_unavailable_two_refills_the_slot_a_finished_instance_leaves():
    the_rules = rules(max_unavailable=2)
    state, actions = decide(queue('0', '1', '2', '3'), fleet(4), {}, NOW, the_rules)
    assert actions == [Send('0'), Send('1')]
    state, actions = decide(state, fleet(4, below='01'), {}, NOW + 10, the_rules)
    assert actions == []
    state, actions = decide(state, fleet(4, below='1'), {}, NOW + 20, the_rules)
    assert actions == [Finished('0', 20.0), Send('2')]
    assert set(state.taken) == {'1', '2'} and state.queue == ('3',)


def test_an_instance_that_drops_for_another_reason_holds_the_next_start_until_it_is_back():
    the_rules = rules()                                                      # web_0 is not in the queue
    state, actions = decide(queue('1', '2'), fleet(3, below='0'), {}, NOW, the_rules)
    assert actions == [] and state.queue == ('1', '2') and state.blocked_since == NOW
    state, actions = decide(state, fleet(3, below='0'), {}, NOW + 100, the_rules)
    assert actions == [] and state.blocked_since == NOW                      # the wait began at NOW
    state, actions = decide(state, fleet(3), {}, NOW + 200, the_rules)
    assert actions == [Send('1')] and state.blocked_since is None


def test_a_candidate_that_dropped_below_is_waited_for_then_taken():
    the_rules = rules(max_unavailable=2)
    state, actions = decide(queue('0', '1'), fleet(2, below='0'), {}, NOW, the_rules)
    assert actions == [] and state.queue == ('0', '1') and state.taken == {}
    state, actions = decide(state, fleet(2), {}, NOW + 50, the_rules)
    assert actions == [Send('0'), Send('1')]


def test_ignore_initial_health_takes_the_below_one_as_already_seen_below():
    the_rules = rules(ignore_initial_health=True)
    state, actions = decide(queue('0', '1', '2'), fleet(3, below='1'), {}, NOW, the_rules)
    assert actions == [Send('1')] and state.queue == ('0', '2')
    assert state.taken == {'1': sent(NOW, seen_below=True)}
    state, actions = decide(state, fleet(3, below='1'), {}, NOW + 40, the_rules)
    assert actions == []
    state, actions = decide(state, fleet(3), {}, NOW + 60, the_rules)
    assert actions == [Finished('1', 60.0), Send('0')]


# The pause between starts -----------------------------------------------------------------------------------

def test_pause_between_starts_within_one_batch():
    the_rules = rules(max_unavailable=3, pause_in_seconds=60)
    state, actions = decide(queue('0', '1', '2', '3'), fleet(4), {}, NOW, the_rules)
    assert actions == [Send('0')]                                            # one per pause, room or not
    state, actions = decide(state, fleet(4), {}, NOW + 59.9, the_rules)
    assert actions == [] and state.blocked_since is None                     # something is under way
    state, actions = decide(state, fleet(4), {}, NOW + 60, the_rules)
    assert actions == [Send('1')] and state.last_started == NOW + 60
    state, actions = decide(state, fleet(4), {}, NOW + 119, the_rules)
    assert actions == []
    state, actions = decide(state, fleet(4), {}, NOW + 120, the_rules)
    assert actions == [Send('2')] and state.queue == ('3',)


def test_pause_counts_from_the_last_start_not_the_last_finish():
    the_rules = rules(pause_in_seconds=60)
    state, _ = decide(queue('0', '1'), fleet(2), {}, NOW, the_rules)
    state, _ = decide(state, fleet(2, below='0'), {}, NOW + 10, the_rules)
    state, actions = decide(state, fleet(2), {}, NOW + 30, the_rules)
    assert actions == [Finished('0', 30.0)] and state.taken == {}
    state, actions = decide(state, fleet(2), {}, NOW + 59, the_rules)
    assert actions == [] and state.queue == ('1',)
    state, actions = decide(state, fleet(2), {}, NOW + 60, the_rules)
    assert actions == [Send('1')]


# Zone by zone -------------------------------------------------------------------------------------------------

def test_zone_by_zone_never_takes_zone_2_while_zone_1_is_taken_or_below():
    the_rules, zones = rules(max_unavailable=2, zone_by_zone=True), {'0': '1', '1': '1', '2': '2', '3': '2'}
    state, actions = decide(queue('0', '1', '2', '3'), fleet(4, zones=zones), {}, NOW, the_rules)
    assert actions == [Send('0'), Send('1')]
    state, actions = decide(state, fleet(4, zones=zones, below='01'), {}, NOW + 10, the_rules)
    assert actions == []
    # web_0 is done, web_1 (zone 1) still taken: a slot is free, but zone 2 waits.
    state, actions = decide(state, fleet(4, zones=zones, below='1'), {}, NOW + 20, the_rules)
    assert actions == [Finished('0', 20.0)] and state.queue == ('2', '3') and set(state.taken) == {'1'}
    # web_1 is done, but web_0 (zone 1) dropped again for another reason: zone 2 still waits.
    state, actions = decide(state, fleet(4, zones=zones, below='0'), {}, NOW + 30, the_rules)
    assert actions == [Finished('1', 30.0)] and state.queue == ('2', '3') and state.taken == {}
    state, actions = decide(state, fleet(4, zones=zones, below='0'), {}, NOW + 40, the_rules)
    assert actions == []
    state, actions = decide(state, fleet(4, zones=zones), {}, NOW + 50, the_rules)
    assert actions == [Send('2'), Send('3')]


def test_zone_by_zone_takes_the_next_of_the_same_zone_when_there_is_room():
    the_rules = rules(max_unavailable=2, zone_by_zone=True)
    zones = {'0': '1', '1': '1', '2': '1', '3': '2'}
    state, actions = decide(queue('0', '1', '2', '3'), fleet(4, zones=zones), {}, NOW, the_rules)
    assert actions == [Send('0'), Send('1')]
    state, _ = decide(state, fleet(4, zones=zones, below='01'), {}, NOW + 10, the_rules)
    state, actions = decide(state, fleet(4, zones=zones, below='1'), {}, NOW + 20, the_rules)
    assert actions == [Finished('0', 20.0), Send('2')] and state.queue == ('3',)


# Maintenance ----------------------------------------------------------------------------------------------------

def test_an_instance_under_a_started_event_is_held_back_until_the_event_ends():
    the_rules = rules(max_unavailable=2)
    state, actions = decide(queue('0', '1', '2'), fleet(3), {'0': STARTED}, NOW, the_rules)
    assert actions == [Send('1')] and state.queue == ('0', '2')
    state, actions = decide(state, fleet(3, below='1'), {'0': STARTED}, NOW + 10, the_rules)
    assert actions == []
    state, actions = decide(state, fleet(3, below='1'), {}, NOW + 20, the_rules)           # the event is over
    assert actions == [Send('0')] and state.queue == ('2',)


def test_a_started_event_fills_the_only_slot_and_a_scheduled_one_does_not():
    the_rules = rules()
    state, actions = decide(queue('0', '1'), fleet(3), {'2': STARTED}, NOW, the_rules)
    assert actions == [] and state.blocked_since == NOW
    state, actions = decide(state, fleet(3), {'2': SCHEDULED}, NOW + 10, the_rules)
    assert actions == [Send('0')] and state.blocked_since is None


# Hooks ------------------------------------------------------------------------------------------------------------

def test_before_script_first_then_the_action_once_it_passed():
    the_rules = rules(before_script=True)
    state, actions = decide(queue('0', '1'), fleet(2), {}, NOW, the_rules)
    assert actions == [RunHook('0', BEFORE)]
    assert state.taken == {'0': Taken(CyclePhase.BEFORE_SCRIPT, NOW)}
    state, actions = decide(state, fleet(2), {}, NOW + 30, the_rules)                 # the hook still runs
    assert actions == [] and state.taken == {'0': Taken(CyclePhase.BEFORE_SCRIPT, NOW)}
    state = state.with_hook('0', passed(BEFORE))
    state, actions = decide(state, fleet(2), {}, NOW + 40, the_rules)
    assert actions == [Send('0')]
    assert state.taken == {'0': sent(NOW + 40)} and state.queue == ('1',)
    state, _ = decide(state, fleet(2, below='0'), {}, NOW + 50, the_rules)
    state, actions = decide(state, fleet(2), {}, NOW + 70, the_rules)
    assert actions == [Finished('0', 30.0), RunHook('1', BEFORE)]


@pytest.mark.parametrize('run, reason', [
    (HookRun(BEFORE, 1, exit_code=3), 'the before-script exited 3; the instance was not touched'),
    (HookRun(BEFORE, 2, error='Run Command timed out'),
     'the before-script did not run to its end: Run Command timed out; the instance was not touched'),
], ids=['exit-3', 'did-not-finish'])
def test_a_failed_before_script_stops_the_cycle_without_touching_the_instance(run, reason):
    the_rules = rules(before_script=True)
    state, _ = decide(queue('0', '1'), fleet(2), {}, NOW, the_rules)
    state, actions = decide(state.with_hook('0', run), fleet(2), {}, NOW + 10, the_rules)
    assert actions == [Stop('0', CycleResult.FAILED, reason)]
    assert not any(isinstance(a, Send) for a in actions)


def test_after_script_runs_once_healthy_again_and_then_it_is_finished():
    the_rules = rules(after_script=True)
    state, _ = decide(queue('0', '1'), fleet(2), {}, NOW, the_rules)
    state, _ = decide(state, fleet(2, below='0'), {}, NOW + 10, the_rules)
    state, actions = decide(state, fleet(2), {}, NOW + 40.3, the_rules)
    assert actions == [RunHook('0', AFTER)]
    assert state.taken == {'0': Taken(CyclePhase.AFTER_SCRIPT, NOW + 40.3, sent_at=NOW)} and state.queue == ('1',)
    state, actions = decide(state, fleet(2), {}, NOW + 50, the_rules)                   # it still runs
    assert actions == [] and state.taken['0'].phase == CyclePhase.AFTER_SCRIPT
    state, actions = decide(state.with_hook('0', passed(AFTER)), fleet(2), {}, NOW + 90, the_rules)
    # Seconds to healthy: from the action to healthy again, without the after-script's own time.
    assert actions == [Finished('0', 40.3), Send('1')]


def test_a_failed_after_script_stops_the_cycle():
    the_rules = rules(after_script=True, action='restart')
    state, _ = decide(queue('0', '1'), fleet(2), {}, NOW, the_rules)
    state, _ = decide(state, fleet(2, below='0'), {}, NOW + 10, the_rules)
    state, _ = decide(state, fleet(2), {}, NOW + 40, the_rules)
    state, actions = decide(state.with_hook('0', HookRun(AFTER, 1, exit_code=2)), fleet(2), {}, NOW + 50,
                            the_rules)
    assert actions == [Stop('0', CycleResult.FAILED, 'the after-script exited 2 after the restart')]


def test_before_script_seen_below_is_read_when_the_action_is_sent():
    """An instance below when its before-script began (taken with ignore-initial-health) that is healthy
    again when the script ends has not been seen below *after its action*: the first healthy reading after
    the Send is not the end of its reimage, and the next instance must not start yet (max-unavailable 1)."""
    the_rules = rules(before_script=True, ignore_initial_health=True)
    state, actions = decide(queue('0', '1'), fleet(2, below='0'), {}, NOW, the_rules)
    assert actions == [RunHook('0', BEFORE)]
    state, actions = decide(state.with_hook('0', passed(BEFORE)), fleet(2), {}, NOW + 30, the_rules)
    assert actions == [Send('0')]
    # The reimage was just accepted; the instance view still shows it as it was (healthy).
    state, actions = decide(state, fleet(2), {}, NOW + 35, the_rules)
    assert actions == []
    assert state.taken == {'0': sent(NOW + 30)} and state.queue == ('1',)


# How an action ends ------------------------------------------------------------------------------------------

def test_healthy_again_after_being_seen_below_is_finished_with_its_seconds():
    the_rules = rules()
    state, _ = decide(queue('0'), fleet(1), {}, NOW, the_rules)
    state, _ = decide(state, {'0': reading('0', power='stopped')}, {}, NOW + 12, the_rules)
    state, _ = decide(state, {'0': reading('0', health='initializing')}, {}, NOW + 80, the_rules)
    state, actions = decide(state, fleet(1), {}, NOW + 123.44, the_rules)
    assert actions == [Finished('0', 123.4)]
    assert state == RollState((), {}, NOW, None)


@pytest.mark.parametrize('action', ['reimage', 'restart'])
def test_never_seen_below_is_not_finished_and_times_out(action):
    the_rules = rules(timeout_in_seconds=600, action=action)
    state, _ = decide(queue('0', '1'), fleet(2), {}, NOW, the_rules)
    for later in (10, 300, 600):
        state, actions = decide(state, fleet(2), {}, NOW + later, the_rules)
        assert actions == [] and state.taken == {'0': sent(NOW)}
    state, actions = decide(state, fleet(2), {}, NOW + 600.5, the_rules)
    assert actions == [Stop('0', CycleResult.TIMEOUT, f'not healthy 600 s after the {action} was sent '
                                                      f'(never seen below the score: the {action} did not show)')]


def test_still_below_at_the_timeout_says_why():
    the_rules = rules(timeout_in_seconds=90)
    state, _ = decide(queue('0'), fleet(1), {}, NOW, the_rules)
    _, actions = decide(state, fleet(1, below='0'), {}, NOW + 91, the_rules)
    assert actions == [Stop('0', CycleResult.TIMEOUT, 'not healthy 90 s after the reimage was sent (scores 3, '
                                                      'needs 7 (ProvisioningState Succeeded, PowerState running, '
                                                      'HealthState unhealthy))')]


def test_provisioning_state_failed_stops_the_cycle():
    the_rules = rules()
    state, _ = decide(queue('0', '1'), fleet(2), {}, NOW, the_rules)
    state, actions = decide(state, fleet(2, failed='0'), {}, NOW + 10, the_rules)
    assert actions == [Stop('0', CycleResult.FAILED, 'the reimage failed (ProvisioningState Failed)')]
    assert state.queue == ('1',)


def test_an_instance_that_disappears_during_its_action_stops_the_cycle():
    the_rules = rules()
    state, _ = decide(queue('0', '1'), fleet(2), {}, NOW, the_rules)
    state, _ = decide(state, fleet(2, below='0'), {}, NOW + 10, the_rules)
    _, actions = decide(state, fleet(2, gone='0'), {}, NOW + 20, the_rules)
    assert actions == [Stop('0', CycleResult.FAILED, 'the instance disappeared during its action')]


def test_an_instance_that_disappears_during_its_after_script_stops_the_cycle():
    the_rules = rules(after_script=True)
    state, _ = decide(queue('0'), fleet(1), {}, NOW, the_rules)
    state, _ = decide(state, fleet(1, below='0'), {}, NOW + 10, the_rules)
    state, _ = decide(state, fleet(1), {}, NOW + 20, the_rules)
    _, actions = decide(state.with_hook('0', passed(AFTER)), {}, {}, NOW + 30, the_rules)
    assert actions == [Stop('0', CycleResult.FAILED, 'the instance disappeared during its action')]


def test_a_stop_keeps_the_finished_of_the_same_step_and_drops_the_rest():
    the_rules = rules(max_unavailable=2)
    state, _ = decide(queue('0', '1', '2'), fleet(3), {}, NOW, the_rules)
    state, _ = decide(state, fleet(3, below='01'), {}, NOW + 10, the_rules)
    state, actions = decide(state, fleet(3, failed='1'), {}, NOW + 20, the_rules)
    assert actions == [Finished('0', 20.0), Stop('1', CycleResult.FAILED, 'the reimage failed (ProvisioningState '
                                                                          'Failed)')]
    assert set(state.taken) == {'1'} and state.queue == ('2',)                # web_2 was not started


def test_a_stop_drops_the_hooks_and_sends_of_the_same_step():
    # The loop carries actions out in order: a hook or an action before the Stop would run after all.
    the_rules = rules(max_unavailable=2, after_script=True)
    state, _ = decide(queue('0', '1', '2'), fleet(3), {}, NOW, the_rules)
    state, _ = decide(state, fleet(3, below='01'), {}, NOW + 10, the_rules)
    _, actions = decide(state, fleet(3, failed='1'), {}, NOW + 20, the_rules)          # web_0 healthy again
    assert actions == [Stop('1', CycleResult.FAILED, 'the reimage failed (ProvisioningState Failed)')]


def test_a_queued_instance_that_no_longer_exists_is_skipped():
    the_rules = rules()
    state, _ = decide(queue('0', '1', '2'), fleet(3), {}, NOW, the_rules)
    state, _ = decide(state, fleet(3, below='0', gone='1'), {}, NOW + 10, the_rules)
    state, actions = decide(state, fleet(3, gone='1'), {}, NOW + 20, the_rules)
    assert actions == [Finished('0', 20.0), Skipped('1', 'the instance no longer exists'), Send('2')]
    assert state.queue == () and set(state.taken) == {'2'}


def test_a_queued_instance_that_no_longer_exists_is_skipped_even_when_nothing_else_can_go():
    state, actions = decide(queue('0', '1'), fleet(3, gone='0', below='2'), {}, NOW, rules())
    assert actions == [Skipped('0', 'the instance no longer exists')]
    assert state.queue == ('1',) and state.taken == {} and state.blocked_since is None


# Nothing can start ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('readings, maintenance, waited', [
    (fleet(5, below='4'), {}, 'web_4 to be healthy again'),
    (fleet(5, below='0'), {}, 'web_0 to be healthy again'),                 # the candidate itself
    (fleet(5), {'0': STARTED}, 'the maintenance of web_0 to end'),
    (fleet(5), {'4': STARTED, '0': SCHEDULED}, 'the maintenance of web_4 to end'),
    (fleet(5, below='34'), {'4': STARTED}, 'web_3, web_4 to be healthy again and the maintenance of web_4 to end'),
], ids=['another-below', 'the-candidate-below', 'maintenance-of-the-candidate', 'maintenance-of-another', 'both'])
def test_nothing_can_start_for_longer_than_the_timeout_stops_skipped(readings, maintenance, waited):
    the_rules, order = rules(timeout_in_seconds=300), ('0', '1', '2', '3')
    state, actions = decide(queue(*order), readings, maintenance, NOW, the_rules)
    assert actions == [] and state.blocked_since == NOW and state.queue == order
    state, actions = decide(state, readings, maintenance, NOW + 300, the_rules)
    assert actions == [] and state.blocked_since == NOW
    state, actions = decide(state, readings, maintenance, NOW + 300.5, the_rules)
    # The first of the queue is named, held back by an event or not.
    assert actions == [Stop('0', CycleResult.SKIPPED, f'waited 300 s for {waited} before starting')]


def test_the_wait_starts_again_after_something_started():
    the_rules = rules(timeout_in_seconds=300)
    state, _ = decide(queue('0', '1'), fleet(3, below='2'), {}, NOW, the_rules)
    assert state.blocked_since == NOW
    state, actions = decide(state, fleet(3), {}, NOW + 200, the_rules)
    assert actions == [Send('0')] and state.blocked_since is None
    state, _ = decide(state, fleet(3, below='0'), {}, NOW + 210, the_rules)
    state, actions = decide(state, fleet(3, below='2'), {}, NOW + 220, the_rules)      # web_2 drops again
    assert actions == [Finished('0', 20.0)] and state.queue == ('1',) and state.blocked_since is None
    state, actions = decide(state, fleet(3, below='2'), {}, NOW + 230, the_rules)
    assert actions == [] and state.blocked_since == NOW + 230
    state, actions = decide(state, fleet(3, below='2'), {}, NOW + 530, the_rules)      # 530 s after the first
    assert actions == [] and state.blocked_since == NOW + 230
    _, actions = decide(state, fleet(3, below='2'), {}, NOW + 530.5, the_rules)
    assert actions == [Stop('1', CycleResult.SKIPPED, 'waited 300 s for web_2 to be healthy again before starting')]
