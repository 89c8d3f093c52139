# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The fake Azure Resource Manager: the routes az and azure-mgmt-compute use for login, scale sets, VMs
and Run Command, over HTTPS with a throwaway CA.

Run Command behaves as Compute does: 202 with Azure-AsyncOperation and Location and, by default, no
Retry-After (as the recordings show); InProgress until the script has really run in the VM's namespace;
the RunCommandResult from the Location URL with stdout and stderr cut to their last 4096 bytes; 409 while
another Run Command runs on the same VM or when the VM is deallocated.

    arm = FakeArm(tmp_path).start()
    arm.add_scale_set('rg', 'web', count=3)
    ComputeManagementClient(credential, arm.subscription, base_url=arm.url, connection_verify=str(arm.certs.ca))
"""

import base64
import json
import re
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .lifecycle import Ledger, Lifecycle, Timings
from .tls import make_certificates
from .vm import SimulatedVm

SUBSCRIPTION = '00000000-0000-0000-0000-000000000001'
TENANT = '00000000-0000-0000-0000-0000000000aa'
LOCATION = 'westus'
OUTPUT_LIMIT_IN_BYTES = 4096
SCRIPT_TIMEOUT_IN_SECONDS = 90 * 60
IDENTITY_HEADER = 'fake-identity-header'

_COMPUTE = r'/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.compute'
_ROUTES = [
    ('GET', r'/metadata/endpoints', 'endpoints'),
    ('GET', r'/msi/token', 'token'),
    ('GET', r'/subscriptions', 'subscriptions'),
    ('GET', r'/tenants', 'tenants'),
    ('GET', r'/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.compute/locations/[^/]+/operations/(?P<op>[^/]+)',
     'operation'),
    ('GET', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)', 'scale_set'),
    ('GET', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)/virtualmachines', 'list_instances'),
    ('GET', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)/virtualmachines/(?P<id>[^/]+)', 'instance'),
    ('GET', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)/virtualmachines/(?P<id>[^/]+)/instanceview',
     'instance_view'),
    ('POST', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)/virtualmachines/(?P<id>[^/]+)/runcommand',
     'run_command'),
    ('POST', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)/virtualmachines/(?P<id>[^/]+)/'
                        r'(?P<action>reimage|restart|redeploy)', 'instance_action'),
    ('DELETE', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)/virtualmachines/(?P<id>[^/]+)', 'delete_instance'),
    ('POST', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)/(?P<action>reimage|reimageall|restart|redeploy)',
     'scale_set_action'),
    ('PATCH', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)', 'update_scale_set'),
    ('GET', _COMPUTE + r'/virtualmachines/(?P<vm>[^/]+)', 'instance'),
    ('GET', _COMPUTE + r'/virtualmachines/(?P<vm>[^/]+)/instanceview', 'instance_view'),
    ('POST', _COMPUTE + r'/virtualmachines/(?P<vm>[^/]+)/runcommand', 'run_command'),
]
_ROUTES = [(method, re.compile(pattern + '$', re.I), name) for method, pattern, name in _ROUTES]


class ArmError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


@dataclass
class FakeInstance:
    """A scale-set instance (``instance_id`` set) or a standalone VM."""

    name: str
    resource_group: str
    instance_id: str | None
    os_type: str = 'Linux'
    vm: SimulatedVm | None = None
    life: Lifecycle = field(default_factory=Lifecycle)
    hang_run_command: bool = False          # the script never finishes (the operation stays InProgress)
    fail_run_command: str | None = None     # the operation fails with this message
    busy: threading.Lock = field(default_factory=threading.Lock)
    python: str | None = sys.executable     # the VM's python3 (None: it has none)

    def resource_id(self, subscription, scale_set=None):
        base = f'/subscriptions/{subscription}/resourceGroups/{self.resource_group}/providers/Microsoft.Compute'
        if scale_set:
            return f'{base}/virtualMachineScaleSets/{scale_set}/virtualMachines/{self.instance_id}'
        return f'{base}/virtualMachines/{self.name}'


@dataclass
class FakeScaleSet:
    name: str
    resource_group: str
    health_extension: bool = False
    instances: dict = field(default_factory=dict)     # instance id -> FakeInstance
    next_id: int = 0

    def new_instance(self, os_type='Linux', *, creating_until=None, health_delay=0.0):
        instance_id = str(self.next_id)
        self.next_id += 1
        instance = FakeInstance(f'{self.name}_{instance_id}', self.resource_group, instance_id, os_type,
                                life=Lifecycle(health_state='healthy' if self.health_extension else None))
        if creating_until is not None:
            life = instance.life
            life.provisioning_state, life.power_state = 'Creating', 'starting'
            if self.health_extension:
                life.health_state = 'unknown'
            life.pending = [(creating_until, {'provisioning_state': 'Succeeded', 'power_state': 'running',
                                              **({'health_state': 'initializing'} if self.health_extension else {})})]
            if self.health_extension:
                life.pending.append((creating_until + health_delay, {'health_state': 'healthy'}))
        self.instances[instance_id] = instance
        return instance


class FakeArm:
    """The fake ARM and its resources. ``run_command_latency`` delays each Run Command result (seconds)."""

    def __init__(self, folder, *, subscription=SUBSCRIPTION, run_command_latency=0.0, retry_after=None,
                 timings=Timings(), host='127.0.0.1', port=0):
        self.folder = folder
        self.subscription = subscription
        self.run_command_latency = run_command_latency
        self.retry_after = retry_after
        self.timings = timings
        self.ledger = Ledger()
        self.certs = make_certificates(folder / 'tls')
        self.scale_sets = {}      # (rg, name) lower -> FakeScaleSet
        self.vms = {}             # (rg, name) lower -> FakeInstance
        self.operations = {}
        self.faults = []          # [method, path regex, status, count, retry_after]
        self.log = deque(maxlen=100000)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.arm = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certs.cert, self.certs.key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = None

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f'https://{host}:{port}'

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        for instance in self.all_instances():
            if instance.vm:
                instance.vm.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # Resources --------------------------------------------------------------------------------------------

    def add_scale_set(self, resource_group, name, *, count, os_types=None, health_extension=False,
                      simulate_vms=True, pythons=None):
        """A Uniform scale set of ``count`` instances named ``<name>_<id>``. With ``simulate_vms`` each Linux
        instance gets a simulated VM (its own namespace and IMDS) for Run Command; the reimage tests need none.
        ``pythons`` gives an instance (by index) another python3 than this one, or None for none at all.
        """
        scale_set = FakeScaleSet(name, resource_group, health_extension=health_extension)
        for index in range(count):
            instance = scale_set.new_instance((os_types or {}).get(index, 'Linux'))
            instance.python = (pythons or {}).get(index, instance.python)
        if simulate_vms:
            self._boot(list(scale_set.instances.values()))
        with self._lock:
            self.scale_sets[(resource_group.lower(), name.lower())] = scale_set
            self._record()
        return scale_set

    def add_vm(self, resource_group, name, *, os_type='Linux'):
        instance = FakeInstance(name, resource_group, None, os_type)
        self._boot([instance])
        self.vms[(resource_group.lower(), name.lower())] = instance
        return instance

    def advance(self):
        """Apply every instance's changes due by now; drop deleted instances; keep the ledger."""
        now = time.monotonic()
        with self._lock:
            changed = False
            for scale_set in self.scale_sets.values():
                for instance_id, instance in list(scale_set.instances.items()):
                    changed |= instance.life.due(now)
                    if instance.life.provisioning_state == 'Deleted':
                        del scale_set.instances[instance_id]
            if changed:
                self._record()

    def _record(self):
        self.ledger.record({i.name: i.life for s in self.scale_sets.values() for i in s.instances.values()})

    def operate(self, scale_set, instances, action):
        """Start ``action`` (reimage, restart, redeploy, delete) on ``instances``; returns the operation id."""
        timings = self.timings
        now = time.monotonic()
        with self._lock:
            ends = []
            for instance in instances:
                if action == 'delete':
                    instance.life.provisioning_state = 'Deleting'
                    instance.life.pending = [(now + timings.delete, {'provisioning_state': 'Deleted'})]
                    ends.append((now + timings.delete, True))
                else:
                    if action == 'reimage' and instance.vm is not None:
                        instance.vm.reimage()
                    ends.append(instance.life.operate(now, getattr(timings, action), timings.health_delay,
                                                      power_during='running' if action == 'restart' else 'stopped'))
            self._record()
            return self._operation(max(end for end, _ in ends), all(ok for _, ok in ends))

    def scale(self, scale_set, capacity):
        """Set the instance count: new instances are created, the highest ids are deleted."""
        now = time.monotonic()
        with self._lock:
            alive = [i for i in scale_set.instances.values() if i.life.provisioning_state != 'Deleting']
            for _ in range(capacity - len(alive)):
                scale_set.new_instance(creating_until=now + self.timings.create, health_delay=self.timings.health_delay)
            for instance in sorted(alive, key=lambda i: int(i.instance_id))[capacity:] if capacity < len(alive) else []:
                instance.life.provisioning_state = 'Deleting'
                instance.life.pending = [(now + self.timings.delete, {'provisioning_state': 'Deleted'})]
            self._record()
            return self._operation(now + max(self.timings.create, self.timings.delete), True)

    def _operation(self, done_at, ok):
        op_id = str(uuid.uuid4())
        self.operations[op_id] = {'status': 'InProgress', 'startTime': _now(), 'name': op_id, 'done_at': done_at,
                                  'ok': ok}
        return op_id

    def all_instances(self):
        for scale_set in self.scale_sets.values():
            yield from scale_set.instances.values()
        yield from self.vms.values()

    def _boot(self, instances):
        linux = [i for i in instances if i.os_type == 'Linux']
        for instance in linux:
            instance.vm = SimulatedVm(instance.name, self.folder / 'vms', os_type='Linux',
                                      python=instance.python).start()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda i: i.vm.wait_ready(), linux))

    def add_fault(self, *, method='any', path='.*', status=500, count=1, retry_after=None):
        """Answer ``status`` to the next ``count`` requests matching ``method`` and the ``path`` regex."""
        with self._lock:
            self.faults.append([method, re.compile(path, re.I), status, count, retry_after])

    def requests(self, method=None, path=None):
        pattern = re.compile(path, re.I) if path else None
        return [r for r in list(self.log) if (method is None or r['method'] == method)
                and (pattern is None or pattern.search(r['path']))]

    def _take_fault(self, method, path):
        with self._lock:
            for fault in self.faults:
                if fault[0] in ('any', method) and fault[1].search(path) and fault[3] != 0:
                    fault[3] -= 1
                    return fault
        return None

    # Lookups ------------------------------------------------------------------------------------------------

    def scale_set(self, groups):
        return self._resource(groups, self.scale_sets, 'virtualMachineScaleSets', groups['vmss'])

    def instance(self, groups):
        if 'vmss' not in groups:
            return self._resource(groups, self.vms, 'virtualMachines', groups['vm'])
        found = self.scale_set(groups).instances.get(groups['id'])
        if found is None:
            raise ArmError(404, 'NotFound', 'The entity was not found in this Azure location.')
        return found

    def _resource(self, groups, table, kind, name):
        if groups['sub'].lower() != self.subscription:
            raise ArmError(404, 'SubscriptionNotFound', f"The subscription '{groups['sub']}' could not be found.")
        found = table.get((groups['rg'].lower(), name.lower()))
        if found is None:
            raise ArmError(404, 'ResourceNotFound', f"The Resource 'Microsoft.Compute/{kind}/{name}' under "
                                                    f"resource group '{groups['rg']}' was not found.")
        return found

    # Bodies -------------------------------------------------------------------------------------------------

    def instance_view(self, instance):
        life = instance.life
        view = {
            'computerName': instance.name.replace('_', ''),
            'osName': 'ubuntu' if instance.os_type == 'Linux' else 'Windows Server 2022 Datacenter',
            'statuses': [
                {'code': f'ProvisioningState/{life.provisioning_state.lower()}', 'level': 'Info',
                 'displayStatus': f'Provisioning {life.provisioning_state.lower()}'},
                {'code': f'PowerState/{life.power_state}', 'level': 'Info', 'displayStatus': f'VM {life.power_state}'},
            ],
        }
        if life.health_state is not None:
            view['vmHealth'] = {'status': {'code': f'HealthState/{life.health_state}',
                                           'level': 'Info' if life.health_state == 'healthy' else 'Warning',
                                           'displayStatus': f'The VM is {life.health_state}'}}
        return view

    def instance_body(self, instance, scale_set=None, expand=False):
        properties = {
            'latestModelApplied': True,
            'vmId': str(uuid.uuid5(uuid.NAMESPACE_DNS, instance.name)),
            'provisioningState': instance.life.provisioning_state,
            'osProfile': {'computerName': instance.name.replace('_', '')},
            'storageProfile': {'osDisk': {'osType': instance.os_type, 'createOption': 'FromImage'}},
        }
        if expand:
            properties['instanceView'] = self.instance_view(instance)
        body = {'name': instance.name, 'id': instance.resource_id(self.subscription, scale_set), 'location': LOCATION,
                'properties': properties}
        if scale_set:
            body.update(type='Microsoft.Compute/virtualMachineScaleSets/virtualMachines',
                        instanceId=instance.instance_id, sku={'name': 'Standard_D2s_v3', 'tier': 'Standard'})
        else:
            body['type'] = 'Microsoft.Compute/virtualMachines'
        return body

    # Run Command ------------------------------------------------------------------------------------------

    def _propagate_starts(self, instance):
        """Approving an event starts it for every VM in its Resources: the platform tells their IMDS too."""
        by_name = {i.name: i for i in self.all_instances()}
        for event in instance.vm.document()['events']:
            if event['EventStatus'] != 'Started':
                continue
            for name in event['Resources']:
                other = by_name.get(name)
                if other is not None and other is not instance and other.vm is not None:
                    other.vm.start_events([event['EventId']])

    def start_run_command(self, instance, request):
        state = instance.life.power_state
        if state != 'running':
            raise ArmError(409, 'OperationNotAllowed', f"Operation 'RunCommand' is not allowed on VM "
                                                       f"'{instance.name}' since the VM is {state}.")
        if not instance.busy.acquire(blocking=False):
            raise ArmError(409, 'Conflict', 'Run command extension execution is in progress. Please wait for '
                                            'completion before invoking a run command.')
        op_id = str(uuid.uuid4())
        operation = {'status': 'InProgress', 'startTime': _now(), 'name': op_id, 'request': request}
        with self._lock:
            self.operations[op_id] = operation
        threading.Thread(target=self._run_command, args=(instance, operation), daemon=True).start()
        return op_id

    def _run_command(self, instance, operation):
        try:
            started = time.monotonic()
            script = '\n'.join(operation['request'].get('script') or [])
            if instance.hang_run_command:
                return
            if instance.fail_run_command:
                operation.update(status='Failed', error={'code': 'VMExtensionProvisioningError',
                                                         'message': instance.fail_run_command})
                return
            if instance.vm is None:
                operation.update(status='Failed', error={
                    'code': 'VMAgentStatusCommunicationError',
                    'message': f'{operation["request"].get("commandId")} cannot run in this fake: '
                               f'no {instance.os_type} VM behind {instance.name}.'})
                return
            parameters = {p['name']: p['value'] for p in operation['request'].get('parameters') or []}
            code, stdout, stderr = instance.vm.run_script(script, SCRIPT_TIMEOUT_IN_SECONDS, parameters)
            self._propagate_starts(instance)
            time.sleep(max(0.0, self.run_command_latency - (time.monotonic() - started)))
            operation.update(status='Succeeded', endTime=_now(), result=_run_command_result(code, stdout, stderr))
        finally:
            if not instance.hang_run_command:
                instance.busy.release()


