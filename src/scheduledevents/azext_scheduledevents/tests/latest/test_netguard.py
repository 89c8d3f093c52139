# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The suite's network guard refuses non-loopback addresses, in this process and in children."""

import os
import socket
import subprocess
import sys

import pytest

from . import netguard
from .conftest import python_child_env

# TEST-NET-1 (RFC 5737): documentation only. The guard refuses it before any packet is sent.
OUTSIDE = ('192.0.2.1', 9)


@pytest.fixture
def forgive_escapes(netguard_log):
    """These tests escape on purpose: take their lines out of the log the suite checks."""
    before = netguard_log.read_text()
    yield
    netguard_log.write_text(before)


@pytest.mark.parametrize('host, allowed', [('127.0.0.1', True), ('127.8.9.1', True), ('::1', True),
                                           ('localhost', True), ('::ffff:127.0.0.1', True),
                                           ('169.254.169.254', False), ('10.0.0.1', False),
                                           ('192.0.2.1', False), ('management.azure.com', False)])
def test_loopback_test(host, allowed):
    assert netguard.is_loopback(host) is allowed


def test_guard_refuses_in_process(forgive_escapes, netguard_log):
    with socket.socket() as sock, pytest.raises(PermissionError, match='outside a test namespace'):
        sock.connect(OUTSIDE)
    assert '192.0.2.1' in netguard_log.read_text()


def test_guard_refuses_in_children(forgive_escapes, netguard_log):
    code = f'import socket; socket.create_connection({OUTSIDE!r}, timeout=1)'
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=python_child_env(),
                          check=False)
    assert done.returncode != 0 and 'netguard' in done.stderr
    assert '192.0.2.1' in netguard_log.read_text()


def test_guard_knows_the_suite_namespace():
    assert os.environ[netguard.HOST_NETNS_ENV] == netguard.current_netns()
