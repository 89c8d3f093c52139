# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""scripts/demo, the README's first command, without its install part (``--no-install``): the az of the
suite, with the wheel built from this tree. SLOW: about 35 s (the cycle of three instances is 21 s of it)."""

import json
import os
import re
import subprocess
import sys

import pytest

from .azcli import AZ, EXTENSION_SRC
from .conftest import python_child_env

ROOT = EXTENSION_SRC.parents[1]
DEMO = ROOT / 'scripts' / 'demo'


def cycle_report(stdout):
    """The JSON report the demo prints after the cycle command line."""
    after = stdout[stdout.rindex('$ az scheduled-events cycle -g rg -n web --query'):]
    report, _ = json.JSONDecoder().raw_decode(after[after.index('\n{'):].lstrip())
    return report


@pytest.mark.timeout(180)
def test_demo_shows_the_main_job_in_under_two_minutes(az):
    if AZ != ROOT / '.venv' / 'bin' / 'az':
        reason = f'scripts/demo uses the az in {ROOT / ".venv"}, and this suite runs {AZ}'
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)
    env = az.environment(AZURE_CONFIG_DIR=az.fresh_config_dir('demo-config'))
    done = subprocess.run([str(DEMO), '--no-install'], env=env, capture_output=True, text=True, timeout=170,
                          check=False, stdin=subprocess.DEVNULL)
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, out[-6000:] + err[-3000:]
    # list and approve
    assert re.search(r'Reboot\s+Scheduled\s+Started\s+yes', out)
    # watch: the handler ran, the event was approved and completed, and SIGTERM stopped watch with 0
    event_id = re.search(r'"EventIds": \["([0-9A-F-]{36})"\]', out).group(1)
    # watch's own lines start with an ISO date (the handler's log lines with a time of day, which can be 20:..)
    lines = [line.split() for line in out.splitlines() if event_id in line and re.match(r'\d{4}-\d\d-\d\dT', line)]
    assert [(line[1], line[2]) for line in lines] == [('scheduled', 'Reboot'), ('approved', 'Reboot'),
                                                      ('started', 'Reboot'), ('completed', 'Reboot')]
    assert f'handler ran for scheduled {event_id}: draining' in out
    assert f'handler ran for completed {event_id}' in out
    assert 'watch exited with 0' in out
    # cycle: the plan, the progress lines, and three healthy instances in the report
    assert re.search(r'reimage\s+0, 1, 2\s+3\s+7\s+3\s+2\s+False\s+0', out)
    progress = [re.sub(r'after [\d.]+ s$', 'after N s', line.split('] ', 1)[1])
                for line in err.splitlines() if re.match(r'\[ *[\d.]+ s\] ', line)]
    assert progress == [f'web_{i}: {step}' for i in range(3) for step in ('reimage sent', 'healthy after N s')]
    report = cycle_report(out)
    assert [(i['name'], i['result'], i['score']) for i in report['instances']] == [
        ('web_0', 'healthy', 7), ('web_1', 'healthy', 7), ('web_2', 'healthy', 7)]
    assert report['totals']['cycled'] == 3 and report['totals']['failed'] == 0
    seconds = int(re.search(r'Done in (\d+) s: no connection left loopback', out).group(1))
    assert seconds < 120


def test_fake_arm_launcher_refuses_a_config_dir_in_use(tmp_path):
    (tmp_path / 'config').write_text('[core]\n')
    done = subprocess.run([sys.executable, '-m', 'azext_scheduledevents.tests.latest.fakearm', '--az-config-dir',
                           str(tmp_path), '--az-extension-dir', str(tmp_path)], env=python_child_env(),
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and 'is not empty' in done.stderr
