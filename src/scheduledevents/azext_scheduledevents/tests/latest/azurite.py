# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Azurite's blob service on loopback for the tests, and SAS tokens signed as the service checks them.

scripts/bootstrap installs Azurite (npm package ``azurite``, pinned) into the project's ``.azurite/``; it runs
here on 127.0.0.1 on a free port, in a folder of the test's own, with its telemetry off (otherwise it
reaches out to Application Insights). ``https=`` certificates turn on TLS and ``--oauth basic``, under which
Azurite takes a bearer token whose audience is storage and whose issuer is Entra ID's, unsigned or not.

    with Azurite(tmp_path) as azurite:
        url = azurite.create_container('leases')            # http://127.0.0.1:PORT/devstoreaccount1/leases
        BlobContainer(url, credential=SasCredential(azurite.container_sas('leases')))

``FaultyProxy`` stands between a client and Azurite (plain http) and breaks the answers it is told to.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import signal
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from azext_scheduledevents.core.blob import X_MS_VERSION, BlobContainer, SasCredential

REPO = Path(__file__).resolve().parents[5]
AZURITE_BLOB = REPO / '.azurite' / 'node_modules' / '.bin' / 'azurite-blob'
# Azurite's (and the Storage Emulator's) well-known development account: documented, not a secret.
ACCOUNT = 'devstoreaccount1'
ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
# The SAS version signed: the client's own REST version, whose string-to-sign is that of 2020-12-06 on.
SAS_VERSION = X_MS_VERSION
START_TIMEOUT_IN_SECONDS = 30.0


def unavailable():
    """Why Azurite cannot run here (``None`` when it can)."""
    if not shutil.which('node'):
        return 'needs Node.js (node) to run Azurite: run scripts/bootstrap'
    if not AZURITE_BLOB.exists():
        return f'needs Azurite in {AZURITE_BLOB.parent.parent.parent}: run scripts/bootstrap'
    return None


