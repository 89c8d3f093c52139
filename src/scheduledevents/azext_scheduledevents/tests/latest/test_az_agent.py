# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``az scheduled-events agent`` end to end: the real az, the fake ARM, and simulated VMs whose disks keep
what Run Command wrote, whose systemd stand-in starts the agent in the VM's namespace against its IMDS.

Runs inside a network namespace of its own (test_az_fleet_in_namespace.py makes it), like test_az_fleet.py.
"""

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from azext_scheduledevents.agent.service import AGENT_PATH, ENV_FILE, STATE_DIR, UNIT_PATH
from azext_scheduledevents.version import VERSION

from .conftest import wait_until
from .fakearm.server import FakeArm, az_login

IN_NAMESPACE = os.environ.get('SCHEDULED_EVENTS_TEST_NAMESPACE') == '1'
pytestmark = pytest.mark.skipif(not IN_NAMESPACE, reason='runs inside its own network namespace, '
                                                         'from test_az_fleet_in_namespace.py')
PYENV = Path.home() / '.pyenv' / 'versions'
OLDEST = next((str(p / 'bin' / 'python3') for p in sorted(PYENV.glob('3.8*'))), None)
TOO_OLD = next((str(p / 'bin' / 'python3') for p in sorted(PYENV.glob('3.6*')) + sorted(PYENV.glob('3.7*'))), None)
OPTIONS = ['--approve', 'after-handlers', '--on-scheduled', '/bin/true', '--interval', '1']


@pytest.fixture(scope='module')
def fleet(az, tmp_path_factory):
    """Scale set web (5 instances, the first on the oldest Python there is); set mixed: a Windows
    instance and one whose python3 is too old."""
    with FakeArm(tmp_path_factory.mktemp('arm')) as arm:
        web = arm.add_scale_set('rg', 'web', count=5, pythons={0: OLDEST} if OLDEST else None)
        mixed = arm.add_scale_set('rg', 'mixed', count=2, os_types={0: 'Windows'}, pythons={1: TOO_OLD})
        yield arm, az_login(az, arm), web, mixed


def agent(az, fleet, *args, env=None):
    _, login, _, _ = fleet
    return az.run('scheduled-events', 'agent', *args, '--only-show-errors', **dict(login, **(env or {})))


def by_instance(result):
    return {row['InstanceId']: row for row in result.json}


def wait_all_running(az, fleet, group='web'):
    rows = {}

    def running():
        rows.update(by_instance(agent(az, fleet, 'status', '-g', 'rg', '--vmss-name', group)))
        return all(row['Agent'] == 'running' for row in rows.values())
    wait_until(running, timeout=60, interval=1)
    return rows


def test_install_status_reinstall_upgrade_and_the_event_of_one_instance(az, fleet):
    arm, _, web, _ = fleet
    installed = agent(az, fleet, 'install', '-g', 'rg', '--vmss-name', 'web', *OPTIONS)
    assert installed.returncode == 0, installed
    rows = by_instance(installed)
    assert {row['Result'] for row in rows.values()} == {'installed'} and len(rows) == 5
    assert {row['Version'] for row in rows.values()} == {VERSION}
    if OLDEST:
        assert rows['0']['Python'].startswith('3.8')
    unit = web.instances['0'].vm.read_file(UNIT_PATH).decode()
    assert f'-I -S {AGENT_PATH} watch --on-scheduled /bin/true --approve after-handlers --state-dir {STATE_DIR}' \
        in unit

    status = wait_all_running(az, fleet)
    assert {row['Active'] for row in status.values()} == {'active'}

    event_id, = web.instances['2'].vm.add_events([{'EventType': 'Reboot', 'Resources': ['web_2']}])
    wait_until(lambda: web.instances['2'].vm.document()['events'][0]['EventStatus'] == 'Started', timeout=30)
    assert all(not web.instances[i].vm.document()['events'] for i in '0134')
    record = f'{STATE_DIR}/events/{event_id}.json'
    assert web.instances['2'].vm.read_file(record) is not None

    again = agent(az, fleet, 'install', '-g', 'rg', '--vmss-name', 'web', *OPTIONS)
    assert {row['Result'] for row in again.json} == {'unchanged'}, again

    changed = agent(az, fleet, 'install', '-g', 'rg', '--vmss-name', 'web', *OPTIONS[:-1], '2')
    assert {row['Result'] for row in changed.json} == {'upgraded'}, changed
    assert '--interval 2' in web.instances['0'].vm.read_file(UNIT_PATH).decode()
    assert web.instances['2'].vm.read_file(record) is not None            # the state stays
    wait_all_running(az, fleet)
    assert len(arm.requests('POST', r'.*/runcommand')) >= 15


def test_a_reimaged_instance_shows_as_missing_the_agent_and_status_fails(az, fleet):
    _, _, web, _ = fleet
    assert agent(az, fleet, 'install', '-g', 'rg', '--vmss-name', 'web', *OPTIONS).returncode == 0
    web.instances['4'].vm.reimage()
    status = agent(az, fleet, 'status', '-g', 'rg', '--vmss-name', 'web', '-o', 'table')
    assert status.returncode == 1, status
    assert 'web_4' in status.stderr and 'missing' in status.stdout
    tolerant = agent(az, fleet, 'status', '-g', 'rg', '--vmss-name', 'web', '--ignore-errors')
    assert tolerant.returncode == 0 and by_instance(tolerant)['4']['Agent'] == 'missing'


def test_uninstall_leaves_no_unit_and_keeps_the_state_unless_purged(az, fleet):
    _, _, web, _ = fleet
    assert agent(az, fleet, 'install', '-g', 'rg', '--vmss-name', 'web', *OPTIONS).returncode == 0
    removed = agent(az, fleet, 'uninstall', '-g', 'rg', '--vmss-name', 'web', '--instance-ids', '0', '1')
    assert removed.returncode == 0, removed
    assert [row['Result'] for row in removed.json] == ['removed', 'removed']
    vm = web.instances['0'].vm
    assert vm.read_file(UNIT_PATH) is None and vm.read_file(AGENT_PATH) is None
    assert vm.read_file(f'{STATE_DIR}/status.json') is not None
    assert not vm.units().pid('azure-scheduled-events-agent.service')
    purged = agent(az, fleet, 'uninstall', '-g', 'rg', '--vmss-name', 'web', '--purge')
    assert {row['Result'] for row in purged.json} <= {'removed', 'absent'}
    assert vm.read_file(f'{STATE_DIR}/status.json') is None


def test_windows_and_a_too_old_python_fail_with_their_reasons(az, fleet):
    result = agent(az, fleet, 'install', '-g', 'rg', '--vmss-name', 'mixed', *OPTIONS)
    assert result.returncode == 1, result
    rows = by_instance(result)
    assert rows['0']['Result'] == 'failed' and 'not supported on Windows' in rows['0']['Error']
    if TOO_OLD:
        assert rows['1']['Result'] == 'failed' and 'needs 3.8 or newer' in rows['1']['Error'], rows['1']
    assert 'Traceback' not in result.stderr


def test_secrets_reach_a_root_only_file_and_never_the_script_or_the_unit(az, fleet):
    arm, _, web, _ = fleet
    key = 'eg-key-' + 'q' * 20
    hook = 'https://127.0.0.1:9/hook?code=webhook-secret'
    result = agent(az, fleet, 'install', '-g', 'rg', '--vmss-name', 'web', '--instance-ids', '3', *OPTIONS,
                   '--event-grid-topic', 'https://127.0.0.1:9/api/events', '--event-grid-key-env', 'EG_KEY',
                   '--webhook', hook, '--webhook', 'https://127.0.0.1:9/open', env={'EG_KEY': key})
    assert result.returncode == 0, result
    vm = web.instances['3'].vm
    unit = vm.read_file(UNIT_PATH).decode()
    assert key not in unit and 'webhook-secret' not in unit
    assert '--webhook https://127.0.0.1:9/open --webhook-env SCHEDULED_EVENTS_WEBHOOK_1' in unit
    assert vm.read_file(ENV_FILE).decode() == f'EG_KEY="{key}"\nSCHEDULED_EVENTS_WEBHOOK_1="{hook}"\n'
    assert stat.S_IMODE((vm.disk / ENV_FILE.lstrip('/')).stat().st_mode) == 0o600
    sent = [r['body'] for r in arm.requests('POST', r'.*/runcommand')][-1]
    assert key not in '\n'.join(sent['script']) and {'name': 'EG_KEY', 'value': key} in sent['parameters']
    assert 'webhook-secret' not in '\n'.join(sent['script'])
    wait_until(lambda: vm.units().pid('azure-scheduled-events-agent.service'), timeout=10)   # it runs with them
    missing = agent(az, fleet, 'install', '-g', 'rg', '--vmss-name', 'web', *OPTIONS, '--event-grid-topic',
                    'https://127.0.0.1:9/api/events', '--event-grid-key-env', 'NOT_SET_HERE')
    assert missing.returncode != 0 and 'NOT_SET_HERE is not set' in missing.stderr


def test_package_is_reproducible_and_cloud_init_carries_it(az, fleet, tmp_path):
    first, second = tmp_path / 'a.pyz', tmp_path / 'b.pyz'
    results = [agent(az, fleet, 'package', '--file', str(path)) for path in (first, second)]
    assert all(r.returncode == 0 for r in results), results
    assert first.read_bytes() == second.read_bytes()
    assert results[0].json['Sha256'] == hashlib.sha256(first.read_bytes()).hexdigest()
    init = agent(az, fleet, 'install', '--print-cloud-init', *OPTIONS)
    assert init.returncode == 0 and init.stdout.startswith('#cloud-config\n'), init
    assert 'encoding: gz+b64' in init.stdout and 'service install' in init.stdout
    spec = json.loads(init.stdout.split("content: '", 1)[1].split("'\n", 1)[0])
    assert spec['watch_argv'] == ['--on-scheduled', '/bin/true', '--approve', 'after-handlers', '--state-dir',
                                  STATE_DIR]
