# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Blob Storage through its REST API and the standard library alone: put (if absent), get, list, delete.

The watcher coordinates VMs through one container, and the blob sink writes to one; the standalone agent
carries this module to VMs whose Python may be 3.8 with nothing installed, so it needs no SDK, no
``requests`` and no ``ssl`` until an https URL is used. A credential is a SAS (its query string on every
request) or the VM's managed identity (a bearer token from IMDS, over https only); neither ever appears in
a log line, an exception message or a ``repr``.

    container = BlobContainer('https://myaccount.blob.core.windows.net/scheduled-events',
                              credential=ManagedIdentityCredential())
    container.put('web/leader', b'{"vm": "web_0"}', if_none_match=True)    # False: another VM was first
    container.get('web/leader')                                             # b'{"vm": "web_0"}', or None
    container.list('web/'), container.delete('web/leader')
"""

import random
import re
import threading
import time
import uuid
from email.utils import formatdate
from typing import List, Optional
from urllib.parse import quote, unquote, urlencode, urlsplit
from xml.etree import ElementTree

from .config import (BLOB_LIST_PAGE_SIZE, BLOB_RETRY_POLICY, BLOB_TIMEOUT_IN_SECONDS, DEFAULT_RETRY_POLICY,
                     TOKEN_REFRESH_MARGIN_IN_SECONDS)
from .errors import BlobError, ImdsResponseError, InvalidSettingError
from .imds import DEFAULT_ENDPOINT, ImdsClient
from .log import get_logger
from .retrying import Resender, describe
from .times import iso_utc
from .transport import Answer, ConnectFailed, Connection, ConnectionOwner

logger = get_logger(__name__)

# The REST API version sent on every request: Azure Storage takes it, and so does the Azurite the tests
# run (3.35, pinned in scripts/bootstrap) without --skipApiVersionCheck.
X_MS_VERSION = '2023-11-03'
STORAGE_RESOURCE = 'https://storage.azure.com/'

_MAX_BLOB_NAME_LENGTH = 1024
_SIG = re.compile(r'(?i)\b(sig=)[^&\s\'"]+')
_BEARER = re.compile(r'(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{16,}')


class SasCredential:
    """A shared access signature, appended to every request's query string.

        SasCredential('sv=2023-11-03&sr=c&sp=racwdl&se=2030-01-01T00%3A00%3A00Z&sig=...')  # '?...' works too
    """

    requires_https = False

    def __init__(self, token):
        token = token.strip() if isinstance(token, str) else ''
        token = token[1:] if token.startswith('?') else token
        if 'sig=' not in token:
            raise InvalidSettingError('a SAS token is a query string with a sig= field, such as what '
                                      'az storage container generate-sas prints')
        self._token = token
        signatures = [value for key, value in (pair.partition('=')[::2] for pair in token.split('&')) if key == 'sig']
        self._secrets = tuple({form for value in signatures for form in (value, unquote(value)) if form})

    def __repr__(self):
        return 'SasCredential(<redacted>)'

    def authorize(self, *, deadline_in_seconds):  # pylint: disable=unused-argument
        """``(query string, headers)`` for one request."""
        return self._token, {}

    def redact(self, text):
        for secret in self._secrets:
            text = text.replace(secret, '<redacted>')
        return text


class ManagedIdentityCredential:
    """The VM's managed identity: a bearer token from IMDS, kept until shortly before it expires.

    ``imds_endpoint`` is where IMDS answers (the caller resolves AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT and
    passes it); ``client_id`` picks a user-assigned identity. Storage takes bearer tokens over https only.

        ManagedIdentityCredential()                                   # the system-assigned identity
        ManagedIdentityCredential('http://127.0.0.1:8169', client_id='...')
    """

    requires_https = True

    def __init__(self, imds_endpoint=DEFAULT_ENDPOINT, *, resource=STORAGE_RESOURCE, client_id=None,
                 retry=DEFAULT_RETRY_POLICY, wall=time.time):
        self.resource = resource
        self.client_id = client_id
        self._imds = ImdsClient(imds_endpoint, retry=retry)
        self._wall = wall
        self._lock = threading.Lock()
        self._token = None
        self._refresh_at = 0.0

    def __repr__(self):
        return f'ManagedIdentityCredential({self._imds.endpoint!r}, client_id={self.client_id!r})'

    def authorize(self, *, deadline_in_seconds):
        """``(query string, headers)`` for one request; asks IMDS only when the token is due for renewal."""
        return '', {'Authorization': 'Bearer ' + self._current(deadline_in_seconds)}

    def redact(self, text):
        token = self._token
        return text.replace(token, '<redacted>') if token else text

    def close(self):
        self._imds.close()

    def _current(self, deadline_in_seconds):
        with self._lock:
            if self._token is None or self._wall() >= self._refresh_at:
                self._fetch(deadline_in_seconds)
            return self._token

    def _fetch(self, deadline_in_seconds):
        try:
            answer = self._imds.get_token(self.resource, client_id=self.client_id,
                                          deadline_in_seconds=deadline_in_seconds)
        except ImdsResponseError as ex:
            raise BlobError(f'The managed identity has no token for {self.resource}: {ex}', status=ex.status,
                            code=BlobError.NO_MANAGED_IDENTITY) from None
        now, expires_on = self._wall(), float(answer['expires_on'])
        # A short-lived token is renewed halfway through its life rather than on every request.
        self._refresh_at = expires_on - min(TOKEN_REFRESH_MARGIN_IN_SECONDS, max(0.0, expires_on - now) / 2)
        self._token = answer['access_token']
        logger.info('Managed identity token for %s, valid until %s', self.resource, iso_utc(expires_on))


class BlobContainer(ConnectionOwner):  # pylint: disable=too-many-instance-attributes
    """One container, on one kept-alive connection (use one object per thread).

    Every operation is retried on 408, 429, 500, 502, 503, 504 and dropped connections, honouring
    Retry-After, until ``retry.deadline_in_seconds``; one attempt waits at most ``timeout_in_seconds``.
    Any other unexpected answer raises ``BlobError``. ``url`` is the container's URL without a query:
    ``https://ACCOUNT.blob.core.windows.net/CONTAINER``, or Azurite's ``http://127.0.0.1:10000/devstoreaccount1/C``.
    ``credential`` is a ``SasCredential``, a ``ManagedIdentityCredential``, or ``None`` for anonymous
    requests (a container with public read access).

        BlobContainer(url, credential=SasCredential(token), ssl_context=ssl.create_default_context(cafile=ca))
    """

    def __init__(self, url, *, credential, timeout_in_seconds=BLOB_TIMEOUT_IN_SECONDS, retry=BLOB_RETRY_POLICY,
                 ssl_context=None, clock=time.monotonic, sleep=time.sleep, wall=time.time, rng=random.random):
        https, host, port, self._path = _parse_container_url(url)
        self.url = f'{"https" if https else "http"}://{_netloc(host, port, https)}{self._path}'
        if getattr(credential, 'requires_https', False) and not https:
            raise InvalidSettingError(f'{type(credential).__name__} sends a bearer token, which travels over '
                                      f'https only, and {self.url} is http: use an https URL or a SAS')
        if timeout_in_seconds <= 0:
            raise InvalidSettingError('timeout_in_seconds must be greater than 0')
        self.credential = credential
        self.timeout_in_seconds = timeout_in_seconds
        self._wall = wall
        self._resender = Resender(retry, clock=clock, sleep=sleep, rng=rng, wall=wall)
        self._conn = Connection(host, port, https=https, ssl_context=ssl_context,
                                connect_timeout_in_seconds=retry.connect_timeout_in_seconds)

    @property
    def retry(self):
        """The ``config.RetryPolicy`` of every operation (it may be replaced between operations)."""
        return self._resender.retry

    @retry.setter
    def retry(self, policy):
        self._resender.retry = policy

    # Operations ------------------------------------------------------------------------------------------

    def put(self, name, data: bytes, *, if_none_match=False, content_type='application/json') -> bool:
        """Put Blob (a block blob). With ``if_none_match`` it is written only when absent: ``False`` then
        means another writer was first, and nothing was changed.

        When a retry of a put-if-absent finds the blob present, an earlier attempt may have written it:
        the blob is read back, and equal content counts as this writer's. So write something that is
        yours alone (your VM name, a nonce) when the answer decides who leads.
        """
        headers = {'x-ms-blob-type': 'BlockBlob', 'Content-Type': content_type}
        if if_none_match:
            headers['If-None-Match'] = '*'
        answer, uncertain = self._request('PUT', name, body=bytes(data), headers=headers)
        if answer.status == 201:
            return True
        code = _error_code(answer)
        if if_none_match and (answer.status == 412 or (answer.status == 409 and code == 'BlobAlreadyExists')):
            return uncertain and self.get(name) == bytes(data)
        raise self._error('PUT', name, answer)

    def get(self, name) -> Optional[bytes]:
        """Get Blob: its content, or ``None`` when it does not exist (a missing container raises)."""
        answer, _ = self._request('GET', name)
        if answer.status == 200:
            return answer.body
        if answer.status == 404 and _error_code(answer) in ('BlobNotFound', None):
            return None
        raise self._error('GET', name, answer)

    def list(self, prefix='', *, page_size=BLOB_LIST_PAGE_SIZE) -> List[str]:
        """List Blobs: every name that starts with ``prefix``, in the service's (lexical) order. Each page of
        ``page_size`` names is one request, with its own deadline, until no NextMarker comes."""
        names, marker = [], ''
        while True:
            query = {'restype': 'container', 'comp': 'list', 'maxresults': str(page_size)}
            query.update((key, value) for key, value in (('prefix', prefix), ('marker', marker)) if value)
            answer, _ = self._request('GET', None, query)
            if answer.status != 200:
                raise self._error('GET', None, answer, 'List Blobs')
            page, marker = self._list_page(answer.body)
            names.extend(page)
            if not marker:
                return names

    def delete(self, name) -> bool:
        """Delete Blob: ``False`` when it did not exist. A retry that finds it gone after an attempt that
        may have deleted it says ``True``."""
        answer, uncertain = self._request('DELETE', name)
        if answer.status == 202:
            return True
        if answer.status == 404 and _error_code(answer) in ('BlobNotFound', None):
            return uncertain
        raise self._error('DELETE', name, answer)

    def create_container(self) -> bool:
        """Create Container: ``False`` when it exists already. Needs an account SAS or a data role that
        allows it (a container SAS cannot create its container)."""
        answer, _ = self._request('PUT', None, {'restype': 'container'})
        if answer.status == 201:
            return True
        if answer.status == 409 and _error_code(answer) == 'ContainerAlreadyExists':
            return False
        raise self._error('PUT', None, answer, 'Create Container')

    # One operation, with retries --------------------------------------------------------------------------

    def _request(self, method, name, query=None, *, body=None, headers=None):
        """Send until an answer that is not retried, within the deadline -> ``(answer, uncertain)``
        (``retrying.Sent`` says what ``uncertain`` means)."""
        target = self._target(name, query)

        def exchange(remaining):
            query_string, auth_headers = ('', {}) if self.credential is None else self.credential.authorize(
                deadline_in_seconds=remaining)
            request_headers = {'x-ms-version': X_MS_VERSION, 'x-ms-date': formatdate(self._wall(), usegmt=True),
                               'x-ms-client-request-id': str(uuid.uuid4())}
            request_headers.update(headers or {})
            request_headers.update(auth_headers)
            return self._conn.exchange(method, _with_query(target, query_string), body, request_headers,
                                       timeout_in_seconds=min(self.timeout_in_seconds, remaining))

        def on_retry(last, delay):
            logger.info('Blob Storage: %s to %s %s; retrying in %.1f s', _describe(last), method, self._what(name),
                        delay)
        try:
            sent = self._resender.send(exchange, on_retry=on_retry)
        except ConnectFailed as ex:
            raise BlobError(f'Cannot connect to Blob Storage at {self.url}: {ex.reason}', container=self.url) from None
        if sent.answer is None:
            raise self._deadline_error(method, name, sent.last)
        return sent.answer, sent.uncertain

    # Names, answers and errors ------------------------------------------------------------------------

    def _target(self, name, query):
        path = self._path
        if name is not None:
            if not isinstance(name, str) or not name or len(name) > _MAX_BLOB_NAME_LENGTH:
                raise ValueError(f'a blob name is 1 to {_MAX_BLOB_NAME_LENGTH} characters, not {name!r}')
            path += '/' + quote(name, safe='/')
        return path + ('?' + urlencode(query) if query else '')

    def _what(self, name):
        return f'{self.url}/{name}' if name is not None else self.url

    def _list_page(self, body):
        """The names of one List Blobs page and its NextMarker ('' on the last page)."""
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            raise BlobError(f'Blob Storage at {self.url} answered List Blobs with a body that is not XML',
                            status=200, container=self.url) from None
        names = []
        for element in root.iter('Name'):
            # Names with characters XML cannot carry come percent-encoded, marked Encoded="true".
            text = element.text or ''
            names.append(unquote(text) if element.get('Encoded') == 'true' else text)
        return names, (root.findtext('NextMarker') or '').strip()

    def _error(self, method, name, answer, operation=None):
        code = _error_code(answer)
        detail = self._redact(_error_message(answer.body))
        doing = operation or f'{method} {self._what(name)}'
        return BlobError(f'Blob Storage answered {answer.status} {code or answer.reason} to {doing}'
                         + (f': {detail}' if detail else ''),
                         status=answer.status, code=code, container=self.url)

    def _deadline_error(self, method, name, last):
        status = last.status if isinstance(last, Answer) else None
        code = _error_code(last) if isinstance(last, Answer) else None
        seen = f' (last: {_describe(last)})' if last is not None else ''
        return BlobError(f'Blob Storage did not complete {method} {self._what(name)} within '
                         f'{self.retry.deadline_in_seconds:g} s{seen}', status=status, code=code, container=self.url)

    def _redact(self, text):
        text = text if self.credential is None else self.credential.redact(text)
        return _BEARER.sub(r'\1<redacted>', _SIG.sub(r'\1<redacted>', text))


def _parse_container_url(url):
    """``'https://a.blob.core.windows.net/c'`` -> ``(True, 'a.blob.core.windows.net', 443, '/c')``."""
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    shown = url.split('?')[0] if isinstance(url, str) else repr(url)
    try:
        port = parts.port if parts else None
    except ValueError:
        parts = None
    if parts is not None and parts.query:
        # The message leaves the query out: it may be a SAS.
        raise InvalidSettingError(f'the container URL {shown} has a query string: give the URL alone, and a '
                                  'SAS as SasCredential(token)')
    path = parts.path.rstrip('/') if parts else ''
    plain = parts is not None and parts.scheme in ('http', 'https') and not (parts.username or parts.fragment)
    if not plain or not parts.hostname or not path.strip('/'):
        raise InvalidSettingError(f'{shown} is not a container URL such as '
                                  'https://ACCOUNT.blob.core.windows.net/CONTAINER')
    https = parts.scheme == 'https'
    return https, parts.hostname, port or (443 if https else 80), quote(unquote(path), safe='/')


def _with_query(target, query_string):
    return target + ('&' if '?' in target else '?') + query_string if query_string else target


def _netloc(host, port, https):
    host = f'[{host}]' if ':' in host else host
    return host if port == (443 if https else 80) else f'{host}:{port}'


def _error_code(answer):
    """Storage's error code: the x-ms-error-code header, else the XML body's <Code>."""
    code = answer.header('x-ms-error-code')
    if code:
        return code
    try:
        return ElementTree.fromstring(answer.body).findtext('Code') if answer.body else None
    except ElementTree.ParseError:
        return None


def _error_message(body):
    """The first line of the XML error's <Message> (the rest is a request id and a time), with the
    first line of <AuthenticationErrorDetail> when there is one."""
    try:
        root = ElementTree.fromstring(body) if body else None
    except ElementTree.ParseError:
        return body[:200].decode('utf-8', 'replace').strip().splitlines()[0] if body.strip() else ''
    if root is None:
        return ''
    lines = [(root.findtext(tag) or '').strip().splitlines() for tag in ('Message', 'AuthenticationErrorDetail')]
    return ' '.join(found[0] for found in lines if found)


def _describe(last):
    if isinstance(last, Answer):
        return f'{last.status} {_error_code(last) or last.reason}'
    return describe(last)