class Azurite:
    """One Azurite blob service. ``certificates`` (``fakearm.tls.Certificates``) makes it https with
    ``--oauth basic``; ``wrapper`` runs it under another program (``['strace', ...]``)."""

    def __init__(self, folder, *, certificates=None, wrapper=()):
        self.folder = Path(folder)
        self.certificates = certificates
        self.wrapper = list(wrapper)
        self.port = None
        self._process = None
        self._log = None

    @property
    def url(self):
        """The account URL, path-style: ``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f'{"https" if self.certificates else "http"}://127.0.0.1:{self.port}/{ACCOUNT}'

    def command(self):
        command = [*self.wrapper, str(AZURITE_BLOB), '--blobHost', '127.0.0.1', '--blobPort', str(self.port),
                   '--location', str(self.folder / 'data'), '--silent', '--disableTelemetry']
        if self.certificates:
            command += ['--oauth', 'basic', '--cert', str(self.certificates.cert), '--key', str(self.certificates.key)]
        return command

    def start(self):
        (self.folder / 'data').mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self._log = open(self.folder / 'azurite.log', 'wb')  # pylint: disable=consider-using-with
        # A session of its own: stop() ends every process of it, node under a wrapper included.
        self._process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_until_listening()
        return self

    def stop(self):
        if self._process is not None:
            self._signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self._signal(signal.SIGKILL)     # whatever of the group is left
            self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def _signal(self, signum):
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:
            pass

    def log(self):
        return (self.folder / 'azurite.log').read_text(errors='replace')

    def _wait_until_listening(self):
        """Azurite says it listens on its console; a TCP connect that succeeds says the same, sooner."""
        deadline = time.monotonic() + START_TIMEOUT_IN_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f'Azurite exited with {self._process.returncode}:\n{self.log()}')
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f'Azurite did not listen within {START_TIMEOUT_IN_SECONDS:g} s:\n{self.log()}')

    # Containers and SAS --------------------------------------------------------------------------------

    def container_url(self, container):
        return f'{self.url}/{container}'

    def create_container(self, container, **kwargs):
        """Create ``container`` through the client itself, with an account SAS; returns its URL."""
        with BlobContainer(self.container_url(container), credential=SasCredential(self.account_sas()),
                           **kwargs) as client:
            client.create_container()
        return self.container_url(container)

    def account_sas(self, *, permissions='racwdl', hours=1):
        """An account SAS for the blob service, every resource type."""
        fields = {'sv': SAS_VERSION, 'ss': 'b', 'srt': 'sco', 'sp': permissions, 'se': _expiry(hours)}
        string_to_sign = '\n'.join([ACCOUNT, fields['sp'], fields['ss'], fields['srt'], '', fields['se'], '', '',
                                    fields['sv'], '', ''])
        return urlencode(dict(fields, sig=_sign(string_to_sign)))

    def container_sas(self, container, *, permissions='racwdl', hours=1):
        """A service SAS for one container (``sr=c``), as Create Service SAS documents its string-to-sign."""
        fields = {'sv': SAS_VERSION, 'sr': 'c', 'sp': permissions, 'se': _expiry(hours)}
        string_to_sign = '\n'.join([fields['sp'], '', fields['se'], f'/blob/{ACCOUNT}/{container}', '', '', '',
                                    fields['sv'], fields['sr'], '', '', '', '', '', '', ''])
        return urlencode(dict(fields, sig=_sign(string_to_sign)))


def _sign(string_to_sign):
    digest = hmac.new(base64.b64decode(ACCOUNT_KEY), string_to_sign.encode('utf-8'), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _expiry(hours):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=hours)
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def _free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class FaultyProxy:
    """A loopback HTTP relay to Azurite that records each request and applies queued faults, one a request:
    ``('status', 503, retry_after)`` answers that instead of forwarding; ``('reset',)`` drops the connection
    unanswered; ``('lose-answer',)`` forwards, then drops the connection instead of relaying the answer.

        with FaultyProxy(azurite) as proxy:
            proxy.faults.append(('status', 503, 1))
            BlobContainer(proxy.container_url('c'), ...)
    """

    def __init__(self, azurite):
        self.azurite = azurite
        self.faults = deque()
        self.always = None          # a fault applied to every request, while set
        self.requests = []          # (method, path without query, fault name or None)
        self._server = ThreadingHTTPServer(('127.0.0.1', 0), _RelayHandler)
        self._server.daemon_threads = True
        self._server.proxy = self
        self._thread = None

    @property
    def url(self):
        return f'http://127.0.0.1:{self._server.server_address[1]}/{ACCOUNT}'

    def container_url(self, container):
        return f'{self.url}/{container}'

    def __enter__(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def take_fault(self):
        if self.always is not None:
            return self.always
        return self.faults.popleft() if self.faults else None


class _RelayHandler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Hop-by-hop headers, and those send_response writes itself.
    _HOP_BY_HOP = frozenset({'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date', 'server'})

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def do_GET(self):
        self._relay()

    do_PUT = do_DELETE = do_HEAD = do_POST = do_GET

    def _relay(self):
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        fault = proxy.take_fault()
        proxy.requests.append((self.command, urlsplit(self.path).path, fault[0] if fault else None))
        if fault and fault[0] == 'status':
            self._answer(fault[1], {'x-ms-error-code': 'ServerBusy', 'Retry-After': str(fault[2])},
                         b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
                         b'<Message>Injected fault.</Message></Error>')
            return
        if fault and fault[0] == 'reset':
            self._reset()
            return
        upstream = http.client.HTTPConnection('127.0.0.1', proxy.azurite.port, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body or None, headers={
                name: value for name, value in self.headers.items() if name.lower() not in self._HOP_BY_HOP})
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        if fault and fault[0] == 'lose-answer':
            self._reset()
            return
        self._answer(answer.status, {name: value for name, value in answer.getheaders()
                                     if name.lower() not in self._HOP_BY_HOP}, data)

    def _answer(self, status, headers, data):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        self.close_connection = True
        self.connection.close()
