#!/usr/bin/env python
# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Fleet `list` over a 100-instance scale set in the fake ARM (Run Command latency 1 s), beside a shell
loop of `az vmss run-command invoke` over the same instances and the ideal ceil(N / parallel) x latency.

Goals: <= 1.25 x ideal, >= 20x faster than the loop, and the ARM requests per instance.
The loop is timed on a sample of instances (each call waits ~31 s: Compute sends no Retry-After, so
az polls every 30 s) and scaled to N. Needs root (network namespaces).
Run with the project's venv: .venv/bin/python bench/bench_fleet.py [--instances 100] [--loop-sample 3]
"""

import argparse
import logging
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'scheduledevents'))

from azext_scheduledevents.core.config import FANOUT_MAX_PARALLEL  # noqa: E402
from azext_scheduledevents.core.runcommand import read_script  # noqa: E402
from azext_scheduledevents.tests.latest import netguard  # noqa: E402
from azext_scheduledevents.tests.latest.azcli import build_and_add_extension  # noqa: E402
from azext_scheduledevents.tests.latest.fakearm.server import FakeArm, az_login  # noqa: E402

LATENCY_IN_SECONDS = 1.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--instances', type=int, default=100)
    parser.add_argument('--loop-sample', type=int, default=3)
    args = parser.parse_args()
    netguard.install()
    logging.getLogger('cli').setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as root, FakeArm(Path(root), run_command_latency=LATENCY_IN_SECONDS) as arm:
        root = Path(root)
        booted = time.monotonic()
        scale_set = arm.add_scale_set('rg', 'web', count=args.instances)
        booted = time.monotonic() - booted
        for index in range(0, args.instances, 10):
            scale_set.instances[str(index)].vm.add_events([{'EventType': 'Reboot'}])
        az = build_and_add_extension(root)
        env = az_login(az, arm)

        before = len(arm.requests())
        started = time.monotonic()
        result = az.run('scheduled-events', 'list', '-g', 'rg', '--vmss-name', 'web', '--only-show-errors', **env)
        fleet_seconds = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f'fleet list failed: {result}')
        fleet_requests = arm.requests()[before:]
        events = len(result.json)

        _, script = read_script('Linux')
        loop = [az.environment(**env)]
        started = time.monotonic()
        for index in range(args.loop_sample):
            subprocess.run([str(Path(sys.executable).with_name('az')), 'vmss', 'run-command', 'invoke', '-g', 'rg',
                            '-n', 'web', '--instance-id', str(index), '--command-id', 'RunShellScript',
                            '--scripts', '\n'.join(script), '--only-show-errors'], env=loop[0], check=True,
                           capture_output=True)
        loop_per_instance = (time.monotonic() - started) / args.loop_sample
    ideal = math.ceil(args.instances / FANOUT_MAX_PARALLEL) * LATENCY_IN_SECONDS
    loop_seconds = loop_per_instance * args.instances
    arm_reads = sum(1 for r in fleet_requests if r['method'] == 'GET' and '/msi/token' not in r['path'])
    print(f'instances, parallel, latency:      {args.instances}, {FANOUT_MAX_PARALLEL}, {LATENCY_IN_SECONDS:g} s '
          f'(simulated VMs booted in {booted:.1f} s)')
    print(f'fleet list wall time:              {fleet_seconds:.2f} s  ({events} events found)')
    print(f'ideal ceil(N/parallel) x latency:  {ideal:.2f} s  -> {fleet_seconds / ideal:.2f} x ideal  (goal <= 1.25)')
    print(f'az vmss run-command invoke loop:   {loop_per_instance:.1f} s per instance over {args.loop_sample}, '
          f'{loop_seconds:.0f} s for {args.instances}  -> fleet is {loop_seconds / fleet_seconds:.0f}x faster '
          '(goal >= 20x)')
    print(f'ARM requests per instance:         {len(fleet_requests) / args.instances:.1f} '
          f'({arm_reads / args.instances:.1f} reads)')
    ok = fleet_seconds <= 1.25 * ideal and loop_seconds / fleet_seconds >= 20
    print('goals met' if ok else 'GOALS MISSED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
