# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Fixtures: the network guard, emulators on loopback, and the real ``az`` with the extension's wheel."""

import http.client
import json
import os
import shutil
import socket
import sys
import threading
import time

import pytest

from azext_scheduledevents.emulator.imds import ImdsEmulator

from . import netguard
from .azcli import AZ, EXTENSION_SRC, build_and_add_extension

netguard.install()


_FAILED = []


def pytest_runtest_logreport(report):
    if report.failed:
        crash = getattr(report.longrepr, 'reprcrash', None)
        reason = crash.message.splitlines()[0][:160] if crash and crash.message else report.when
        _FAILED.append(f'{report.nodeid.rsplit("/", 1)[-1]} ({reason})')


def pytest_unconfigure(config):
    """Name what failed on the very last line too: CI logs are often read from their end only."""
    if _FAILED:
        shown = ', '.join(_FAILED[:5]) + (f' and {len(_FAILED) - 5} more' if len(_FAILED) > 5 else '')
        print(f'==== failed: {shown} ====', flush=True)


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


def require_namespaces():
    """Tests that make network namespaces need root, unshare, nsenter and ip; CI has them all."""
    missing = [tool for tool in ('unshare', 'nsenter', 'ip') if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        reason = f'needs root and {", ".join(missing) or "namespaces"} to make network namespaces'
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)


def wait_until(predicate, timeout=30.0, interval=0.05):
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f'timed out after {timeout:g} s waiting for {getattr(predicate, "__name__", predicate)}')


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


PROXY_VARIABLES = ('HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'ALL_PROXY')


@pytest.fixture
def proxy_trap():
    """A listening 'proxy' that records every connection made to it: ``(proxy variables, hits)``.

    The variables point every proxy setting at it and clear NO_PROXY; ``hits`` fills as connections come.
    """
    hits = []
    stop = threading.Event()
    with socket.socket() as proxy:
        proxy.bind(('127.0.0.1', 0))
        proxy.listen(8)
        proxy.settimeout(0.05)

        def accept():
            while not stop.is_set():
                try:
                    conn, address = proxy.accept()
                except OSError:
                    continue
                conn.close()
                hits.append(address)
        watcher = threading.Thread(target=accept, daemon=True)
        watcher.start()
        url = 'http://127.0.0.1:%d' % proxy.getsockname()[1]
        yield dict({name: url for name in PROXY_VARIABLES}, NO_PROXY=None, no_proxy=None), hits
        stop.set()
        watcher.join()


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


@pytest.fixture(scope='session')
def az(tmp_path_factory, netguard_log):
    """``az`` with the extension built from this source tree and added with ``az extension add --source``."""
    if not AZ.exists():
        pytest.fail(f'no az next to {sys.executable}: run the suite with scripts/test')
    cli = build_and_add_extension(tmp_path_factory.mktemp('az'))
    cli.env[netguard.LOG_ENV] = str(netguard_log)
    return cli


def require_azurite():
    """The Blob Storage tests need Azurite (scripts/bootstrap installs it); CI has it."""
    from . import azurite
    reason = azurite.unavailable()
    if reason:
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope='session')
def azurite_blob(tmp_path_factory):
    """Azurite's blob service over http on a free loopback port: ``.url``, ``.create_container(name)``,
    ``.container_sas(name)``, ``.account_sas()``."""
    require_azurite()
    from .azurite import Azurite
    with Azurite(tmp_path_factory.mktemp('azurite')) as server:
        yield server


@pytest.fixture(scope='session')
def azurite_blob_https(tmp_path_factory):
    """The same over https (a throwaway CA: ``.certificates.ca``) with ``--oauth basic``, which takes the
    IMDS emulator's managed-identity tokens."""
    require_azurite()
    from .azurite import Azurite
    from .fakearm.tls import make_certificates
    folder = tmp_path_factory.mktemp('azurite-https')
    with Azurite(folder, certificates=make_certificates(folder / 'tls')) as server:
        yield server
