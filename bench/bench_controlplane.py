#!/usr/bin/env python
# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Fleet `list` over 1,000 instances in 10 scale sets of the fake ARM (Run Command latency 1 s): the
control-plane route (Resource Graph, every subscription in one query) beside the run-command route (one
`list -g --vmss-name` per scale set), wall time and ARM requests for each.

The run-command route is measured on one scale set of --sample simulated instances (each a network
namespace with its own IMDS emulator; 1,000 of them do not fit on a small machine) and scaled to 1,000:
the sets are read one after another, so time and requests grow with the number of instances.
Goals: control plane under 2 s and at least 100 times fewer ARM requests. Needs root (namespaces).
Run with the project's venv: .venv/bin/python bench/bench_controlplane.py [--sample 100]
"""

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'scheduledevents'))

from azext_scheduledevents.tests.latest import netguard  # noqa: E402
from azext_scheduledevents.tests.latest.azcli import build_and_add_extension  # noqa: E402
from azext_scheduledevents.tests.latest.fakearm.server import FakeArm, az_login  # noqa: E402

INSTANCES, SCALE_SETS, LATENCY_IN_SECONDS = 1000, 10, 1.0


def timed(az, arm, env, *args):
    """(seconds, ARM requests, rows) of one az command."""
    before = len(arm.requests())
    started = time.monotonic()
    result = az.run('scheduled-events', *args, '--only-show-errors', **env)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f'{" ".join(args)} failed: {result}')
    return seconds, len(arm.requests()) - before, len(result.json)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sample', type=int, default=100)
    args = parser.parse_args()
    netguard.install()
    logging.getLogger('cli').setLevel(logging.ERROR)
    per_set = INSTANCES // SCALE_SETS
    with tempfile.TemporaryDirectory() as root, FakeArm(Path(root), run_command_latency=LATENCY_IN_SECONDS) as arm:
        root = Path(root)
        for index in range(SCALE_SETS):
            scale_set = arm.add_scale_set('rg', f'pool{index}', count=per_set, simulate_vms=False, publish=True)
            for instance in range(0, per_set, 4):
                arm.publish(scale_set, {'Resources': [f'pool{index}_{instance}']})
        sample = arm.add_scale_set('rg', 'sample', count=args.sample)
        for instance in range(0, args.sample, 4):
            sample.instances[str(instance)].vm.add_events([{'EventType': 'Reboot'}])
        az = build_and_add_extension(root)
        env = az_login(az, arm)
        plane = timed(az, arm, env, 'list', '--route', 'control-plane')
        command = timed(az, arm, env, 'list', '-g', 'rg', '--vmss-name', 'sample', '--route', 'run-command')
    scale = INSTANCES / args.sample
    command_seconds, command_requests = command[0] * scale, command[1] * scale
    print(f'instances, scale sets, latency:   {INSTANCES}, {SCALE_SETS}, {LATENCY_IN_SECONDS:g} s per Run Command')
    print(f'control-plane route:              {plane[0]:.2f} s, {plane[1]} ARM requests, {plane[2]} events '
          '(goal < 2 s)')
    print(f'run-command route, measured:      {command[0]:.2f} s, {command[1]} ARM requests over {args.sample} '
          f'instances ({command[2]} events)')
    print(f'run-command route, for {INSTANCES}:     {command_seconds:.0f} s, {command_requests:.0f} ARM requests')
    print(f'control plane:                    {command_seconds / plane[0]:.0f}x faster, '
          f'{command_requests / plane[1]:.0f}x fewer requests (goal >= 100x)')
    ok = plane[0] < 2 and command_requests / plane[1] >= 100
    print('goals met' if ok else 'GOALS MISSED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
