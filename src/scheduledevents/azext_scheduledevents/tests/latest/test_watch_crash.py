# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""`az scheduled-events watch` killed with its whole process tree, handlers included (as systemd stops a
crashed unit's cgroup), again and again in the middle of handlers: every handler still finishes exactly
once, and no event is approved twice or without a finished, successful scheduled handler."""

import json
import os
import signal
import time
from collections import Counter

from .conftest import wait_until
from .test_az_watch import ENDPOINT, watch_args
from .watching import Recorder, read_state

EVENTS = 8
KILLS = 12
HANDLER_SECONDS = 2.0


def descendants(pid):
    """``pid`` and every process below it, from /proc (children first, so none is orphaned unseen)."""
    parents = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat', encoding='utf-8') as handle:
                    parents.setdefault(int(handle.read().rsplit(')', 1)[1].split()[1]), []).append(int(entry))
            except OSError:
                continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree[::-1]


def kill_tree(proc):
    """SIGKILL ``proc`` and all below it, as systemd stops a cgroup: stopped top-down first, until no new
    process appears, so none spawned during the walk (handlers run in their own session) outlives it."""
    stopped = set()
    while True:
        fresh = [pid for pid in descendants(proc.pid)[::-1] if pid not in stopped]
        if not fresh:
            break
        for pid in fresh:
            signal_quietly(pid, signal.SIGSTOP)
            stopped.add(pid)
    for pid in stopped:
        signal_quietly(pid, signal.SIGKILL)
    proc.wait()


def signal_quietly(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def mid_handler(recorder, proc):
    """True when a handler of the watcher ``proc`` is well inside its run and none is near its end or just
    ended, so a kill cuts runs off cleanly: a run that ended was recorded, a run cut off did not end."""
    now = time.time()
    alive = set(descendants(proc.pid))
    ended = {run['pid']: run['ended'] for run in recorder.runs('end')}
    running = [now - run['started'] for run in recorder.runs('start') if run['pid'] in alive - set(ended)]
    recent_end = any(now - when < 0.3 for when in ended.values())
    return bool(running) and not recent_end and all(0.2 < age < 0.9 for age in running)


def test_killing_the_process_tree_mid_handler_reruns_and_finishes_each_step_once(az, emulator, tmp_path):
    recorder = Recorder.create(tmp_path)
    state = str(tmp_path / 'state')
    ids = emulator.add_events([{'EventType': 'Reboot', 'at': i * 1.0, 'notice': 120, 'runs_for': 1}
                               for i in range(EVENTS)])
    args = watch_args(recorder, '--state-dir', state, '--approve', 'after-handlers',
                      kinds=('scheduled', 'completed'), sleep=HANDLER_SECONDS)
    for _ in range(KILLS):
        proc = az.popen(*args, **{ENDPOINT: emulator.url})
        try:
            wait_until(lambda: mid_handler(recorder, proc), timeout=60, interval=0.02)
        finally:
            kill_tree(proc)
    cut_off = len(recorder.runs('start')) - len(recorder.runs('end'))
    proc = az.popen(*args, **{ENDPOINT: emulator.url})
    try:
        wait_until(lambda: all(all(t['done'] for t in read_state(state)['events'].get(i, {}).get(
            'transitions', [{'done': False}])) and read_state(state)['events'][i].get('completed_at')
            for i in ids), timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert cut_off >= KILLS                                      # the kills really cut handlers off
    ends = Counter((run['transition'], run['id']) for run in recorder.runs('end'))
    assert ends == Counter({(kind, i): 1 for i in ids for kind in ('scheduled', 'completed')})
    reruns = [run for run in recorder.runs('start') if run['env']['SCHEDULED_EVENT_ATTEMPT'] != '1']
    assert reruns                                                # attempt 2, 3...: a handler can tell
    approvals = Counter(item['EventId'] for request in emulator.requests()
                        if request['method'] == 'POST' and request['status'] == 200
                        for item in json.loads(request['body'])['StartRequests'])
    assert approvals == Counter({i: 1 for i in ids})             # each once, and only after its handler ended
    scheduled_end = {run['id']: run['ended'] for run in recorder.runs('end') if run['transition'] == 'scheduled'}
    posted = {item['EventId']: request['time'] for request in emulator.requests() if request['method'] == 'POST'
              for item in json.loads(request['body'])['StartRequests']}
    assert all(posted[i] >= scheduled_end[i] for i in ids)
