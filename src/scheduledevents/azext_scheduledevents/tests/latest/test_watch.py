# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The watcher against the emulator (a real server), with real handler processes."""

import time

import pytest

from azext_scheduledevents.core.approval import ApprovalPolicy
from azext_scheduledevents.core.detect import derive_transitions
from azext_scheduledevents.core.errors import StateLockedError
from azext_scheduledevents.core.events import ScheduledEvent
from azext_scheduledevents.core.lines import format_text
from azext_scheduledevents.core.state import EventRecord, StateStore, TransitionRecord
from azext_scheduledevents.emulator.imds import ImdsEmulator

from .test_events import EVENT
from .watching import Recorder, WatcherThread, read_state


@pytest.fixture
def recorder(tmp_path):
    return Recorder.create(tmp_path)


def recorded_events(state_dir):
    """The records in the state directory, or none while the watcher has written nothing yet."""
    try:
        return read_state(state_dir)['events']
    except FileNotFoundError:
        return {}


def approval_of(state_dir, event_id):
    """The recorded approval decision for an event, or None while there is none."""
    return recorded_events(state_dir).get(event_id, {}).get('approval')


def posts(server):
    return [r for r in server.requests() if r['method'] == 'POST']


def every_kind(recorder, kinds=('scheduled', 'started', 'completed')):
    """One recording handler per transition kind, labelled with the kind."""
    return {kind: [recorder.handler(kind)] for kind in kinds}


def wait_for_first_poll(emulator, watcher):
    """Wait for the watcher's first answered poll: from then on it polls every interval, so a short-lived state
    of an event added now is seen however long the watcher took to start."""
    watcher.wait_for(lambda: any(r['method'] == 'GET' and r['path'] == '/metadata/scheduledevents'
                                 for r in emulator.requests()))


@pytest.mark.parametrize('before, after, kinds', [
    (None, dict(EVENT), ['scheduled']),
    (None, dict(EVENT, EventStatus='Started', NotBefore=''), ['started']),
    (dict(EVENT), dict(EVENT), []),
    (dict(EVENT), dict(EVENT, NotBefore='Mon, 19 Sep 2016 18:59:47 GMT'), ['rescheduled']),
    (dict(EVENT), dict(EVENT, EventStatus='Started', NotBefore=''), ['started']),
    (dict(EVENT, EventStatus='Started', NotBefore=''), dict(EVENT, EventStatus='Started', NotBefore=''), []),
    (dict(EVENT), None, ['completed']),
], ids=['new', 'new-started', 'same', 'moved', 'started', 'still-started', 'gone'])
def test_derive_transitions(before, after, kinds):
    parse = lambda obj: obj and ScheduledEvent.from_wire(obj)  # noqa: E731
    assert [t.kind for t in derive_transitions(parse(before), parse(after))] == kinds


def test_every_transition_once_with_the_event_on_stdin_and_in_the_environment(emulator, recorder, tmp_path):
    handlers = every_kind(recorder, ('scheduled', 'rescheduled', 'started', 'completed'))
    with WatcherThread(emulator.url, tmp_path / 'state', commands=handlers) as watcher:
        wait_for_first_poll(emulator, watcher)
        event_id, = emulator.add_events([{'EventType': 'Reboot', 'notice': 2, 'runs_for': 0.5, 'DurationInSeconds': 30,
                                          'reschedule_after': 0.5, 'reschedule_notice': 3, 'EventSource': 'User'}])
        watcher.wait_for(lambda: len(recorder.runs('end')) == 4)
    assert watcher.transitions() == ['scheduled', 'rescheduled', 'started', 'completed']
    assert [label for label, _, _ in recorder.labels()] == ['scheduled', 'rescheduled', 'started', 'completed']
    first = recorder.runs()[0]
    assert first['stdin']['EventId'] == event_id and first['stdin']['transition'] == 'scheduled'
    env = first['env']
    assert (env['SCHEDULED_EVENT_ID'], env['SCHEDULED_EVENT_TYPE'], env['SCHEDULED_EVENT_STATUS']) == \
        (event_id, 'Reboot', 'Scheduled')
    assert (env['SCHEDULED_EVENT_RESOURCES'], env['SCHEDULED_EVENT_SOURCE'], env['SCHEDULED_EVENT_DURATION']) == \
        ('web_0', 'User', '30')
    assert env['SCHEDULED_EVENT_NOT_BEFORE'].endswith('GMT')
    assert 0 <= int(env['SCHEDULED_EVENT_DEADLINE_SECONDS']) <= 2
    assert posts(emulator) == []                        # approval is off by default


