# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The Instance Metadata Service client: the one module that knows IMDS's address, paths and header.

It speaks plain HTTP through the standard library's ``http.client``, which never consults HTTP_PROXY or
HTTPS_PROXY (IMDS must be reached directly) and adds no X-Forwarded-For, and costs no import time that az
has not already paid. One connection (``transport.Connection``) is kept alive across calls.
"""

import http.client
import json
import random
import re
import socket
import time
from urllib.parse import urlencode, urlsplit

from .log import get_logger

from .config import DEFAULT_RETRY_POLICY
from .errors import (ImdsProtocolError, ImdsRejectedError, ImdsResponseError, ImdsTimeoutError,
                     ImdsUnreachableError, InvalidEndpointError)
from .events import EventsDocument, validate_event_id
from .times import retry_after_seconds
from .transport import ConnectFailed, Connection, ConnectionOwner

logger = get_logger(__name__)

DEFAULT_ENDPOINT = 'http://169.254.169.254'
SCHEDULED_EVENTS_PATH = '/metadata/scheduledevents'
INSTANCE_PATH = '/metadata/instance'
METADATA_HEADER = 'Metadata'
# Oldest first. Preempt arrived in 2017-11-01, Terminate in 2019-01-01; see events.FIELDS_ADDED_IN.
API_VERSIONS = ('2017-03-01', '2017-08-01', '2017-11-01', '2019-01-01', '2019-04-01', '2019-08-01', '2020-07-01')
DEFAULT_API_VERSION = API_VERSIONS[-1]
INSTANCE_API_VERSION = '2021-02-01'
# A managed identity's access token (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/
# how-to-use-vm-token): GET with ``resource`` (the token's audience) and, for a user-assigned identity, ``client_id``.
IDENTITY_PATH = '/metadata/identity/oauth2/token'
IDENTITY_API_VERSION = '2018-02-01'

# Azure VM and scale-set instance names (``myvmss_3``): letters, digits, '.', '-' and '_'.
_VM_NAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9._-]{0,79}')
# 410 while the service starts (retry for about 70 s), 429 over the rate limit, 5xx on service faults.
_RETRIED_STATUSES = frozenset({410, 429}) | frozenset(range(500, 600))
# The token endpoint also answers 404 while IMDS is updating; the documented advice is to retry it.
_TOKEN_RETRIED_STATUSES = _RETRIED_STATUSES | {404}


def parse_endpoint(endpoint):
    """``'http://127.0.0.1:8169'`` -> ``('127.0.0.1', 8169)``; anything else -> ``InvalidEndpointError``."""
    parts = urlsplit(endpoint.strip()) if isinstance(endpoint, str) else None
    try:
        port = parts.port if parts else None
    except ValueError:
        port = -1
    plain = parts is not None and parts.scheme == 'http' and bool(parts.hostname) and port != -1
    if not plain or parts.path not in ('', '/') or any((parts.query, parts.fragment, parts.username)):
        raise InvalidEndpointError(f'IMDS endpoint {endpoint!r} is not a plain http://host[:port] URL '
                                   f'(the default is {DEFAULT_ENDPOINT}).')
    return parts.hostname, port or 80


class ImdsClient(ConnectionOwner):  # pylint: disable=too-many-instance-attributes
    """Reads and approves Scheduled Events, reads this VM's instance metadata, and gets its managed
    identity's tokens.

    Every call is retried on 410, 429, 5xx and dropped connections with the ``retry`` policy, within its
    deadline. A refused or timed-out connect is not retried: IMDS answers at once on every Azure VM.

        with ImdsClient() as imds:                       # http://169.254.169.254
            document = imds.get_document()
        ImdsClient('http://127.0.0.1:8169')              # the emulator
    """

    def __init__(self, endpoint=DEFAULT_ENDPOINT, *, api_version=DEFAULT_API_VERSION, retry=DEFAULT_RETRY_POLICY,
                 clock=time.monotonic, sleep=time.sleep, rng=random.random):
        self.endpoint = endpoint.strip().rstrip('/')
        self._host, self._port = parse_endpoint(endpoint)
        self.api_version = api_version
        self.retry = retry
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._conn = Connection(self._host, self._port, connect_timeout_in_seconds=retry.connect_timeout_in_seconds)

    def get_document(self, *, deadline_in_seconds=None):
        """GET the Scheduled Events document. Retried: a GET changes nothing."""
        body = self._request('GET', SCHEDULED_EVENTS_PATH, {'api-version': self.api_version},
                             deadline_in_seconds=deadline_in_seconds)
        return EventsDocument.from_wire(self._json(body))

    def approve(self, event_ids, *, deadline_in_seconds=None):
        """POST a StartRequests for ``event_ids``. Retried: approving an approved event is a no-op (200).

        IMDS's answer for an unknown or already Started id is not documented, so callers confirm the
        outcome by reading the document again rather than trusting this POST's status.
        """
        ids = [validate_event_id(event_id) for event_id in event_ids]
        if not ids:
            raise ValueError('approve() needs at least one event id')
        payload = json.dumps({'StartRequests': [{'EventId': event_id} for event_id in ids]}).encode()
        self._request('POST', SCHEDULED_EVENTS_PATH, {'api-version': self.api_version}, payload,
                      deadline_in_seconds=deadline_in_seconds)

    def vm_name(self, *, deadline_in_seconds=None):
        """This VM's ``compute.name`` (``myvmss_3`` for a scale-set instance): the name events list."""
        body = self._request('GET', INSTANCE_PATH + '/compute/name',
                             {'api-version': INSTANCE_API_VERSION, 'format': 'text'},
                             deadline_in_seconds=deadline_in_seconds)
        name = body.decode('utf-8', 'replace').strip()
        # Events are matched against this name: an error page taken for a name would match nothing.
        if not _VM_NAME.fullmatch(name):
            raise ImdsProtocolError(f'IMDS at {self.endpoint} answered {name[:80]!r} for compute.name, '
                                    'which is not a VM name', endpoint=self.endpoint)
        return name

    def get_token(self, resource, *, client_id=None, deadline_in_seconds=None):
        """A managed identity's access token for ``resource``: the answer's fields (``access_token``,
        ``expires_on`` in epoch seconds, ...). Retried, 404 included: IMDS answers it while updating.

        The token never appears in a log line or an error message.
        """
        query = {'api-version': IDENTITY_API_VERSION, 'resource': resource}
        if client_id:
            query['client_id'] = client_id
        body = self._request('GET', IDENTITY_PATH, query, deadline_in_seconds=deadline_in_seconds,
                             retried=_TOKEN_RETRIED_STATUSES)
        try:
            answer = json.loads(body)
            expires_on = float(answer['expires_on'])
        except (ValueError, TypeError, KeyError):
            answer, expires_on = None, None
        if not isinstance(answer, dict) or not isinstance(answer.get('access_token'), str) or expires_on is None:
            # The body is not quoted: it may hold a token.
            raise ImdsProtocolError(f'IMDS at {self.endpoint} answered a token request with no access_token '
                                    'and expires_on', endpoint=self.endpoint)
        return answer

    def _json(self, body):
        try:
            return json.loads(body)
        except ValueError:
            raise ImdsProtocolError(f'IMDS at {self.endpoint} answered with a body that is not JSON: '
                                    f'{body[:80]!r}', endpoint=self.endpoint) from None

    def _request(self, method, path, query, payload=None, *, deadline_in_seconds=None, retried=_RETRIED_STATUSES):
        """One call with retries; returns the body of a 2xx answer."""
        url = f'{path}?{urlencode(query)}'
        deadline = self._clock() + (deadline_in_seconds or self.retry.deadline_in_seconds)
        headers = {METADATA_HEADER: 'true'}
        if payload is not None:
            headers['Content-Type'] = 'application/json'
        attempt = 0
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ImdsTimeoutError(f'IMDS at {self.endpoint} did not answer {method} {path} in time.',
                                       endpoint=self.endpoint)
            try:
                status, reason, retry_after, body = self._send(method, url, payload, headers, remaining)
            except socket.timeout:
                raise ImdsTimeoutError(f'IMDS at {self.endpoint} did not answer {method} {path} in time.',
                                       endpoint=self.endpoint) from None
            except (ConnectionError, http.client.HTTPException) as ex:
                # A reset or a dropped keep-alive connection: the request may be sent again.
                failure = f'connection dropped ({type(ex).__name__})'
                retry_after = None
            else:
                if 200 <= status < 300:
                    return body
                if status not in retried:
                    raise self._response_error(method, path, status, reason, body)
                failure = f'{status} {reason}'
            delay = self.retry.delay(attempt, self._rng) if retry_after is None else retry_after
            if self._clock() + delay >= deadline:
                raise ImdsTimeoutError(f'IMDS at {self.endpoint} still answered {failure} to {method} {path} '
                                       'when the deadline came.', endpoint=self.endpoint)
            logger.info('IMDS answered %s to %s %s; retrying in %.1f s', failure, method, path, delay)
            self._sleep(delay)
            attempt += 1

    def _send(self, method, url, payload, headers, remaining):
        """One HTTP exchange on the kept-alive connection, opening it first if needed."""
        try:
            answer = self._conn.exchange(method, url, payload, headers, timeout_in_seconds=remaining)
        except ConnectFailed as ex:
            raise ImdsUnreachableError(f'IMDS is not reachable at {self.endpoint} ({ex.reason}): '
                                       'is this an Azure VM?', endpoint=self.endpoint) from None
        return answer.status, answer.reason, retry_after_seconds(answer.header('Retry-After')), answer.body

    def _response_error(self, method, path, status, reason, body):
        detail = _error_detail(body)
        if status == 400:
            return ImdsRejectedError(f'IMDS at {self.endpoint} rejected {method} {path}: {detail}',
                                     endpoint=self.endpoint, status=status, body=body)
        return ImdsResponseError(f'IMDS at {self.endpoint} answered {status} {reason} to {method} {path}'
                                 + (f': {detail}' if detail else ''),
                                 endpoint=self.endpoint, status=status, body=body)


def _error_detail(body):
    """IMDS error bodies are ``{"error": "...", "newest-versions": [...]}`` (the token endpoint's add an
    ``error_description``); say them in one line."""
    try:
        obj = json.loads(body)
    except ValueError:
        return body[:200].decode('utf-8', 'replace').strip()
    if not isinstance(obj, dict):
        return str(obj)[:200]
    detail = str(obj.get('error', obj))
    if obj.get('error_description'):
        detail += f': {obj["error_description"]}'
    if obj.get('newest-versions'):
        detail += f' (newest api-versions: {", ".join(map(str, obj["newest-versions"]))})'
    return detail
