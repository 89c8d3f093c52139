# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Fixtures: the network guard, emulators on loopback, and the real ``az`` with the extension's wheel."""

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from azext_scheduledevents.emulator.imds import ImdsEmulator

from . import netguard

EXTENSION_SRC = Path(__file__).resolve().parents[3]
AZ = Path(sys.executable).with_name('az')

netguard.install()


@pytest.fixture(scope='session')
def netguard_log(tmp_path_factory):
    log = tmp_path_factory.mktemp('netguard') / 'violations.log'
    log.touch()
    os.environ[netguard.LOG_ENV] = str(log)
    return log


@pytest.fixture(autouse=True)
def _no_network_escape(netguard_log):
    """Fail the test during which any process of the suite tried to reach a non-loopback address."""
    before = netguard_log.read_text()
    yield
    escaped = netguard_log.read_text()[len(before):]
    if escaped:
        pytest.fail('Connections outside loopback were attempted:\n' + escaped)


class FakeClock:
    """A monotonic clock the test moves by hand, so emulator timelines need no sleeping."""

    def __init__(self, start=1000.0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def emulator():
    """An emulator for VM web_0 on a free loopback port, without a rate limit."""
    with ImdsEmulator(vm_name='web_0', rate_limit=0) as server:
        yield server


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def timed_emulator(clock):
    """An emulator whose timeline follows ``clock``; NotBefore stays tied to the real wall clock."""
    wall_offset = time.time() - clock.now
    with ImdsEmulator(vm_name='web_0', rate_limit=0, clock=clock, wall=lambda: clock.now + wall_offset) as server:
        yield server


def http_call(url, method='GET', path='/', body=None, headers=None):
    """A bare HTTP request (no proxy, no added headers) -> (status, headers, body bytes)."""
    host, port = url.removeprefix('http://').rsplit(':', 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def python_child_env():
    """Environment for a Python child that imports the extension from this source tree, network-guarded."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([netguard.SITE_DIR, str(EXTENSION_SRC)]))


class AzResult:
    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    @property
    def json(self):
        return json.loads(self.stdout)

    def __repr__(self):
        return f'<az exit {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}>'


class AzCli:
    """The real az binary, with the extension installed from its wheel into a throwaway directory."""

    def __init__(self, root, env):
        self.root = root
        self.env = env

    def environment(self, **overrides):
        env = dict(self.env)
        env.update({k: v for k, v in overrides.items() if v is not None})
        for name in [k for k, v in overrides.items() if v is None]:
            env.pop(name, None)
        return env

    def run(self, *args, timeout=120, **env):
        completed = subprocess.run([str(AZ), *args], env=self.environment(**env), capture_output=True, text=True,
                                   timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        return AzResult(completed)

    def popen(self, *args, **env):
        return subprocess.Popen([str(AZ), *args], env=self.environment(**env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)

    def fresh_config_dir(self, name):
        """A copy of the logged-out config directory, for a test that changes az config."""
        target = self.root / name
        shutil.copytree(self.env['AZURE_CONFIG_DIR'], target)
        return str(target)


def quiet_az_environment(config_dir, extension_dir):
    """The environment every az child runs in: isolated, offline-safe, quiet, and network-guarded."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith('_PROXY') and not k.startswith(('AZURE_', 'IDENTITY_', 'MSI_'))}
    env.update({
        'AZURE_CONFIG_DIR': str(config_dir),
        'AZURE_EXTENSION_DIR': str(extension_dir),
        'AZURE_CORE_COLLECT_TELEMETRY': 'false',
        'AZURE_CORE_SURVEY_MESSAGE': 'false',
        'AZURE_CORE_NO_COLOR': 'true',
        'AZURE_EXTENSION_USE_DYNAMIC_INSTALL': 'no',
        'PYTHONPATH': netguard.SITE_DIR,
        netguard.HOST_NETNS_ENV: os.environ[netguard.HOST_NETNS_ENV],
    })
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / 'config').write_text('[core]\ncollect_telemetry = false\nsurvey_message = false\noutput = json\n'
                                       '[auto-upgrade]\nenable = no\n')
    version = subprocess.run([str(AZ), 'version', '--query', '"azure-cli"', '-o', 'tsv'], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
    # Pre-seeded so that az does not probe a blob host for newer versions.
    (config_dir / 'versionCheck.json').write_text(json.dumps({
        'versions': {'azure-cli': {'local': version}, 'core': {'local': version}, 'telemetry': {'local': '1.1.0'}},
        'update_time': datetime.now().strftime('%Y-%m-%d %H:%M:%S.%f')}))
    return env


@pytest.fixture(scope='session')
def az(tmp_path_factory, netguard_log):
    """``az`` with the extension built from this source tree and added with ``az extension add --source``."""
    if not AZ.exists():
        pytest.fail(f'no az next to {sys.executable}: run the suite with scripts/test')
    root = tmp_path_factory.mktemp('az')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--disable-pip-version-check', '--no-deps',
                    '--no-build-isolation', '-w', str(root / 'dist'), str(EXTENSION_SRC)], check=True,
                   capture_output=True)
    env = quiet_az_environment(root / 'config', root / 'extensions')
    env[netguard.LOG_ENV] = str(netguard_log)
    cli = AzCli(root, env)
    wheel = next((root / 'dist').glob('scheduledevents-*.whl'))
    added = cli.run('extension', 'add', '--source', str(wheel), '--yes')
    assert added.returncode == 0, added
    return cli
