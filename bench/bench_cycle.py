#!/usr/bin/env python
# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""`az scheduled-events cycle` over 20 instances of the fake ARM with compressed timings, with --max-unavailable
1 and 4: a reimage (R, health delay H) against the ideal ceil(20 / k) x (R + H); then --action update (U) of
instances all outdated by a model change, with a before- and an after-script through Run Command (latency L =
1 s each, on simulated VMs), against the ideal ceil(20 / k) x (U + H + 2 x L).

Goals: wall time <= 1.05 x ideal + 3 s per instance; for the reimage at most one ARM read every 2 s per instance
in flight (the reads from its first action on); for the update exactly one before- and one after-script Run
Command and one manualupgrade naming only it per instance. Needs root (network namespaces) for the simulated
VMs. Run with the project's venv:
.venv/bin/python bench/bench_cycle.py [--instances 20] [--reimage 4] [--update 4] [--health 2]
"""

import argparse
import math
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'scheduledevents'))

from azext_scheduledevents.tests.latest import netguard  # noqa: E402
from azext_scheduledevents.tests.latest.azcli import build_and_add_extension  # noqa: E402
from azext_scheduledevents.tests.latest.fakearm.lifecycle import Timings  # noqa: E402
from azext_scheduledevents.tests.latest.fakearm.server import FakeArm, az_login  # noqa: E402

PARALLELS = (1, 4)
SLACK_PER_INSTANCE_IN_SECONDS = 3
# Each Run Command's latency; the reimage part runs none, so it is the same fake ARM for both parts.
LATENCY_IN_SECONDS = 1.0
BEFORE_SCRIPT = 'echo draining "$CYCLE_INSTANCE_NAME"\n'
AFTER_SCRIPT = 'echo ok\n'
HOOKS = ('before-script', 'after-script')
HOOK_VARIABLE = re.compile(r'\bCYCLE_HOOK=(\S+)')


def goal_of(ideal, instances):
    return 1.05 * ideal + SLACK_PER_INSTANCE_IN_SECONDS * instances


def check_once_each(parallel, scale_set, requests, commands):
    """Exactly one before- and one after-script Run Command per instance, and one manualupgrade naming only it."""
    names = {i.instance_id: i.name for i in scale_set.instances.values()}
    hooks = Counter((c['instance'], (HOOK_VARIABLE.search(c['script']) or [None, None])[1]) for c in commands)
    if hooks != Counter((name, hook) for name in names.values() for hook in HOOKS):
        raise SystemExit(f'--max-unavailable {parallel}: expected one before- and one after-script Run Command per '
                         f'instance, got {sorted(hooks.items())}')
    upgrades = Counter(tuple((r['body'] or {}).get('instanceIds') or ['*']) for r in requests
                       if r['method'] == 'POST' and r['path'].lower().endswith('/manualupgrade'))
    if upgrades != Counter((instance_id,) for instance_id in names):
        raise SystemExit(f'--max-unavailable {parallel}: expected one manualupgrade naming only it per instance, '
                         f'got instanceIds {sorted(upgrades.items())}')


def update(args, root, arm, az, env):
    """--action update with a before- and an after-script; True when every goal is met."""
    before, after = root / 'before.sh', root / 'after.sh'
    before.write_text(BEFORE_SCRIPT)
    after.write_text(AFTER_SCRIPT)
    scale_set = arm.add_scale_set('rg', 'app', count=args.instances, health_extension=True)
    ok = True
    for parallel in PARALLELS:
        arm.change_model(scale_set)
        requests_before, commands_before = len(arm.requests()), len(arm.run_commands)
        started = time.monotonic()
        result = az.run('scheduled-events', 'cycle', '-g', 'rg', '-n', scale_set.name, '--action', 'update',
                        '--before-script', str(before), '--after-script', str(after), '--max-unavailable',
                        str(parallel), '--only-show-errors', timeout=1800, **env)
        wall = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f'cycle --action update failed: {result}')
        requests = [r for r in arm.requests()[requests_before:] if '/msi/token' not in r['path']]
        commands = arm.run_commands[commands_before:]
        check_once_each(parallel, scale_set, requests, commands)
        ideal = math.ceil(args.instances / parallel) * (args.update + args.health + 2 * LATENCY_IN_SECONDS)
        goal = goal_of(ideal, args.instances)
        ok &= wall <= goal
        print(f'--action update --max-unavailable {parallel}: {wall:.1f} s for {args.instances} instances; ideal '
              f'{ideal:.0f} s (U {args.update:g} + H {args.health:g} + 2 x L {LATENCY_IN_SECONDS:g}), '
              f'{wall / ideal:.2f} x ideal, goal <= {goal:.0f} s; {len(requests) / args.instances:.1f} ARM requests '
              f'per instance; {len(commands) / args.instances:.1f} Run Commands per instance')
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--instances', type=int, default=20)
    parser.add_argument('--reimage', type=float, default=4.0)
    parser.add_argument('--update', type=float, default=4.0)
    parser.add_argument('--health', type=float, default=2.0)
    args = parser.parse_args()
    netguard.install()
    timings = Timings(reimage=args.reimage, update=args.update, health_delay=args.health)
    ok = True
    with tempfile.TemporaryDirectory() as root, FakeArm(Path(root), run_command_latency=LATENCY_IN_SECONDS,
                                                        timings=timings) as arm:
        az = build_and_add_extension(Path(root))
        env = az_login(az, arm)
        for parallel in PARALLELS:
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
            # Reads while instances are in flight: from the first action on (the pre-flight's are not).
            first_action = min(r['time'] for r in requests if r['method'] == 'POST')
            reads = sum(1 for r in requests if r['method'] == 'GET' and r['time'] >= first_action)
            in_flight = sum(r['seconds_to_healthy'] for r in result.json['instances'])
            reads_per_2s = reads / (in_flight / 2)
            ideal = math.ceil(args.instances / parallel) * (args.reimage + args.health)
            goal = goal_of(ideal, args.instances)
            ok &= wall <= goal and reads_per_2s <= 1.0
            print(f'--max-unavailable {parallel}: {wall:.1f} s for {args.instances} instances; ideal {ideal:.0f} s '
                  f'(R {args.reimage:g} + H {args.health:g}), {wall / ideal:.2f} x ideal, goal <= {goal:.0f} s; '
                  f'{len(requests) / args.instances:.1f} ARM requests per instance; '
                  f'{reads_per_2s:.2f} reads per 2 s per instance in flight (goal <= 1)')
        if arm.run_commands:
            raise SystemExit(f'the reimage ran {len(arm.run_commands)} Run Commands: its timings would include latency')
        ok &= update(args, Path(root), arm, az, env)
    print('goals met' if ok else 'GOALS MISSED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
