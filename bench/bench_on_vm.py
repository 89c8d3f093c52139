#!/usr/bin/env python
# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""On-VM cost: `az scheduled-events list` against the emulator beside `az cloud show` (the floor az itself
costs: no login, no network), and the extension's own import time.

Goals: list within 0.10 s of the floor; the extension imports in under 50 ms, without azure.mgmt.
Run with the project's venv: .venv/bin/python bench/bench_on_vm.py [--runs N]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'scheduledevents'))

from azext_scheduledevents.emulator.imds import ImdsEmulator  # noqa: E402
from azext_scheduledevents.tests.latest import netguard  # noqa: E402
from azext_scheduledevents.tests.latest.azcli import build_and_add_extension  # noqa: E402

# Measured in a process that has already imported azure.cli.core, as az has when it loads an extension.
IMPORT_PROBE = '''
import sys, time
import azure.cli.core, azure.cli.core.commands, knack.log
started = time.perf_counter()
import azext_scheduledevents, azext_scheduledevents.commands, azext_scheduledevents._params
import azext_scheduledevents.custom, azext_scheduledevents.core.approval
elapsed = time.perf_counter() - started
assert not [m for m in sys.modules if m.startswith('azure.mgmt')], 'azure.mgmt imported'
print(elapsed)
'''


def timed(az, *args, **env):
    started = time.perf_counter()
    result = az.run(*args, **env)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f'az {" ".join(args)} failed: {result}')
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=15)
    args = parser.parse_args()
    netguard.install()
    with tempfile.TemporaryDirectory() as root, ImdsEmulator(vm_name='web_0', rate_limit=0) as emulator:
        az = build_and_add_extension(Path(root))
        emulator.add_events([{'EventType': 'Reboot'}, {'EventType': 'Freeze', 'Resources': ['web_1']}])
        endpoint = {'AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT': emulator.url}
        for _ in range(2):    # warm the command index and the page cache
            timed(az, 'cloud', 'show')
            timed(az, 'scheduled-events', 'list', '--only-show-errors', **endpoint)
        floor, listing = [], []
        for _ in range(args.runs):
            floor.append(timed(az, 'cloud', 'show'))
            listing.append(timed(az, 'scheduled-events', 'list', '--only-show-errors', **endpoint))
        extension_dir = Path(az.env['AZURE_EXTENSION_DIR']) / 'scheduledevents'
        imports = [float(subprocess.run([sys.executable, '-c', IMPORT_PROBE], check=True, capture_output=True,
                                        text=True, env=dict(az.env, PYTHONPATH=str(extension_dir))).stdout)
                   for _ in range(args.runs)]
    floor_s, list_s, import_ms = statistics.median(floor), statistics.median(listing), statistics.median(imports) * 1000
    print(f'runs each:                          {args.runs}')
    print(f'az cloud show (floor), median:      {floor_s:.3f} s')
    print(f'az scheduled-events list, median:   {list_s:.3f} s')
    print(f'list minus floor:                   {list_s - floor_s:+.3f} s   (goal <= 0.100 s)')
    print(f'extension import, median:           {import_ms:.1f} ms  (goal < 50 ms, no azure.mgmt)')
    ok = list_s - floor_s <= 0.100 and import_ms < 50
    print('goals met' if ok else 'GOALS MISSED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