def test_hardware_failure_is_started_without_scheduled(emulator, recorder, tmp_path):
    with WatcherThread(emulator.url, tmp_path / 'state', commands=every_kind(recorder, ['started'])) as watcher:
        wait_for_first_poll(emulator, watcher)
        emulator.add_events([{'EventType': 'Redeploy', 'already_started': True, 'runs_for': 0.3}])
        watcher.wait_for(lambda: watcher.transitions() == ['started', 'completed'])
    assert [t for _, t, _ in recorder.labels()] == ['started']


def test_canceled_event_completes_without_starting(emulator, recorder, tmp_path):
    with WatcherThread(emulator.url, tmp_path / 'state', commands=every_kind(recorder)) as watcher:
        wait_for_first_poll(emulator, watcher)
        emulator.add_events([{'EventType': 'Reboot', 'notice': 60, 'cancel_after': 0.3}])
        watcher.wait_for(lambda: 'completed' in watcher.transitions())
        watcher.wait_for(lambda: len(recorder.runs('end')) == 2)
    assert watcher.transitions() == ['scheduled', 'completed']


def test_a_flickering_empty_document_does_not_complete_events(emulator, tmp_path):
    emulator.add_events([{'EventType': 'Reboot', 'notice': 60}])
    with WatcherThread(emulator.url, tmp_path / 'state', interval_in_seconds=0.1) as watcher:
        watcher.wait_for(lambda: watcher.transitions() == ['scheduled'])
        # Two polls in a row see an empty document (as while the service is being enabled), then it is back.
        emulator.add_fault({'kind': 'empty', 'count': 2, 'path': 'scheduledevents'})
        watcher.wait_for(lambda: emulator.state()['faults'] == [])
        time.sleep(0.3)
    assert watcher.transitions() == ['scheduled']


@pytest.mark.parametrize('settings, acted', [
    ({}, ['web_0']),
    ({'all_resources': True}, ['web_0', 'web_1']),
    ({'event_types': frozenset({'Freeze'})}, []),
], ids=['this-vm', 'all-resources', 'types'])
def test_which_events_are_acted_on(emulator, tmp_path, settings, acted):
    emulator.add_events([{'EventType': 'Reboot', 'Resources': ['web_0']},
                         {'EventType': 'Reboot', 'Resources': ['web_1']}])
    with WatcherThread(emulator.url, tmp_path / 'state', **settings) as watcher:
        # Both events are recorded (acted on or ignored) once the state holds them; then let lines settle.
        watcher.wait_for(lambda: len(recorded_events(tmp_path / 'state')) == 2)
        watcher.wait_for(lambda: len(watcher.lines) == len(acted))
        time.sleep(0.3)
    assert sorted(line['Resources'][0] for line in watcher.lines) == acted      # each event on its own thread


def test_short_freezes_can_be_ignored(emulator, tmp_path):
    short, long_ = emulator.add_events([{'EventType': 'Freeze', 'DurationInSeconds': 5},
                                        {'EventType': 'Freeze', 'DurationInSeconds': 30}])
    with WatcherThread(emulator.url, tmp_path / 'state', ignore_freeze_under_in_seconds=10) as watcher:
        watcher.wait_for(lambda: watcher.lines)
        time.sleep(0.2)
    assert [line['EventId'] for line in watcher.lines] == [long_]
    assert read_state(tmp_path / 'state')['events'][short]['ignored'].startswith('a Freeze of 5 s')


def test_approval_after_successful_handlers(emulator, recorder, tmp_path):
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'notice': 60}])
    with WatcherThread(emulator.url, tmp_path / 'state', commands={'scheduled': [recorder.handler('drain')]},
                       policy=ApprovalPolicy(mode='after-handlers')) as watcher:
        watcher.wait_for(lambda: 'started' in watcher.transitions())
    assert watcher.transitions()[:3] == ['scheduled', 'approved', 'started']
    post, = posts(emulator)
    assert event_id in post['body']
    assert post['time'] >= recorder.runs('end')[0]['ended']          # only after the drain finished


