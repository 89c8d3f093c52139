# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""With no setting at all, az reaches IMDS at 169.254.169.254:80: proven inside a network namespace this
test creates (``unshare -n``), where the emulator listens at that address and nothing can leave."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import netguard
from .azcli import AZ


@pytest.fixture
def namespace_runner(az, tmp_path):
    if os.geteuid() != 0 or not shutil.which('unshare') or not shutil.which('ip'):
        reason = 'needs root, unshare and ip to make a network namespace'
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)
    extension = Path(az.env['AZURE_EXTENSION_DIR']) / 'scheduledevents'
    env = az.environment(AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT=None)

    def run(body):
        script = (f'set -e\nip link set lo up\nip addr add 169.254.169.254/32 dev lo\n'
                  f'export EMULATOR_PYTHONPATH={netguard.SITE_DIR}:{extension}\n{body}')
        return subprocess.run(['unshare', '-n', 'bash', '-c', script], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, check=False)
    return run


def test_list_reaches_the_default_address_with_no_setting(namespace_runner):
    done = namespace_runner(f'''
PYTHONPATH=$EMULATOR_PYTHONPATH {sys.executable} -m azext_scheduledevents.emulator \\
    --host 169.254.169.254 --port 80 --scenario reboot 2>emulator.log &
for _ in $(seq 100); do grep -q listening emulator.log && break; sleep 0.1; done
{AZ} scheduled-events list --only-show-errors
kill %1
''')
    assert done.returncode == 0, done.stderr
    event, = json.loads(done.stdout)
    assert (event['EventType'], event['AffectsThisVm']) == ('Reboot', True)


def test_nothing_listening_at_the_default_address_is_one_clear_line(namespace_runner):
    done = namespace_runner(f'{AZ} scheduled-events list --only-show-errors')
    assert done.returncode != 0
    assert done.stderr.startswith('ERROR: IMDS is not reachable at http://169.254.169.254'), done.stderr
    assert 'Traceback' not in done.stderr
