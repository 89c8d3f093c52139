# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""One kept-alive ``http.client`` connection: what the IMDS, Blob Storage and webhook clients share.

``http.client`` never consults HTTP_PROXY or HTTPS_PROXY and adds no header of its own beyond Host,
Accept-Encoding: identity and Content-Length, and az has already imported it. Each client keeps its own
policy (what to retry, which error to raise); this module only opens, reuses and closes the connection,
so a failed exchange never leaves a half-read answer on a socket that is used again.

    connection = Connection('127.0.0.1', 8169, connect_timeout_in_seconds=2)
    answer = connection.exchange('GET', '/metadata/scheduledevents?api-version=2020-07-01', None,
                                 {'Metadata': 'true'}, timeout_in_seconds=10)
    answer.status, answer.header('Retry-After'), answer.body
"""

import http.client
import os
import socket
from collections import namedtuple

# A private CA's bundle (a TLS-inspecting proxy, a test's throwaway CA): the variable az itself honours.
CA_BUNDLE_ENV = 'REQUESTS_CA_BUNDLE'


class ConnectFailed(Exception):
    """The TCP connection (or its TLS handshake) could not be made. ``reason`` says why in a few words,
    ``cause`` is the ``OSError`` itself; nothing was sent. ``permanent``: waiting will not help (a name that
    does not resolve, a certificate that is not trusted)."""

    def __init__(self, reason, *, cause, permanent=False):
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
        self.permanent = permanent


class Answer(namedtuple('Answer', 'status reason headers body')):
    """One HTTP answer, read whole: ``headers`` is the ``http.client.HTTPMessage``."""

    __slots__ = ()

    def header(self, name):
        return self.headers.get(name)


class Connection:
    """A connection opened on first use and kept alive; ``https=True`` wraps it in TLS with ``ssl_context``
    (default: the system's trust store, and the CA bundle in REQUESTS_CA_BUNDLE too, which az honours).
    ``ssl`` is imported only then, so plain HTTP works on a Python built without it, or an ``http.client``
    imported without it."""

    def __init__(self, host, port, *, https=False, ssl_context=None, connect_timeout_in_seconds):
        self.host = host
        self.port = port
        self.https = https
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout_in_seconds
        self._conn = None

    @property
    def sock(self):
        """The socket of the open connection, or ``None``."""
        return self._conn.sock if self._conn is not None else None

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def exchange(self, method, target, body, headers, *, timeout_in_seconds):
        """Send one request and read its whole answer within ``timeout_in_seconds`` (each socket wait).

        Raises ``ConnectFailed`` when no connection could be made, and lets ``socket.timeout``,
        ``ConnectionError`` and ``http.client.HTTPException`` through when one broke: the caller decides
        whether to send again. Any failure closes the connection.
        """
        if self._conn is None:
            self._conn = self._open(min(self._connect_timeout, timeout_in_seconds))
        self._conn.sock.settimeout(timeout_in_seconds)
        try:
            self._conn.request(method, target, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return Answer(response.status, response.reason, response.headers, data)

    def _open(self, timeout):
        if self.https:
            conn = _TlsConnection(self.host, self.port, timeout=timeout, context=self._context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.connect()
        except OSError as ex:
            conn.close()
            raise ConnectFailed(describe(ex), cause=ex, permanent=self._permanent(ex)) from None
        return conn

    def _permanent(self, ex):
        if isinstance(ex, socket.gaierror):
            return True
        if self.https:
            import ssl
            return isinstance(ex, ssl.SSLError)
        return False

    def _context(self):
        if self._ssl_context is None:
            import ssl
            context = ssl.create_default_context()
            if os.environ.get(CA_BUNDLE_ENV):
                context.load_verify_locations(cafile=os.environ[CA_BUNDLE_ENV])
            self._ssl_context = context
        return self._ssl_context


class _TlsConnection(http.client.HTTPConnection):
    """HTTPS as ``http.client.HTTPSConnection`` makes it (no proxy tunnel here), which the agent's
    ``http.client`` does not have: it is imported without ``ssl``, whose 6 MB a watcher of plain-http IMDS
    need not carry (``agent/main.py``)."""

    default_port = 443

    def __init__(self, host, port, *, timeout, context):
        super().__init__(host, port, timeout=timeout)
        self._context = context

    def connect(self):
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def describe(ex):
    """A few words for a socket error: ``'connection timed out'``, ``'Connection refused'``."""
    if isinstance(ex, socket.timeout):
        return 'connection timed out'
    if getattr(ex, 'verify_message', None):     # ssl.SSLCertVerificationError
        return f'certificate not trusted: {ex.verify_message}'
    return ex.strerror or getattr(ex, 'reason', None) or type(ex).__name__


class ConnectionOwner:
    """A client that holds one ``Connection`` as ``self._conn``: usable in ``with``, which closes it."""

    _conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if self._conn is not None:
            self._conn.close()
