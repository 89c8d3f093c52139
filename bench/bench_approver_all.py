#!/usr/bin/env python
# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""`watch --approver all` across three watchers on loopback, sharing one event through Azurite.

Prints, over N events (each a Reboot naming web_0, web_1 and web_2, handlers of 0.2, 0.6 and 1.0 s):
approval latency (the slowest handler's exit -> the one approval POST, p50 / max; goal <= 1.5 x interval)
and the Blob requests per event per VM (counted by a relay in front of Azurite).
Run with the project's venv after scripts/bootstrap: .venv/bin/python bench/bench_approver_all.py [--events 10]
"""

import argparse
import functools
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'scheduledevents'))

from azext_scheduledevents.core.approval import ApprovalPolicy  # noqa: E402
from azext_scheduledevents.core.blob import BlobContainer, SasCredential  # noqa: E402
from azext_scheduledevents.tests.latest.azurite import Azurite, FaultyProxy, unavailable  # noqa: E402
from azext_scheduledevents.tests.latest.test_coordination import VMS, Group  # noqa: E402
from azext_scheduledevents.tests.latest.watching import Recorder, WatcherThread  # noqa: E402

INTERVAL = 1.0
HANDLER_SECONDS = {'web_0': 0.2, 'web_1': 0.6, 'web_2': 1.0}


def one_event(folder, container, proxy):
    """One shared event through three watchers -> (seconds from the slowest handler's exit to the POST,
    Blob requests it took)."""
    before = len(proxy.requests)
    folder.mkdir()
    recorder = Recorder.create(folder)
    policy = ApprovalPolicy(mode='after-handlers', approver='all')
    with Group(event_id=str(uuid.uuid4()).upper()) as group:
        threads = [WatcherThread(group.emulators[vm].url, folder / vm, policy=policy, coordination=container,
                                 interval_in_seconds=INTERVAL,
                                 commands={'scheduled': [recorder.handler(vm, sleep=HANDLER_SECONDS[vm])]})
                   for vm in VMS]
        for thread in threads:
            thread.__enter__()
        try:
            deadline = time.monotonic() + 60
            while not group.posts() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(2 * INTERVAL)        # the others read the verdict too
        finally:
            for thread in threads:
                thread.__exit__(None, None, None)
        posts = group.posts()
    if len(posts) != 1:
        raise SystemExit(f'expected one approval, saw {len(posts)}')
    slowest = max(run['ended'] for run in recorder.runs('end'))
    return posts[0][1] - slowest, len(proxy.requests) - before


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--events', type=int, default=10)
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        with Azurite(scratch / 'azurite') as azurite, FaultyProxy(azurite) as proxy:
            azurite.create_container('group')
            container = functools.partial(BlobContainer, proxy.container_url('group'),
                                          credential=SasCredential(azurite.container_sas('group')))
            latencies, requests = [], []
            for index in range(args.events):
                latency, count = one_event(scratch / f'event-{index}', container, proxy)
                latencies.append(latency)
                requests.append(count)
    print(f'approval latency (slowest handler exit -> the one POST), p50 / max: '
          f'{statistics.median(latencies):.3f} s / {max(latencies):.3f} s '
          f'(goal <= {1.5 * INTERVAL:.1f} s at --interval {INTERVAL:g})')
    print(f'Blob requests per event per VM: {statistics.mean(requests) / len(VMS):.1f} '
          f'(min {min(requests) / len(VMS):.1f}, max {max(requests) / len(VMS):.1f})')


if __name__ == '__main__':
    main()