@pytest.mark.parametrize('spec, detail', [
    ({'label': 'drain', 'exit_code': 3}, 'exited 3'),
    ({'label': 'drain', 'sleep': 5}, 'did not finish'),
], ids=['failed', 'timeout'])
def test_no_approval_when_a_handler_fails_or_times_out(emulator, recorder, tmp_path, spec, detail, caplog):
    emulator.add_events([{'EventType': 'Reboot', 'notice': 60}])
    with WatcherThread(emulator.url, tmp_path / 'state', commands={'scheduled': [recorder.handler(**spec)]},
                       policy=ApprovalPolicy(mode='after-handlers'), handler_timeout_in_seconds=1) as watcher:
        watcher.wait_for(lambda: 'not-approved' in watcher.transitions())
    assert posts(emulator) == []
    assert detail in caplog.text and 'Not approving' in caplog.text
    assert emulator.state()['events'][0]['EventStatus'] == 'Scheduled'


def test_handler_deadline_is_cut_to_not_before_minus_the_margin(emulator, recorder, tmp_path):
    emulator.add_events([{'EventType': 'Preempt', 'notice': 7}])
    started = time.monotonic()
    with WatcherThread(emulator.url, tmp_path / 'state', deadline_margin_in_seconds=5,
                       commands={'scheduled': [recorder.handler('slow', sleep=30)]},
                       policy=ApprovalPolicy(mode='after-handlers')) as watcher:
        watcher.wait_for(lambda: 'not-approved' in watcher.transitions(), timeout=20)
        elapsed = time.monotonic() - started        # not counting the watcher's stop
    # About 7 - 5 = 2 s, less the rounding to whole seconds (so 1 to 2 s); without the margin about 6 s, without
    # the cut to NotBefore the 300 s handler timeout.
    assert elapsed < 5


def test_immediate_approval_does_not_wait_for_handlers(emulator, recorder, tmp_path):
    emulator.add_events([{'EventType': 'Preempt', 'notice': 30}])
    with WatcherThread(emulator.url, tmp_path / 'state', commands={'scheduled': [recorder.handler('cp', sleep=1)]},
                       policy=ApprovalPolicy(mode='immediately')) as watcher:
        watcher.wait_for(lambda: len(recorder.runs('end')) == 1)
    assert posts(emulator)[0]['time'] < recorder.runs('end')[0]['ended']


@pytest.mark.parametrize('policy, source, approved', [
    (ApprovalPolicy(mode='after-handlers', event_types=frozenset({'Freeze'})), 'Platform', False),
    (ApprovalPolicy(mode='after-handlers'), 'User', False),
    (ApprovalPolicy(mode='after-handlers', user_initiated=True), 'User', True),
    (ApprovalPolicy(mode='after-handlers'), 'Platform', True),
], ids=['type-not-allowed', 'user-by-default', 'user-allowed', 'platform'])
def test_approval_rules(emulator, tmp_path, policy, source, approved):
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'EventSource': source, 'notice': 60}])
    with WatcherThread(emulator.url, tmp_path / 'state', policy=policy) as watcher:
        watcher.wait_for(lambda: approval_of(tmp_path / 'state', event_id))
    assert bool(posts(emulator)) is approved


def test_leader_mode_with_two_vms(tmp_path, recorder):
    event = {'EventType': 'Reboot', 'notice': 60, 'Resources': ['web_0', 'web_3'],
             'EventId': 'C7061BAC-AFDC-4513-B24B-AA5F13A16123'}
    policy = ApprovalPolicy(mode='after-handlers', approver='leader')
    with ImdsEmulator(vm_name='web_0', rate_limit=0, events=[event]) as leader_imds, \
            ImdsEmulator(vm_name='web_3', rate_limit=0, events=[event]) as member_imds:
        with WatcherThread(leader_imds.url, tmp_path / 'leader', policy=policy,
                           commands={'scheduled': [recorder.handler('leader')]}) as leader, \
                WatcherThread(member_imds.url, tmp_path / 'member', policy=policy,
                              commands={'scheduled': [recorder.handler('member')]}) as member:
            leader.wait_for(lambda: 'approved' in leader.transitions())
            member.wait_for(lambda: approval_of(tmp_path / 'member', event['EventId']))
        assert len(posts(leader_imds)) == 1 and posts(member_imds) == []
    assert sorted(label for label, _, _ in recorder.labels()) == ['leader', 'member']
    record = read_state(tmp_path / 'member')['events'][event['EventId']]
    assert record['approval'] == 'withheld' and 'leader, web_0, approves' in record['approval_reason']


