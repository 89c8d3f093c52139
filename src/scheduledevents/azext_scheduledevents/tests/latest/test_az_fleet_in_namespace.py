# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Runs test_az_fleet.py inside a network namespace this test creates: the fake ARM, the real az and
every simulated VM live there, with only loopback to talk on."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require_namespaces

MODULE = Path(__file__).with_name('test_az_fleet.py')


@pytest.mark.timeout(900)
def test_fleet_commands_end_to_end_in_a_fresh_network_namespace():
    require_namespaces()
    done = subprocess.run(
        ['unshare', '-n', 'sh', '-c',
         f'ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider -rfE {MODULE}'],
        env=dict(os.environ, SCHEDULED_EVENTS_TEST_NAMESPACE='1'), cwd=MODULE.parents[4], capture_output=True,
        text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert ' passed' in done.stdout.splitlines()[-1] and 'skipped' not in done.stdout.splitlines()[-1]
