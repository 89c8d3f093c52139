#!/usr/bin/env python
# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""`az scheduled-events cycle` over 20 instances of the fake ARM with compressed timings (reimage R,
health delay H), with --max-unavailable 1 and 4, against the ideal ceil(20 / k) x (R + H).

Goals: wall time <= 1.05 x ideal + 3 s per instance; at most one ARM read every 2 s per instance in flight.
Run with the project's venv: .venv/bin/python bench/bench_cycle.py [--instances 20] [--reimage 4] [--health 2]
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'scheduledevents'))

from azext_scheduledevents.tests.latest import netguard  # noqa: E402
from azext_scheduledevents.tests.latest.azcli import build_and_add_extension  # noqa: E402
from azext_scheduledevents.tests.latest.fakearm.lifecycle import Timings  # noqa: E402
from azext_scheduledevents.tests.latest.fakearm.server import FakeArm, az_login  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--instances', type=int, default=20)
    parser.add_argument('--reimage', type=float, default=4.0)
    parser.add_argument('--health', type=float, default=2.0)
    args = parser.parse_args()
    netguard.install()
    timings = Timings(reimage=args.reimage, health_delay=args.health)
    ok = True
    with tempfile.TemporaryDirectory() as root, FakeArm(Path(root), timings=timings) as arm:
        az = build_and_add_extension(Path(root))
        env = az_login(az, arm)
        for parallel in (1, 4):
            name = f'web{parallel}'
            arm.add_scale_set('rg', name, count=args.instances, health_extension=True, simulate_vms=False)
            before = len(arm.requests())
            started = time.monotonic()
            result = az.run('scheduled-events', 'cycle', '-g', 'rg', '-n', name, '--max-unavailable', str(parallel),
                            '--only-show-errors', timeout=1800, **env)
            wall = time.monotonic() - started
            if result.returncode != 0:
                raise SystemExit(f'cycle failed: {result}')
            requests = [r for r in arm.requests()[before:] if '/msi/token' not in r['path']]
            reads = sum(1 for r in requests if r['method'] == 'GET')
            in_flight = sum(r['seconds_to_healthy'] for r in result.json['instances'])
            reads_per_2s = reads / (in_flight / 2)
            ideal = math.ceil(args.instances / parallel) * (args.reimage + args.health)
            goal = 1.05 * ideal + 3 * args.instances
            ok &= wall <= goal and reads_per_2s <= 1.0
            print(f'--max-unavailable {parallel}: {wall:.1f} s for {args.instances} instances; ideal {ideal:.0f} s '
                  f'(R {args.reimage:g} + H {args.health:g}), {wall / ideal:.2f} x ideal, goal <= {goal:.0f} s; '
                  f'{len(requests) / args.instances:.1f} ARM requests per instance; '
                  f'{reads_per_2s:.2f} reads per 2 s per instance in flight (goal <= 1)')
    print('goals met' if ok else 'GOALS MISSED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