def _run_command_result(code, stdout, stderr):
    """The RunCommandResult body, each stream cut to its last 4096 bytes as Run Command does."""
    out = stdout[-OUTPUT_LIMIT_IN_BYTES:].decode('utf-8', 'replace')
    err = stderr[-OUTPUT_LIMIT_IN_BYTES:].decode('utf-8', 'replace')
    if code == 0:
        status, head = 'ProvisioningState/succeeded', 'Enable succeeded: '
    else:
        status = f'ProvisioningState/failed/{code if code is not None else "timeout"}'
        head = f'Enable failed: failed to execute command: command terminated with exit status={code}'
    return {'value': [{'code': status, 'level': 'Info' if code == 0 else 'Error',
                       'displayStatus': 'Provisioning succeeded' if code == 0 else 'Provisioning failed',
                       'message': f'{head}\n[stdout]\n{out}\n[stderr]\n{err}'}]}


def _now():
    return time.strftime('%Y-%m-%dT%H:%M:%S+00:00', time.gmtime())


def _token():
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b'=').decode()
    return f'{part({"alg": "none", "typ": "JWT"})}.{part({"tid": TENANT, "oid": str(uuid.uuid4())})}.{part("x")}'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._dispatch('GET')

    def do_POST(self):
        self._dispatch('POST')

    def do_PATCH(self):
        self._dispatch('PATCH')

    def do_DELETE(self):
        self._dispatch('DELETE')

    def _dispatch(self, method):
        arm = self.server.arm
        parts = urlsplit(self.path)
        query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get('Content-Length') or 0)
        body = json.loads(self.rfile.read(length) or b'null') if length else None
        arm.log.append({'time': time.time(), 'method': method, 'path': parts.path, 'query': query, 'body': body})
        arm.advance()
        fault = arm._take_fault(method, parts.path)
        if fault is not None:
            headers = {} if fault[4] is None else {'Retry-After': str(fault[4])}
            return self._send(fault[2], {'error': {'code': 'InjectedFault', 'message': f'injected {fault[2]}'}},
                              headers)
        for route_method, pattern, name in _ROUTES:
            match = pattern.match(parts.path.rstrip('/'))
            if match and route_method == method:
                try:
                    return getattr(self, '_' + name)(match.groupdict(), query, body)
                except ArmError as ex:
                    return self._send(ex.status, {'error': {'code': ex.code, 'message': str(ex)}}, ex.headers)
        return self._send(404, {'error': {'code': 'NotFound', 'message': f'no fake route for {method} {parts.path}'}})

    def _endpoints(self, groups, query, body):
        base = self.server.arm.url + '/'
        return self._send(200, {'name': 'FakeAzure', 'resourceManager': base,
                                'authentication': {'loginEndpoint': base, 'audiences': [base]}, 'suffixes': {}})

    def _token(self, groups, query, body):
        if self.headers.get('X-IDENTITY-HEADER') != IDENTITY_HEADER:
            raise ArmError(401, 'Unauthorized', 'missing or wrong X-IDENTITY-HEADER')
        return self._send(200, {'access_token': _token(), 'expires_on': str(int(time.time()) + 3600),
                                'resource': query.get('resource'), 'token_type': 'Bearer'})

    def _subscriptions(self, groups, query, body):
        sub = self.server.arm.subscription
        return self._send(200, {'value': [{'id': f'/subscriptions/{sub}', 'subscriptionId': sub, 'tenantId': TENANT,
                                           'displayName': 'Fake subscription', 'state': 'Enabled'}]})

    def _tenants(self, groups, query, body):
        return self._send(200, {'value': [{'id': f'/tenants/{TENANT}', 'tenantId': TENANT}]})

    def _scale_set(self, groups, query, body):
        return self._send(200, self._scale_set_body(self.server.arm.scale_set(groups)))

    def _scale_set_body(self, scale_set):
        arm = self.server.arm
        extensions = [{'name': 'ApplicationHealthLinux', 'properties': {
            'publisher': 'Microsoft.ManagedServices', 'type': 'ApplicationHealthLinux', 'typeHandlerVersion': '1.0',
            'autoUpgradeMinorVersion': True, 'settings': {'port': 80, 'protocol': 'http', 'requestPath': '/'}}}]
        capacity = sum(1 for i in scale_set.instances.values() if i.life.provisioning_state != 'Deleting')
        return ({
            'name': scale_set.name, 'location': LOCATION, 'type': 'Microsoft.Compute/virtualMachineScaleSets',
            'id': f'/subscriptions/{arm.subscription}/resourceGroups/{scale_set.resource_group}/providers/'
                  f'Microsoft.Compute/virtualMachineScaleSets/{scale_set.name}',
            'sku': {'name': 'Standard_D2s_v3', 'tier': 'Standard', 'capacity': capacity},
            'properties': {'orchestrationMode': 'Uniform', 'provisioningState': 'Succeeded',
                           'upgradePolicy': {'mode': 'Manual'},
                           'virtualMachineProfile': {'extensionProfile': {
                               'extensions': extensions if scale_set.health_extension else []}}}})

    def _update_scale_set(self, groups, query, body):
        arm = self.server.arm
        scale_set = arm.scale_set(groups)
        capacity = ((body or {}).get('sku') or {}).get('capacity')
        if not isinstance(capacity, int) or capacity < 0:
            raise ArmError(400, 'InvalidParameter', 'this fake only updates sku.capacity')
        op_id = arm.scale(scale_set, capacity)
        return self._send(200, self._scale_set_body(scale_set), self._operation_headers(op_id, query, location=False))

    def _instance_action(self, groups, query, body):
        arm = self.server.arm
        op_id = arm.operate(arm.scale_set(groups), [arm.instance(groups)], groups['action'].lower())
        return self._send(202, None, self._operation_headers(op_id, query))

    def _delete_instance(self, groups, query, body):
        arm = self.server.arm
        op_id = arm.operate(arm.scale_set(groups), [arm.instance(groups)], 'delete')
        return self._send(202, None, self._operation_headers(op_id, query))

    def _scale_set_action(self, groups, query, body):
        """The whole-scale-set routes (``reimageall`` with or without instanceIds): every named instance,
        or all of them. Recorded like any request, so tests can prove a cycle never calls them."""
        arm = self.server.arm
        scale_set = arm.scale_set(groups)
        ids = (body or {}).get('instanceIds')
        instances = [scale_set.instances[i] for i in ids if i in scale_set.instances] if ids else \
            list(scale_set.instances.values())
        action = 'reimage' if groups['action'].lower().startswith('reimage') else groups['action'].lower()
        op_id = arm.operate(scale_set, instances, action)
        return self._send(202, None, self._operation_headers(op_id, query))

    def _operation_headers(self, op_id, query, location=True):
        arm = self.server.arm
        op_url = (f'{arm.url}/subscriptions/{arm.subscription}/providers/Microsoft.Compute/locations/{LOCATION}/'
                  f'operations/{op_id}?api-version={query.get("api-version", "")}')
        headers = {'Azure-AsyncOperation': op_url}
        if location:
            headers['Location'] = op_url + '&monitor=true'
        if arm.retry_after is not None:
            headers['Retry-After'] = str(arm.retry_after)
        return headers

    def _list_instances(self, groups, query, body):
        arm = self.server.arm
        scale_set = arm.scale_set(groups)
        expand = query.get('$expand', '').lower() == 'instanceview'
        return self._send(200, {'value': [arm.instance_body(i, scale_set.name, expand)
                                          for i in scale_set.instances.values()]})

    def _instance(self, groups, query, body):
        arm = self.server.arm
        instance = arm.instance(groups)
        expand = query.get('$expand', '').lower() == 'instanceview'
        return self._send(200, arm.instance_body(instance, groups.get('vmss') and arm.scale_set(groups).name, expand))

    def _instance_view(self, groups, query, body):
        arm = self.server.arm
        return self._send(200, arm.instance_view(arm.instance(groups)))

    def _run_command(self, groups, query, body):
        arm = self.server.arm
        op_id = arm.start_run_command(arm.instance(groups), body or {})
        return self._send(202, None, self._operation_headers(op_id, query))

    def _operation(self, groups, query, body):
        arm = self.server.arm
        operation = arm.operations.get(groups['op'])
        if operation is None:
            raise ArmError(404, 'NotFound', 'no such operation')
        if operation['status'] == 'InProgress' and time.monotonic() >= operation.get('done_at', float('inf')):
            operation.update(status='Succeeded' if operation['ok'] else 'Failed', endTime=_now())
            if not operation['ok']:
                operation['error'] = {'code': 'VMOperationFailed', 'message': 'The operation failed on the instance.'}
        retry = {} if arm.retry_after is None else {'Retry-After': str(arm.retry_after)}
        if query.get('monitor') == 'true':
            if operation['status'] == 'InProgress':
                return self._send(202, None, retry)
            if operation['status'] == 'Failed':
                return self._send(200, {'error': operation['error']})
            return self._send(200, operation.get('result'))
        status = {k: operation[k] for k in ('status', 'startTime', 'name') if k in operation}
        if operation['status'] == 'Succeeded' and operation.get('result') is not None:
            status['properties'] = {'output': operation['result']}
        if operation['status'] == 'Failed':
            status['error'] = operation['error']
        return self._send(200, status, retry if operation['status'] == 'InProgress' else {})

    def _send(self, status, obj, headers=None):
        data = b'' if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Content-Length', str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def login_environment(arm):
    """The variables that make az (and MSAL) log in with managed identity against ``arm``."""
    return {
        'REQUESTS_CA_BUNDLE': str(arm.certs.ca),
        'IDENTITY_ENDPOINT': f'{arm.url}/msi/token',
        'IDENTITY_HEADER': IDENTITY_HEADER,
        # Second net: MSAL's fallback to the real IMDS address is redirected to loopback.
        'AZURE_POD_IDENTITY_AUTHORITY_HOST': arm.url,
    }


def az_login(az, arm, config_dir=None):
    """Register the fake as a cloud and log az in with managed identity; returns the environment to use."""
    env = dict(login_environment(arm), **({'AZURE_CONFIG_DIR': config_dir} if config_dir else {}))
    for args in (('cloud', 'register', '-n', 'FakeAzure', '--endpoint-resource-manager', arm.url + '/'),
                 ('cloud', 'set', '-n', 'FakeAzure'), ('login', '--identity')):
        result = az.run(*args, **env)
        if result.returncode != 0:
            raise RuntimeError(f'az {" ".join(args)} failed: {result}')
    return env
