# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""A faithful IMDS emulator: Scheduled Events and instance metadata, on loopback, for trying handlers.

It keeps the contract the real service keeps (see ``core/imds.py`` for the client side): the
``Metadata: true`` header and api-version checks with IMDS's own error bodies, X-Forwarded-For refused,
stable EventIds, RFC 1123 NotBefore, a DocumentIncarnation that changes on every change, approval moving
Scheduled -> Started, events leaving the document when they are over, and about 5 requests a second
before 429. Events follow ``EventPlan`` timelines (see ``scenarios.py``), compressed by ``speed``.

A control API under ``/_emulator/`` (never under ``/metadata``) lets tests and users add and clear events,
inject faults and read the request log:

    GET    /_emulator/state                 the document as stored, with each event's timeline
    POST   /_emulator/events                {"EventType": "Reboot", "notice": 30, ...} or {"events": [...]}
    DELETE /_emulator/events[/<EventId>]    withdraw all events, or one
    POST   /_emulator/start                 {"EventIds": [...]}: start them, as the platform does
    POST   /_emulator/faults                {"kind": "status", "status": 503, "count": 2}
    DELETE /_emulator/faults                clear every fault rule
    GET    /_emulator/requests              the request log; DELETE clears it
    POST   /_emulator/identity              {"access_token": "...", "expires_in": 3600}: the managed identity's
                                            token; {"access_token": null} the default JWT, {"enabled": false} none