def test_restart_runs_nothing_twice_and_completes_after_reboot(emulator, recorder, tmp_path):
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'notice': 60}])
    state = tmp_path / 'state'
    with WatcherThread(emulator.url, state, commands=every_kind(recorder)) as first:
        first.wait_for(lambda: len(recorder.runs('end')) == 1)
    with WatcherThread(emulator.url, state, commands=every_kind(recorder)) as second:
        time.sleep(0.4)
        assert second.lines == []                        # already handled: nothing printed, nothing run
    # The VM "reboots": the maintenance happens and ends while no watcher runs.
    emulator.withdraw(event_id)
    with WatcherThread(emulator.url, state, commands=every_kind(recorder)) as third:
        third.wait_for(lambda: len(recorder.runs('end')) == 2)
    assert third.transitions() == ['completed']
    assert [t for _, t, _ in recorder.labels()] == ['scheduled', 'completed']


def crashed_mid_handler(emulator, state, **event):
    """A state as a watcher killed during the scheduled handler of a new event leaves it: step begun."""
    event_id, = emulator.add_events([dict({'EventType': 'Reboot', 'notice': 60}, **event)])
    store = StateStore(state)
    store.load(vm_name='web_0')
    snapshot = ScheduledEvent.from_wire(emulator.document()['Events'][0]).to_wire()
    store.save(EventRecord(event_id=event_id, snapshot=snapshot, first_seen=time.time(), transitions=[
        TransitionRecord(key=f'{event_id}/scheduled', kind='scheduled', event=snapshot, detected_at=time.time(),
                         emitted=True, steps={'command:0:env': 'begun'}, attempts={'command:0:env': 1})]))
    return event_id


def test_a_step_cut_off_by_a_crash_runs_again_and_then_approval_follows(emulator, recorder, tmp_path):
    state = tmp_path / 'state'
    event_id = crashed_mid_handler(emulator, state)
    with WatcherThread(emulator.url, state, commands={'scheduled': [recorder.handler('drain')]},
                       policy=ApprovalPolicy(mode='after-handlers')) as watcher:
        watcher.wait_for(lambda: 'approved' in watcher.transitions())
    run, = recorder.runs('start')
    assert run['env']['SCHEDULED_EVENT_ATTEMPT'] == '2' and run['stdin']['attempt'] == 2
    assert len(posts(emulator)) == 1 and watcher.transitions().count('approved') == 1
    assert 'scheduled' not in watcher.transitions()             # its line was written before the crash
    transition = read_state(state)['events'][event_id]['transitions'][0]
    assert transition['steps'] == {'command:0:env': 'ok'} and transition['attempts'] == {'command:0:env': 2}


def test_a_step_cut_off_after_not_before_is_late_and_blocks_approval(emulator, recorder, tmp_path):
    state = tmp_path / 'state'
    event_id = crashed_mid_handler(emulator, state, notice=0.5)
    time.sleep(1.0)                                     # NotBefore passes while no watcher runs
    with WatcherThread(emulator.url, state, commands={'scheduled': [recorder.handler('drain')]},
                       policy=ApprovalPolicy(mode='after-handlers')) as watcher:
        watcher.wait_for(lambda: 'not-approved' in watcher.transitions())
    assert recorder.runs() == [] and posts(emulator) == []
    assert read_state(state)['events'][event_id]['transitions'][0]['steps'] == {'command:0:env': 'late'}
    decision, = [line for line in watcher.lines if line['transition'] == 'not-approved']
    assert 'cut off too late' in decision['detail']


@pytest.mark.parametrize('policy, source, reason', [
    (ApprovalPolicy(mode='after-handlers', event_types=frozenset({'Freeze'})), 'Platform', '--approve-types'),
    (ApprovalPolicy(mode='immediately'), 'User', 'user-initiated'),
    (ApprovalPolicy(mode='after-handlers', approver='leader'), 'Platform', 'the leader, web_3'),
], ids=['type', 'user', 'not-leader'])
def test_every_withheld_approval_says_why_in_one_line(emulator, tmp_path, policy, source, reason):
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'EventSource': source, 'notice': 60,
                                      'Resources': ['web_3', 'web_0']}])
    with WatcherThread(emulator.url, tmp_path / 'state', policy=policy) as watcher:
        watcher.wait_for(lambda: 'not-approved' in watcher.transitions())
        time.sleep(0.3)
    decisions = [line for line in watcher.lines if line['transition'] in ('approved', 'not-approved')]
    assert len(decisions) == 1 and reason in decisions[0]['detail'] and decisions[0]['EventId'] == event_id
    assert posts(emulator) == []


