#!/usr/bin/env python
# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The standalone agent: its size and start time, what `watch --interval 1` costs idle on the oldest and
the newest Python beside `az scheduled-events watch`, `list` beside curl and az, and `agent install` over a
100-instance scale set of the fake ARM (Run Command latency 1 s), at the default --max-parallel and at one
instance per core (the simulated VMs' scripts then have a core each, as VMs in Azure have).

Goals: RSS <= 20 MiB on 3.8 and <= 25 MiB on 3.13, idle CPU <= 0.3 % of a core, agent list within 40 ms
of curl, install <= 1.25 x ceil(N / parallel) x latency. Needs root (network namespaces) for the install.
Run with the project's venv: .venv/bin/python bench/bench_agent.py [--idle 60] [--instances 100]
"""

import argparse
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'scheduledevents'))

from procstats import children_cpu_seconds, cpu_seconds, rss_mib, run_counting_cpu  # noqa: E402
from azext_scheduledevents.agent.build import build_zipapp  # noqa: E402
from azext_scheduledevents.core.config import FANOUT_MAX_PARALLEL  # noqa: E402
from azext_scheduledevents.emulator.imds import ImdsEmulator  # noqa: E402
from azext_scheduledevents.tests.latest import netguard  # noqa: E402
from azext_scheduledevents.tests.latest.azcli import AZ, build_and_add_extension  # noqa: E402
from azext_scheduledevents.tests.latest.fakearm.server import FakeArm, az_login  # noqa: E402

LATENCY_IN_SECONDS = 1.0
PYENV = Path.home() / '.pyenv' / 'versions'
RUNS = 15


def pythons():
    """(label, path) of the oldest and the newest Python 3.8+ pyenv has."""
    found = sorted((tuple(int(n) for n in p.name.split('.')[:2]), p) for p in PYENV.glob('3.*')
                   if p.name.count('.') == 2 and tuple(int(n) for n in p.name.split('.')[:2]) >= (3, 8))
    chosen = [found[0], found[-1]] if len(found) > 1 else found
    return [(path.name, str(path / 'bin' / 'python3')) for _, path in chosen]


def median_seconds(argv, env, runs=RUNS):
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def idle_cost(argv, env, seconds):
    """(RSS MiB at the end, CPU % of a core) of a watcher over ``seconds`` of idle polling."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)                        # past start-up and the first polls
        cpu, started = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        share = (cpu_seconds(proc.pid) - cpu) / (time.monotonic() - started) * 100
        return rss_mib(proc.pid), share
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def on_vm(args, root, agent_path, az):
    rows = []
    with ImdsEmulator(vm_name='web_0', rate_limit=0) as imds:
        env = dict(os.environ, AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT=imds.url)
        for label, python in pythons():
            start = median_seconds([python, '-I', '-S', str(agent_path), '--version'], env)
            rss, cpu = idle_cost([python, '-I', '-S', str(agent_path), 'watch', '--interval', '1', '--state-dir',
                                  str(root / f'state-{label}')], env, args.idle)
            listing = median_seconds([python, '-I', '-S', str(agent_path), 'list'], env)
            rows.append((f'agent, Python {label}', start, rss, cpu, listing))
        az_env = az.environment(AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT=imds.url)
        rss, cpu = idle_cost([str(AZ), 'scheduled-events', 'watch', '--interval', '1', '--state-dir',
                              str(root / 'state-az')], az_env, args.idle)
        az_list = median_seconds([str(AZ), 'scheduled-events', 'list'], az_env)
        curl = median_seconds(['curl', '-s', '--noproxy', '*', '-H', 'Metadata: true',
                               f'{imds.url}/metadata/scheduledevents?api-version=2020-07-01'], env)
    return rows, (rss, cpu, az_list), curl


def install(args, root, az, parallel):
    """(seconds, instances installed, CPU seconds the simulated VMs' scripts took) of one ``agent install``."""
    with FakeArm(root / f'arm-{parallel}', run_command_latency=LATENCY_IN_SECONDS) as arm:
        arm.add_scale_set('rg', 'web', count=args.instances)
        env = az.environment(**az_login(az, arm, config_dir=az.fresh_config_dir(f'config-{parallel}')))
        before, started = children_cpu_seconds(), time.monotonic()
        code, out, az_cpu = run_counting_cpu([str(AZ), 'scheduled-events', 'agent', 'install', '-g', 'rg',
                                              '--vmss-name', 'web', '--interval', '5', '--max-parallel',
                                              str(parallel), '--only-show-errors'], env)
        seconds = time.monotonic() - started
        scripts_cpu = children_cpu_seconds() - before - az_cpu     # the fake ARM waits for each script
        if code != 0:
            raise SystemExit(f'agent install failed: exit {code}: {out}')
        installed = sum(1 for row in json.loads(out) if row['Result'] == 'installed')
    return seconds, installed, scripts_cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--idle', type=float, default=60.0)
    parser.add_argument('--instances', type=int, default=100)
    args = parser.parse_args()
    netguard.install()
    logging.getLogger('cli').setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        agent = build_zipapp()
        agent_path = root / 'scheduled-events-agent.pyz'
        agent_path.write_bytes(agent)
        az = build_and_add_extension(root)
        rows, (az_rss, az_cpu, az_list), curl = on_vm(args, root, agent_path, az)
        # At the default, 10 simulated VMs in flight share this machine's cores; at one per core each has a
        # core of its own, as each VM in Azure has.
        installs = [(parallel, *install(args, root, az, parallel))
                    for parallel in sorted({FANOUT_MAX_PARALLEL, os.cpu_count()}, reverse=True)]
    print(f'agent size:                         {len(agent)} bytes')
    print(f'{"":36}start     RSS       idle CPU   list')
    for label, start, rss, cpu, listing in rows:
        print(f'{label + ":":36}{start * 1000:5.0f} ms  {rss:5.1f} MiB  {cpu:5.2f} %    {listing * 1000:5.0f} ms')
    print(f'{"az scheduled-events watch/list:":36}{"":9}{az_rss:5.1f} MiB  {az_cpu:5.2f} %    {az_list * 1000:5.0f} ms')
    print(f'{"curl (the same GET):":36}{"":9}{"":9}  {"":10} {curl * 1000:5.0f} ms')
    ratios = []
    for parallel, seconds, installed, scripts_cpu in installs:
        ideal = math.ceil(args.instances / parallel) * LATENCY_IN_SECONDS
        ratios.append(seconds / ideal)
        print(f'agent install over {args.instances}, --max-parallel {parallel}: {seconds:.2f} s '
              f'({installed} installed); ideal ceil(N/{parallel}) x {LATENCY_IN_SECONDS:g} s = {ideal:.0f} s -> '
              f'{seconds / ideal:.2f} x ideal (goal <= 1.25); the VMs\' scripts: '
              f'{scripts_cpu / args.instances:.2f} CPU s each, {scripts_cpu:.0f} s in all on {os.cpu_count()} cores')
    oldest, newest = rows[0], rows[-1]
    ok = (oldest[2] <= 20 and newest[2] <= 25 and all(r[3] <= 0.3 for r in rows)
          and all(r[4] - curl <= 0.040 for r in rows) and min(ratios) <= 1.25)
    print('goals met' if ok else 'GOALS MISSED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