The managed identity's token route, ``GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...``
(``Metadata: true``), answers as IMDS does: ``access_token``, ``expires_in``, ``expires_on`` and ``not_before``
(epoch seconds, as strings), ``resource``, ``token_type``. Its default token is a JWT whose audience is the
resource asked for and whose issuer is an Entra ID one (``https://sts.windows.net/<tenant>/``), valid for an
hour: what Azurite's ``--oauth basic`` checks (it verifies no signature).

    with ImdsEmulator(vm_name='web_0') as emulator:       # port 0: any free port
        emulator.add_events([{'EventType': 'Preempt'}])
        ImdsClient(emulator.url).get_document()
"""

import base64
import hashlib
import hmac
import json
import random
import re
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ..core.config import EMULATOR_HOST, EMULATOR_RATE_LIMIT_PER_SECOND, EMULATOR_SPEED, EMULATOR_VM_NAME
from ..core.errors import ScenarioError
from ..core.events import ScheduledEvent, validate_event_id
from ..core.imds import (API_VERSIONS, IDENTITY_API_VERSION, IDENTITY_PATH, INSTANCE_API_VERSION, INSTANCE_PATH,
                         METADATA_HEADER, SCHEDULED_EVENTS_PATH)
from ..core.log import get_logger
from ..core.vocabulary import EventStatus, FaultKind
from .scenarios import EventPlan, load_scenario

logger = get_logger(__name__)

CONTROL_PREFIX = '/_emulator'
INSTANCE_API_VERSIONS = ('2017-04-02', '2017-08-01', '2017-12-01', '2018-10-01', '2019-03-11', '2019-06-01',
                         '2019-08-15', '2020-06-01', '2020-09-01', INSTANCE_API_VERSION, '2021-12-13', '2023-07-01')

IDENTITY_API_VERSIONS = (IDENTITY_API_VERSION, '2019-08-01')
EMULATOR_TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47'
TOKEN_LIFETIME_IN_SECONDS = 3600
_FAULT_PATHS = ('any', 'scheduledevents', 'instance', 'identity')

_BAD_API_VERSION = ('Bad request. api-version is invalid or was not specified in the request. '
                    'For more information refer to aka.ms/azureimds')


@dataclass(frozen=True, kw_only=True)
class FaultRule:  # pylint: disable=too-many-instance-attributes
    """A fault injected into IMDS answers: ``count`` times (``None``: until cleared), with ``probability``.

        FaultRule(kind=FaultKind.STATUS, status=429, retry_after=1, count=3)
        FaultRule(kind=FaultKind.RESET, probability=0.2, path='scheduledevents')
    """

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    count: int | None = 1
    probability: float = 1.0
    path: str = 'any'
    method: str = 'any'

    @classmethod
    def from_json(cls, obj):
        if not isinstance(obj, dict) or obj.get('kind') not in FaultKind.values():
            raise ScenarioError(f'a fault needs "kind", one of {", ".join(FaultKind.values())}')
        unknown = set(obj) - {f.name for f in fields(cls)}
        if unknown:
            raise ScenarioError(f'unknown fault fields: {", ".join(sorted(unknown))}')
        rule = cls(**dict(obj, kind=FaultKind(obj['kind'])))
        if rule.path not in _FAULT_PATHS or rule.method not in ('any', 'GET', 'POST'):
            raise ScenarioError('path is any|scheduledevents|instance|identity and method is any|GET|POST')
        if not 0 <= rule.probability <= 1 or (rule.count is not None and rule.count < 1):
            raise ScenarioError('probability is within 0..1 and count is at least 1')
        return rule

    def matches(self, path_kind, method):
        return self.path in ('any', path_kind) and self.method in ('any', method)


@dataclass
class _LiveEvent:
    """An event in the document, with the moments (emulator clock) that drive it."""

    plan: EventPlan
    event_id: str
    not_before_at: float | None
    started_at: float | None
    cancel_at: float | None
    reschedule_at: float | None


class ImdsEmulator:  # pylint: disable=too-many-instance-attributes
    """One emulated VM's IMDS. Thread-safe; serves on ``host:port`` from a background thread.

    ``clock`` and ``wall`` are injectable so timelines can be driven without sleeping.
    """

    def __init__(self, *, host=EMULATOR_HOST, port=0, vm_name=EMULATOR_VM_NAME, events=(), speed=EMULATOR_SPEED,
                 terminate_notice=None, rate_limit=EMULATOR_RATE_LIMIT_PER_SECOND, control_socket=None, seed=None,
                 identity_token=None, identity_expires_in=TOKEN_LIFETIME_IN_SECONDS,
                 clock=time.monotonic, wall=time.time):
        if speed <= 0:
            raise ScenarioError('speed must be greater than 0')
        self.vm_name = vm_name
        self.speed = speed
        self.terminate_notice = terminate_notice
        self.rate_limit = rate_limit
        self._clock = clock
        self._wall = wall
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._incarnation = 1
        self._pending = []          # (appear_at, plan) not yet in the document
        self._live = []             # _LiveEvent in order of appearance
        self._faults = []           # [FaultRule, remaining count]
        self._log = deque(maxlen=20000)
        self._tokens = float(rate_limit)
        self._tokens_at = clock()
        self._identity = {'enabled': True, 'access_token': identity_token, 'expires_in': identity_expires_in}
        self._signing_key = os.urandom(32)
        self.add_events(events)
        self._server = ThreadingHTTPServer((host, port), _TcpHandler)
        self._servers = [self._server]
        if control_socket:
            # The same API on a Unix socket: reachable from outside the network namespace IMDS listens in.
            self._servers.append(_UnixHTTPServer(control_socket, _Handler))
        for server in self._servers:
            server.daemon_threads = True
            server.emulator = self
        self._threads = []

    @classmethod
    def from_scenario(cls, scenario='empty', **kwargs):
        """An emulator loaded with a built-in scenario (by name) or a scenario file (by path)."""
        _, events = load_scenario(scenario)
        return cls(events=events, **kwargs)

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f'http://{host}:{port}'

    def start(self):
        for server in self._servers:
            # A short poll interval keeps stop() quick; serving itself does not poll.
            thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05},
                                      name='imds-emulator', daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        for server, thread in zip(self._servers, self._threads):
            server.shutdown()
            thread.join()
        self._threads = []
        for server in self._servers:
            server.server_close()
            if isinstance(server, _UnixHTTPServer) and os.path.exists(server.server_address):
                os.unlink(server.server_address)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # Timeline --------------------------------------------------------------------------------------------

    def add_events(self, specs):
        """Schedule events from their JSON plans (see ``scenarios.py``); returns their EventIds in order."""
        plans = [EventPlan.from_json(spec, vm_name=self.vm_name, speed=self.speed,
                                     terminate_notice=self.terminate_notice) for spec in specs]
        ids = []
        with self._lock:
            now = self._clock()
            for plan in plans:
                plan = plan if plan.event_id else plan.with_event_id(str(uuid.uuid4()).upper())
                self._pending.append((now + plan.at, plan))
                ids.append(plan.event_id)
            self._advance(now)
        return ids

    def withdraw(self, event_id=None):
        """Take one event (or all) out of the document, as a canceled or finished event leaves it."""
        with self._lock:
            self._advance(self._clock())
            before = len(self._live) + len(self._pending)
            self._live = [e for e in self._live if event_id is not None and not _same_id(e.event_id, event_id)]
            self._pending = [(t, p) for t, p in self._pending
                             if event_id is not None and not _same_id(p.event_id, event_id)]
            removed = before - len(self._live) - len(self._pending)
            if removed:
                self._incarnation += 1
            return removed

    def document(self, api_version=None):
        """The Scheduled Events document as IMDS would serve it now."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            return {'DocumentIncarnation': self._incarnation,
                    'Events': [self._public(e, now).to_wire(api_version) for e in self._live]}

    def approve(self, event_ids):
        """Start every Scheduled event among ``event_ids``; unknown and Started ids change nothing."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            for live in self._live:
                if live.started_at is None and any(_same_id(live.event_id, i) for i in event_ids):
                    live.started_at = now
                    live.not_before_at = None
                    self._incarnation += 1
                    logger.warning('Event %s (%s) approved: Started', live.event_id, live.plan.event_type)

    def state(self):
        with self._lock:
            now = self._clock()
            self._advance(now)
            return {
                'vm_name': self.vm_name,
                'DocumentIncarnation': self._incarnation,
                'events': [dict(self._public(e, now).to_wire(),
                                started_seconds_ago=None if e.started_at is None else round(now - e.started_at, 3))
                           for e in self._live],
                'pending': [dict(p.to_json(), appears_in_seconds=round(t - now, 3)) for t, p in self._pending],
                'faults': [dict(vars(rule), remaining=left) for rule, left in self._faults],
            }

    def _advance(self, now):
        """Apply every timeline step due by ``now``; each change bumps DocumentIncarnation."""
        due = [(t, p) for t, p in self._pending if t <= now]
        self._pending = [(t, p) for t, p in self._pending if t > now]
        for appear_at, plan in sorted(due, key=lambda item: item[0]):
            started = appear_at if plan.already_started else None
            self._live.append(_LiveEvent(
                plan=plan, event_id=plan.event_id, started_at=started,
                not_before_at=None if started is not None else appear_at + plan.notice,
                cancel_at=None if plan.cancel_after is None else appear_at + plan.cancel_after,
                reschedule_at=None if plan.reschedule_after is None else appear_at + plan.reschedule_after))
            self._incarnation += 1
        remaining = []
        for live in self._live:
            if live.started_at is None:
                if live.cancel_at is not None and live.cancel_at <= now:
                    self._incarnation += 1
                    continue
                if live.reschedule_at is not None and live.reschedule_at <= now:
                    live.not_before_at = live.reschedule_at + live.plan.reschedule_notice
                    live.reschedule_at = None
                    self._incarnation += 1
                if live.not_before_at <= now:
                    live.started_at, live.not_before_at = live.not_before_at, None
                    self._incarnation += 1
            if live.started_at is not None and live.started_at + live.plan.runs_for <= now:
                self._incarnation += 1
                continue
            remaining.append(live)
        self._live = remaining

    def _public(self, live, now):
        not_before = None
        if live.not_before_at is not None:
            not_before = datetime.fromtimestamp(self._wall() + live.not_before_at - now, timezone.utc)
        plan = live.plan
        return ScheduledEvent(
            event_id=live.event_id, event_type=plan.event_type, resources=plan.resources,
            event_status=EventStatus.SCHEDULED.value if live.started_at is None else EventStatus.STARTED.value,
            not_before=not_before, description=plan.description, event_source=plan.event_source,
            duration_in_seconds=plan.duration_in_seconds)

    # Faults, rate limit, log ----------------------------------------------------------------------------

    def add_fault(self, rule):
        rule = rule if isinstance(rule, FaultRule) else FaultRule.from_json(rule)
        with self._lock:
            self._faults.append([rule, rule.count])

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def requests(self):
        with self._lock:
            return list(self._log)

    def clear_requests(self):
        with self._lock:
            self._log.clear()

    def take_fault(self, path_kind, method):
        """The fault rule that applies to this request, if any; counted rules are used up one by one."""
        with self._lock:
            for entry in self._faults:
                rule, left = entry
                if rule.matches(path_kind, method) and self._rng.random() < rule.probability:
                    if left is not None:
                        entry[1] = left - 1
                        if entry[1] == 0:
                            self._faults.remove(entry)
                    return rule
        return None

    def take_token(self):
        """Token bucket: ``rate_limit`` requests a second, bursts of the same size; 0 turns it off."""
        if not self.rate_limit:
            return True
        with self._lock:
            now = self._clock()
            self._tokens = min(self.rate_limit, self._tokens + (now - self._tokens_at) * self.rate_limit)
            self._tokens_at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def record(self, entry):
        """Add one answered request to the log ``requests()`` reads."""
        with self._lock:
            self._log.append(entry)

    # Managed identity -----------------------------------------------------------------------------------

    def set_identity(self, *, access_token=None, expires_in=TOKEN_LIFETIME_IN_SECONDS, enabled=True):
        """The token the identity route serves: ``access_token`` (``None``: a fresh default JWT on each
        request), valid ``expires_in`` seconds; ``enabled=False`` answers as a VM without an identity."""
        if not isinstance(expires_in, (int, float)) or expires_in <= 0:
            raise ScenarioError('expires_in is a number of seconds above 0')
        if access_token is not None and not isinstance(access_token, str):
            raise ScenarioError('access_token is a string, or null for the default JWT')
        with self._lock:
            self._identity = {'enabled': bool(enabled), 'access_token': access_token, 'expires_in': expires_in}

    def identity_token(self, resource, client_id=None):
        """The token answer for ``resource``, or ``None`` when the VM has no identity."""
        with self._lock:
            identity = dict(self._identity)
        if not identity['enabled']:
            return None
        now = int(self._wall())
        expires_on = now + int(identity['expires_in'])
        token = identity['access_token'] or self._jwt(resource, client_id, now, expires_on)
        lifetime = str(expires_on - now)
        return {'access_token': token, 'client_id': client_id or _emulated_guid('client', self.vm_name),
                'expires_in': lifetime, 'expires_on': str(expires_on), 'ext_expires_in': lifetime,
                'not_before': str(now), 'resource': resource, 'token_type': 'Bearer'}

    def _jwt(self, resource, client_id, now, expires_on):
        """A JWT shaped like Entra ID's, signed with this emulator's own key (nobody else can check it)."""
        app_id = client_id or _emulated_guid('client', self.vm_name)
        claims = {'aud': resource, 'iss': f'https://sts.windows.net/{EMULATOR_TENANT_ID}/', 'iat': now, 'nbf': now,
                  'exp': expires_on, 'appid': app_id, 'appidacr': '2', 'idtyp': 'app',
                  'oid': _emulated_guid('object', self.vm_name), 'sub': _emulated_guid('object', self.vm_name),
                  'tid': EMULATOR_TENANT_ID, 'uti': uuid.uuid4().hex, 'ver': '1.0'}
        signing_input = _b64url(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode()) + '.' + _b64url(
            json.dumps(claims, separators=(',', ':')).encode())
        signature = hmac.new(self._signing_key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + '.' + _b64url(signature)

    def instance_metadata(self):
        scale_set = re.match(r'^(.+)_(\d+)$', self.vm_name)
        resource = (f'virtualMachineScaleSets/{scale_set.group(1)}/virtualMachines/{scale_set.group(2)}'
                    if scale_set else f'virtualMachines/{self.vm_name}')
        subscription = '00000000-0000-0000-0000-000000000000'
        return {
            'compute': {
                'azEnvironment': 'AzurePublicCloud', 'location': 'eastus', 'name': self.vm_name,
                'osType': 'Linux', 'platformFaultDomain': '0', 'platformUpdateDomain': '0',
                'resourceGroupName': 'emulated-rg',
                'resourceId': f'/subscriptions/{subscription}/resourceGroups/emulated-rg/providers/'
                              f'Microsoft.Compute/{resource}',
                'subscriptionId': subscription, 'tags': '', 'vmId': str(uuid.uuid5(uuid.NAMESPACE_DNS, self.vm_name)),
                'vmScaleSetName': scale_set.group(1) if scale_set else '', 'vmSize': 'Standard_D2s_v3', 'zone': '',
            },
            'network': {'interface': []},
        }


def _emulated_guid(kind, vm_name):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f'scheduled-events-emulator:{kind}:{vm_name}'))


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _same_id(a, b):
    return a is not None and b is not None and a.lower() == b.lower()


class _UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'IMDS-emulator'
    _entry = None           # the log entry of the request being answered

    def address_string(self):
        return self.client_address[0] if self.client_address else 'unix'

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        logger.debug('%s %s', self.address_string(), format % args)

    @property
    def emulator(self):
        return self.server.emulator

    def do_GET(self):
        self._dispatch('GET')

    def do_POST(self):
        self._dispatch('POST')

    def do_DELETE(self):
        self._dispatch('DELETE')

    def _dispatch(self, method):
        parts = urlsplit(self.path)
        path = parts.path.rstrip('/') or '/'
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        if path.startswith(CONTROL_PREFIX + '/') or path == CONTROL_PREFIX:
            self._control(method, path[len(CONTROL_PREFIX):], body)
            return
        # Logged just before the answer goes out, so a client that has its answer finds it in the log.
        self._entry = {'time': time.time(), 'method': method, 'path': path, 'query': query,
                       'metadata_header': self.headers.get(METADATA_HEADER),
                       'x_forwarded_for': self.headers.get('X-Forwarded-For'),
                       'body': body.decode('utf-8', 'replace') if body else None, 'fault': None}
        self._imds(method, path, query, body, self._entry)

    def _imds(self, method, path, query, body, entry):  # pylint: disable=too-many-return-statements
        """Serve one IMDS request; returns the status sent (0 for a reset connection)."""
        if path == SCHEDULED_EVENTS_PATH:
            path_kind, methods = 'scheduledevents', ('GET', 'POST')
        elif path == INSTANCE_PATH or path.startswith(INSTANCE_PATH + '/'):
            path_kind, methods = 'instance', ('GET',)
        elif path == IDENTITY_PATH:
            path_kind, methods = 'identity', ('GET',)
        else:
            return self._send(404, {'error': 'Not found'})
        if method not in methods:
            return self._send(405, {'error': 'Method not allowed'})
        if not self.emulator.take_token():
            return self._send(429, {'error': 'Too many requests'})
        fault = self.emulator.take_fault(path_kind, method)
        if fault is not None:
            entry['fault'] = fault.kind
            if fault.kind == FaultKind.RESET:
                self._reset()
                return 0
            if fault.kind == FaultKind.GARBAGE:
                return self._send_raw(200, b'<html>upstream error</html>', 'text/html')
            if fault.kind == FaultKind.EMPTY and method == 'GET' and path_kind == 'scheduledevents':
                # What the first call may return while the service is being enabled.
                return self._send(200, {'DocumentIncarnation': 1, 'Events': []})
            if fault.kind == FaultKind.STATUS:
                extra = {} if fault.retry_after is None else {'Retry-After': str(fault.retry_after)}
                return self._send(fault.status, {'error': f'Injected fault {fault.status}'}, extra)
            time.sleep(fault.seconds)
        if self.headers.get('X-Forwarded-For') is not None:
            return self._send(400, {'error': 'Bad request. X-Forwarded-For header is not allowed'})
        if self.headers.get(METADATA_HEADER) != 'true':
            if path_kind == 'identity':
                return self._send(400, {'error': 'invalid_request',
                                        'error_description': 'Required metadata header not specified'})
            return self._send(400, {'error': 'Bad request. Required metadata header not specified'})
        versions = {'scheduledevents': API_VERSIONS, 'instance': INSTANCE_API_VERSIONS,
                    'identity': IDENTITY_API_VERSIONS}[path_kind]
        api_version = query.get('api-version')
        if api_version not in versions:
            return self._send(400, {'error': _BAD_API_VERSION, 'newest-versions': list(reversed(versions))[:3]})
        if path_kind == 'instance':
            return self._instance(path, query)
        if path_kind == 'identity':
            return self._identity(query)
        if method == 'POST':
            ids = _start_requests(body)
            if ids is None:
                return self._send(400, {'error': 'Bad request. The request body is not a valid StartRequests object'})
            self.emulator.approve(ids)
            return self._send_raw(200, b'', 'application/json')
        return self._send(200, self.emulator.document(api_version))

    def _identity(self, query):
        if not query.get('resource'):
            return self._send(400, {'error': 'invalid_request',
                                    'error_description': 'Required audience parameter not specified'})
        answer = self.emulator.identity_token(query['resource'], query.get('client_id'))
        if answer is None:
            return self._send(400, {'error': 'invalid_request', 'error_description': 'Identity not found'})
        return self._send(200, answer)

    def _instance(self, path, query):
        node = self.emulator.instance_metadata()
        for segment in path[len(INSTANCE_PATH):].strip('/').split('/') if path != INSTANCE_PATH else []:
            if not isinstance(node, dict) or segment not in node:
                return self._send(404, {'error': 'Not found'})
            node = node[segment]
        if isinstance(node, dict):
            return self._send(200, node)
        if query.get('format') != 'text':
            return self._send(400, {'error': 'Bad request. Query parameter format=text is required for leaf nodes'})
        return self._send_raw(200, str(node).encode(), 'text/plain; charset=utf-8')

    def _control(self, method, path, body):  # pylint: disable=too-many-return-statements
        emulator = self.emulator
        try:
            payload = json.loads(body) if body else None
            if (method, path) == ('GET', '/state'):
                return self._send(200, emulator.state())
            if (method, path) == ('POST', '/events'):
                specs = payload.get('events') if isinstance(payload, dict) and 'events' in payload else [payload]
                return self._send(201, {'EventIds': emulator.add_events(specs)})
            if (method, path) == ('POST', '/start'):
                # The platform starting events (as when another VM they name approved them).
                emulator.approve([validate_event_id(i) for i in payload['EventIds']])
                return self._send(200, emulator.state())
            if method == 'DELETE' and path == '/events':
                return self._send(200, {'withdrawn': emulator.withdraw()})
            if method == 'DELETE' and path.startswith('/events/'):
                return self._send(200, {'withdrawn': emulator.withdraw(validate_event_id(path[len('/events/'):]))})
            if (method, path) == ('POST', '/faults'):
                for rule in payload if isinstance(payload, list) else [payload]:
                    emulator.add_fault(rule)
                return self._send(201, {'faults': emulator.state()['faults']})
            if (method, path) == ('DELETE', '/faults'):
                emulator.clear_faults()
                return self._send(200, {'faults': []})
            if (method, path) == ('POST', '/identity'):
                unknown = set(payload) - {'access_token', 'expires_in', 'enabled'}
                if unknown:
                    raise ScenarioError(f'unknown identity fields: {", ".join(sorted(unknown))}')
                emulator.set_identity(**payload)
                return self._send(200, {'enabled': payload.get('enabled', True)})
            if (method, path) == ('GET', '/requests'):
                return self._send(200, {'requests': emulator.requests()})
            if (method, path) == ('DELETE', '/requests'):
                emulator.clear_requests()
                return self._send(200, {'requests': []})
            return self._send(404, {'error': f'no control route {method} {CONTROL_PREFIX}{path}'})
        except (ValueError, TypeError, AttributeError, KeyError) as ex:
            return self._send(400, {'error': str(ex)})
        except Exception as ex:  # pylint: disable=broad-except
            # The control API is the emulator's own: say what broke instead of dropping the connection.
            return self._send(400, {'error': f'{type(ex).__name__}: {ex}'})

    def _send(self, status, obj, headers=None):
        return self._send_raw(status, json.dumps(obj).encode(), 'application/json; charset=utf-8', headers)

    def _send_raw(self, status, data, content_type, headers=None):
        self._log_answer(status)
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        return status

    def _log_answer(self, status):
        entry, self._entry = self._entry, None
        if entry is not None:
            entry['status'] = status
            self.emulator.record(entry)

    def _reset(self):
        """Drop the connection with a TCP RST, as a crashed or overloaded service would."""
        self._log_answer(0)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        self.close_connection = True
        self.connection.close()


class _TcpHandler(_Handler):
    # An answer is two writes, head and body: with Nagle the body waits for the client's delayed ACK,
    # 40 ms on every kept-alive request after the first, which IMDS does not take.
    disable_nagle_algorithm = True


def _start_requests(body):
    """The EventIds of a ``{"StartRequests": [{"EventId": ...}]}`` body, or ``None`` when malformed."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    requests = obj.get('StartRequests') if isinstance(obj, dict) else None
    if not isinstance(requests, list) or not requests:
        return None
    ids = [r.get('EventId') if isinstance(r, dict) else None for r in requests]
    return ids if all(isinstance(i, str) for i in ids) else None


def serve_until_stopped(emulator, *, describe='', stream=None):
    """Serve until SIGINT or SIGTERM, after one banner line that says where and how to point az at it."""
    stream = stream or sys.stderr
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    emulator.start()
    stream.write(f'IMDS emulator for VM {emulator.vm_name} listening on {emulator.url}{describe}\n'
                 f'Point az at it: export AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT={emulator.url}\n')
    stream.flush()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        emulator.stop()