def test_no_decision_line_without_approval(emulator, tmp_path):
    emulator.add_events([{'EventType': 'Reboot', 'notice': 60}])
    with WatcherThread(emulator.url, tmp_path / 'state') as watcher:
        watcher.wait_for(lambda: 'scheduled' in watcher.transitions())
        time.sleep(0.3)
    assert watcher.transitions() == ['scheduled']


def test_the_completed_line_says_the_event_is_gone(emulator, tmp_path):
    event_id, = emulator.add_events([{'EventType': 'Freeze', 'notice': 60}])
    with WatcherThread(emulator.url, tmp_path / 'state') as watcher:
        watcher.wait_for(lambda: 'scheduled' in watcher.transitions())
        emulator.withdraw(event_id)
        watcher.wait_for(lambda: 'completed' in watcher.transitions())
    completed, = [line for line in watcher.lines if line['transition'] == 'completed']
    assert completed['SecondsUntilNotBefore'] is None
    assert 'left the document' in format_text(completed) and '(in ' not in format_text(completed)


def test_a_corrupt_event_file_is_set_aside(emulator, tmp_path, caplog):
    state = tmp_path / 'state'
    (state / 'events').mkdir(parents=True)
    broken = state / 'events' / '00000000-0000-0000-0000-000000000000.json'
    broken.write_text('{"event_id": "00000000-0000-0000-0000-000000000000", "snap')
    emulator.add_events([{'EventType': 'Freeze'}])
    with WatcherThread(emulator.url, state) as watcher:
        watcher.wait_for(lambda: watcher.lines)
    assert not broken.exists() and list((state / 'events').glob('*.corrupt-*'))
    assert 'moved to' in caplog.text


def test_state_of_another_vm_is_set_aside(tmp_path):
    store = StateStore(tmp_path)
    store.load(vm_name='web_0')
    store.save(EventRecord(event_id=EVENT['EventId'], snapshot=EVENT, first_seen=1.0))
    other = StateStore(tmp_path)
    other.load(vm_name='web_9')
    assert other.events == {} and list(tmp_path.glob('events.corrupt-*'))
    again = StateStore(tmp_path)
    again.load(vm_name='web_9')
    assert read_state(tmp_path)['vm_name'] == 'web_9'


def test_one_watcher_per_state_directory(tmp_path):
    first = StateStore(tmp_path)
    first.lock()
    try:
        with pytest.raises(StateLockedError, match='another watcher'):
            StateStore(tmp_path).lock()
    finally:
        first.unlock()
    StateStore(tmp_path).lock()


def test_imds_faults_never_stop_the_watcher(emulator, tmp_path):
    emulator.add_fault({'kind': 'status', 'status': 500, 'count': 3})
    emulator.add_fault({'kind': 'garbage', 'count': 2})
    emulator.add_fault({'kind': 'reset', 'count': 2})
    emulator.add_fault({'kind': 'empty', 'count': 2})
    emulator.add_events([{'EventType': 'Freeze'}])
    with WatcherThread(emulator.url, tmp_path / 'state') as watcher:
        watcher.wait_for(lambda: watcher.transitions() == ['scheduled'])


def test_once_polls_once(emulator, tmp_path, recorder):
    emulator.add_events([{'EventType': 'Freeze'}])
    with WatcherThread(emulator.url, tmp_path / 'state', once=True,
                       commands={'scheduled': [recorder.handler('x')]}) as watcher:
        watcher.wait_for(lambda: watcher.result is not None)
    assert watcher.result is True and watcher.transitions() == ['scheduled']
    assert len(recorder.runs('end')) == 1
    assert len([r for r in emulator.requests() if r['path'] == '/metadata/scheduledevents']) == 1


def test_a_write_cut_off_by_a_crash_leaves_the_old_file(tmp_path):
    store = StateStore(tmp_path)
    store.load(vm_name='web_0')
    store.save(EventRecord(event_id=EVENT['EventId'], snapshot=EVENT, first_seen=1.0))
    (tmp_path / 'events' / '.tmp-abc123.tmp').write_text('{"event_id": "half')
    again = StateStore(tmp_path)
    again.load(vm_name='web_0')
    assert list(again.events) == [EVENT['EventId']]
    assert [p.name for p in (tmp_path / 'events').iterdir()] == [EVENT['EventId'] + '.json']
