# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The suite's network guard: any connection to a non-loopback address fails, and is written down.

Installed in the pytest process by ``conftest.py`` and in every Python child (az included) through
``netguard_site/sitecustomize.py`` on PYTHONPATH. Inside a network namespace that a test made itself (the
process's /proc/self/ns/net differs from the suite's), nothing can leave the machine, so all is allowed.
"""

import ipaddress
import os
import socket

LOG_ENV = 'SCHEDULED_EVENTS_NETGUARD_LOG'
HOST_NETNS_ENV = 'SCHEDULED_EVENTS_HOST_NETNS'
SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'netguard_site')


def current_netns():
    try:
        return os.readlink('/proc/self/ns/net')
    except OSError:
        return ''


def is_loopback(host):
    if host == 'localhost':
        return True
    try:
        address = ipaddress.ip_address(host.split('%')[0])
    except ValueError:
        return False
    mapped = getattr(address, 'ipv4_mapped', None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(str(address[0])):
        message = f'netguard: pid {os.getpid()} tried to reach {address[0]}:{address[1]} outside a test namespace'
        log = os.environ.get(LOG_ENV)
        if log:
            with open(log, 'a', encoding='utf-8') as handle:
                handle.write(message + '\n')
        raise PermissionError(message)


def install():
    """Guard this process; a no-op inside a network namespace other than the suite's own."""
    host_netns = os.environ.setdefault(HOST_NETNS_ENV, current_netns())
    if current_netns() != host_netns or getattr(socket.socket, '_netguard', False):
        return
    connect, connect_ex, sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto

    def guarded_connect(self, address):
        _check(self, address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        _check(self, address)
        return connect_ex(self, address)

    def guarded_sendto(self, data, *args):
        _check(self, args[-1])
        return sendto(self, data, *args)

    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.socket.sendto = guarded_sendto
    socket.socket._netguard = True
