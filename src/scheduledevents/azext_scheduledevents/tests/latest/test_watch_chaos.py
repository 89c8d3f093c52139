# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Hundreds of events through a faulty IMDS: nothing missed, nothing done twice."""

from collections import Counter

from azext_scheduledevents.core.approval import ApprovalPolicy
from azext_scheduledevents.emulator.imds import ImdsEmulator

from .watching import Recorder, WatcherThread, read_state

EVENTS = 200
FAULT_RATE = 0.2


def test_chaos_zero_missed_zero_duplicates(tmp_path):
    recorder = Recorder.create(tmp_path)
    # A new event every 0.12 s, each Scheduled for at most 3 s (approval starts it sooner) and Started for 2 s:
    # about 20 alive at once. Windows of a second were too short on a loaded machine; with no deadline margin
    # (5 s by default) a Scheduled handler gets those 3 s rather than the 1 s minimum.
    plans = [{'EventType': ('Freeze', 'Reboot', 'Redeploy', 'Preempt', 'Terminate')[i % 5], 'at': i * 0.12,
              'notice': 3.0, 'runs_for': 2.0} for i in range(EVENTS)]
    faults = [{'kind': kind, 'probability': FAULT_RATE / 5, 'count': None, **extra} for kind, extra in (
        ('status', {'status': 500}), ('status', {'status': 429, 'retry_after': 0.05}), ('reset', {}),
        ('garbage', {}), ('delay', {'seconds': 0.1}))]
    with ImdsEmulator(vm_name='web_0', rate_limit=0, seed=7) as emulator:
        for fault in faults:
            emulator.add_fault(fault)
        ids = emulator.add_events(plans)
        handlers = {kind: [recorder.handler(kind)] for kind in ('scheduled', 'started', 'completed')}
        with WatcherThread(emulator.url, tmp_path / 'state', commands=handlers, interval_in_seconds=0.05,
                           deadline_margin_in_seconds=0, policy=ApprovalPolicy(mode='after-handlers')) as watcher:
            watcher.wait_for(lambda: len(recorder.runs('end')) == 3 * EVENTS, timeout=180)
        faulted = Counter(r['fault'] for r in emulator.requests() if r['fault'])
    runs = Counter((kind, event_id) for _, kind, event_id in recorder.labels())
    assert sum(faulted.values()) > 100                      # the faults really happened
    assert set(runs) == {(kind, i) for i in ids for kind in ('scheduled', 'started', 'completed')}   # none missed
    assert max(runs.values()) == 1                          # none twice
    lines = Counter((line['transition'], line['EventId']) for line in watcher.lines)
    assert max(lines.values()) == 1
    state = read_state(tmp_path / 'state')['events']
    assert all(all(t['done'] for t in state[i]['transitions']) for i in ids)
