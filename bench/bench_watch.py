#!/usr/bin/env python
# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""`az scheduled-events watch --interval 1` against the emulator: how fast it reacts, what it costs idle.

Prints detection latency (event injected -> handler started, p50/p99), approve latency (handler exit ->
POST received), IMDS requests per second, and idle CPU and RSS of the watching process over 60 s.
Goals: p99 <= interval + 0.1 s, approve <= 50 ms, <= 1 request/s, idle CPU <= 0.5 % of a core.
Run with the project's venv: .venv/bin/python bench/bench_watch.py [--events 100] [--idle 60]
"""

import argparse
import logging
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'scheduledevents'))

from procstats import cpu_seconds, rss_mib, percentile  # noqa: E402
from azext_scheduledevents.emulator.imds import ImdsEmulator  # noqa: E402
from azext_scheduledevents.tests.latest import netguard  # noqa: E402
from azext_scheduledevents.tests.latest.azcli import build_and_add_extension  # noqa: E402
from azext_scheduledevents.tests.latest.watching import Recorder  # noqa: E402

INTERVAL = 1.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--events', type=int, default=100)
    parser.add_argument('--idle', type=float, default=60.0)
    args = parser.parse_args()
    netguard.install()
    logging.getLogger('cli').setLevel(logging.ERROR)      # the emulator's own notes are not figures
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as root, ImdsEmulator(vm_name='web_0', rate_limit=5) as emulator:
        root = Path(root)
        az = build_and_add_extension(root)
        recorder = Recorder.create(root)
        proc = az.popen('scheduled-events', 'watch', '--interval', str(INTERVAL), '--only-show-errors',
                        '--state-dir', str(root / 'state'), '--approve', 'after-handlers',
                        '--on-scheduled', recorder.command('drain'), output=subprocess.DEVNULL,
                        AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT=emulator.url)
        try:
            time.sleep(3)                              # start-up, first polls
            injected = {}
            for _ in range(args.events):
                time.sleep(rng.uniform(0.2, 1.2))      # land anywhere in the poll cycle
                injected[emulator.add_events([{'EventType': 'Reboot', 'notice': 60, 'runs_for': 0.1}])[0]] = \
                    time.time()
                deadline = time.time() + 10
                while len(recorder.runs('end')) < len(injected) and time.time() < deadline:
                    time.sleep(0.01)
            time.sleep(2)
            starts = {run['env']['SCHEDULED_EVENT_ID']: run['started'] for run in recorder.runs()}
            ends = {run['id']: run['ended'] for run in recorder.runs('end')}
            posts = {}
            for request in emulator.requests():
                if request['method'] == 'POST':
                    for event_id in injected:
                        if event_id in (request['body'] or ''):
                            posts.setdefault(event_id, request['time'])
            detection = [starts[i] - t for i, t in injected.items() if i in starts]
            approve = [posts[i] - ends[i] for i in injected if i in posts and i in ends]

            emulator.clear_requests()
            cpu_before, idle_started = cpu_seconds(proc.pid), time.time()
            time.sleep(args.idle)
            idle_cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.time() - idle_started) * 100
            idle_requests = [r for r in emulator.requests() if r['path'].startswith('/metadata')]
            requests_per_second = len(idle_requests) / (time.time() - idle_started)
            rss = rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    p50, p99 = percentile(detection, 0.5), percentile(detection, 0.99)
    print(f'events handled:                 {len(detection)} of {len(injected)}')
    print(f'detection latency p50 / p99:    {p50:.3f} s / {p99:.3f} s   (goal p99 <= {INTERVAL + 0.1:.1f} s)')
    print(f'approve latency p50 / max:      {statistics.median(approve) * 1000:.1f} ms / '
          f'{max(approve) * 1000:.1f} ms   (goal <= 50 ms)')
    print(f'IMDS requests per second idle:  {requests_per_second:.2f}   (goal <= 1)')
    print(f'idle CPU over {args.idle:.0f} s:            {idle_cpu:.2f} % of a core   (goal <= 0.5 %)')
    print(f'RSS of the watcher:             {rss:.0f} MiB')
    ok = (len(detection) == len(injected) and p99 <= INTERVAL + 0.1 and max(approve) <= 0.050
          and requests_per_second <= 1.0 and idle_cpu <= 0.5)
    print('goals met' if ok else 'GOALS MISSED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
