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
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

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
    power_state: str = 'running'
    provisioning_state: str = 'Succeeded'
    hang_run_command: bool = False          # the script never finishes (the operation stays InProgress)
    fail_run_command: str | None = None     # the operation fails with this message
    busy: threading.Lock = field(default_factory=threading.Lock)

    def resource_id(self, subscription, scale_set=None):
        base = f'/subscriptions/{subscription}/resourceGroups/{self.resource_group}/providers/Microsoft.Compute'
        if scale_set:
            return f'{base}/virtualMachineScaleSets/{scale_set}/virtualMachines/{self.instance_id}'
        return f'{base}/virtualMachines/{self.name}'


@dataclass
class FakeScaleSet:
    name: str
    resource_group: str
    instances: dict = field(default_factory=dict)     # instance id -> FakeInstance


class FakeArm:
    """The fake ARM and its resources. ``run_command_latency`` delays each Run Command result (seconds)."""

    def __init__(self, folder, *, subscription=SUBSCRIPTION, run_command_latency=0.0, retry_after=None,
                 host='127.0.0.1', port=0):
        self.folder = folder
        self.subscription = subscription
        self.run_command_latency = run_command_latency
        self.retry_after = retry_after
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

    def add_scale_set(self, resource_group, name, *, count, os_types=None):
        """A Uniform scale set of ``count`` instances named ``<name>_<id>``; Linux ones get a simulated VM."""
        scale_set = FakeScaleSet(name, resource_group)
        for index in range(count):
            os_type = (os_types or {}).get(index, 'Linux')
            instance = FakeInstance(f'{name}_{index}', resource_group, str(index), os_type)
            scale_set.instances[str(index)] = instance
        self._boot([i for i in scale_set.instances.values()])
        self.scale_sets[(resource_group.lower(), name.lower())] = scale_set
        return scale_set

    def add_vm(self, resource_group, name, *, os_type='Linux'):
        instance = FakeInstance(name, resource_group, None, os_type)
        self._boot([instance])
        self.vms[(resource_group.lower(), name.lower())] = instance
        return instance

    def all_instances(self):
        for scale_set in self.scale_sets.values():
            yield from scale_set.instances.values()
        yield from self.vms.values()

    def _boot(self, instances):
        linux = [i for i in instances if i.os_type == 'Linux']
        for instance in linux:
            instance.vm = SimulatedVm(instance.name, self.folder / 'vms', os_type='Linux').start()
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
        return {
            'computerName': instance.name.replace('_', ''),
            'osName': 'ubuntu' if instance.os_type == 'Linux' else 'Windows Server 2022 Datacenter',
            'statuses': [
                {'code': f'ProvisioningState/{instance.provisioning_state.lower()}', 'level': 'Info',
                 'displayStatus': f'Provisioning {instance.provisioning_state.lower()}'},
                {'code': f'PowerState/{instance.power_state}', 'level': 'Info',
                 'displayStatus': f'VM {instance.power_state}'},
            ],
        }

    def instance_body(self, instance, scale_set=None, expand=False):
        properties = {
            'latestModelApplied': True,
            'vmId': str(uuid.uuid5(uuid.NAMESPACE_DNS, instance.name)),
            'provisioningState': instance.provisioning_state,
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

    def start_run_command(self, instance, request):
        if instance.power_state != 'running':
            raise ArmError(409, 'OperationNotAllowed', f"Operation 'RunCommand' is not allowed on VM "
                                                       f"'{instance.name}' since the VM is {instance.power_state}.")
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
            code, stdout, stderr = instance.vm.run_script(script, SCRIPT_TIMEOUT_IN_SECONDS)
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
        arm = self.server.arm
        scale_set = arm.scale_set(groups)
        return self._send(200, {
            'name': scale_set.name, 'location': LOCATION, 'type': 'Microsoft.Compute/virtualMachineScaleSets',
            'id': f'/subscriptions/{arm.subscription}/resourceGroups/{scale_set.resource_group}/providers/'
                  f'Microsoft.Compute/virtualMachineScaleSets/{scale_set.name}',
            'sku': {'name': 'Standard_D2s_v3', 'tier': 'Standard', 'capacity': len(scale_set.instances)},
            'properties': {'orchestrationMode': 'Uniform', 'provisioningState': 'Succeeded',
                           'upgradePolicy': {'mode': 'Manual'}}})

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
        op_url = (f'{arm.url}/subscriptions/{arm.subscription}/providers/Microsoft.Compute/locations/{LOCATION}/'
                  f'operations/{op_id}?api-version={query.get("api-version", "")}')
        headers = {'Azure-AsyncOperation': op_url, 'Location': op_url + '&monitor=true'}
        if arm.retry_after is not None:
            headers['Retry-After'] = str(arm.retry_after)
        return self._send(202, None, headers)

    def _operation(self, groups, query, body):
        arm = self.server.arm
        operation = arm.operations.get(groups['op'])
        if operation is None:
            raise ArmError(404, 'NotFound', 'no such operation')
        retry = {} if arm.retry_after is None else {'Retry-After': str(arm.retry_after)}
        if query.get('monitor') == 'true':
            if operation['status'] == 'InProgress':
                return self._send(202, None, retry)
            if operation['status'] == 'Failed':
                return self._send(200, {'error': operation['error']})
            return self._send(200, operation['result'])
        status = {k: operation[k] for k in ('status', 'startTime', 'name') if k in operation}
        if operation['status'] == 'Succeeded':
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
