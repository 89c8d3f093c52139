# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Runs the end-to-end modules that need a network namespace of their own inside one this test creates,
with only loopback to talk on: test_az_fleet.py (the fake ARM, the real az and every simulated VM live
there), test_az_controlplane.py (Resource Graph and the acknowledge API), test_az_cycle.py (roll-outs
with hooks on simulated VMs), test_az_agent.py (the
agent installed on simulated VMs) and test_az_help_examples.py (every
example of the help, on the fixed ports the examples name)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require_namespaces

HERE = Path(__file__).parent


def run_in_fresh_network_namespace(module, timeout):
    """``pytest module`` inside ``unshare -n``; every test of it must pass there, none skipped."""
    require_namespaces()
    done = subprocess.run(
        ['unshare', '-n', 'sh', '-c',
         f'ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider -rfE {HERE / module}'],
        env=dict(os.environ, SCHEDULED_EVENTS_TEST_NAMESPACE='1'), cwd=HERE.parents[3], capture_output=True,
        text=True, timeout=timeout, check=False)
    last = (done.stdout.splitlines() or [''])[-1]
    # The inner run's last line (what failed, see conftest) leads, so the outer summary names it.
    assert done.returncode == 0, f'{last}\n{done.stdout[-8000:]}{done.stderr[-2000:]}'
    assert ' passed' in last and 'skipped' not in last, last


# Each module with the most its run may take (seconds).
MODULES = [('test_az_fleet.py', 900), ('test_az_controlplane.py', 600), ('test_az_cycle.py', 600),
           ('test_az_agent.py', 600), ('test_az_help_examples.py', 300)]


@pytest.mark.parametrize('module, timeout', [pytest.param(m, t, marks=pytest.mark.timeout(t), id=m[:-3])
                                             for m, t in MODULES])
def test_module_end_to_end_in_a_fresh_network_namespace(module, timeout):
    run_in_fresh_network_namespace(module, timeout=timeout)
