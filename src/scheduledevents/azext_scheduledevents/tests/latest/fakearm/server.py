# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The fake Azure Resource Manager: the routes az and azure-mgmt-compute use for login, scale sets, VMs,
availability sets and Run Command, and the control plane of Scheduled Events (Resource Graph, the
Maintenance acknowledge API, the policy in the model, the preview's feature flag), over HTTPS with a
throwaway CA.

Run Command behaves as Compute does: 202 with Azure-AsyncOperation and Location and, by default, no
Retry-After (as the recordings show); InProgress until the script has really run in the VM's namespace;
the RunCommandResult from the Location URL with stdout and stderr cut to their last 4096 bytes; 409 while
another Run Command runs on the same VM or when the VM is deallocated.

    arm = FakeArm(tmp_path).start()
    arm.add_scale_set('rg', 'web', count=3)
    ComputeManagementClient(credential, arm.subscription, base_url=arm.url, connection_verify=str(arm.certs.ca))

Scale sets have a model version: ``arm.change_model(web)`` or a PATCH with properties.virtualMachineProfile makes
every instance outdated (latestModelApplied false) until a manual upgrade (POST .../manualupgrade) or a reimage
brings it to the model. A zonal scale set spreads its instances over its zones, one each, round-robin.
``arm.history`` has every accepted action and Run Command in time order, ``arm.run_commands`` each Run Command.

Scheduled Events outside the VM (see /work/shared/docs/control-plane-contract.md), evaluated, not canned:

    web = arm.add_scale_set('rg', 'web', count=3, simulate_vms=False, publish=True)
    row = arm.publish(web.instances['1'])        # a Reboot for web_1, hanging off the scale set
    POST /providers/Microsoft.ResourceGraph/resources   runs the query (fakearm/kql.py) over the rows, paged
    POST .../virtualMachineScaleSets/web/providers/Microsoft.Maintenance/scheduledevents/{id}/acknowledge
    arm.set_event_status(row['name'], 'Completed')

Switches: ``acknowledge_forbidden`` (403 AuthorizationFailed), ``feature_registered`` (False: as without the
preview: the rows are not in Resource Graph and the Maintenance API knows no event, so it answers 404 NotFound;
the policy stays in the model, and the feature's GET says NotRegistered), ``acknowledge_api_versions`` and
``acknowledge_list_api_versions`` (others are refused as ARM refuses them, naming the supported ones),
``multi_status_shape`` ('error' or 'response': the two 207 bodies seen), ``graph_throttling`` (429 once the
quota of ``graph_quota`` is spent; the quota headers come back either way).
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

from . import maintenance
from .kql import KqlError, run as run_kql
from .lifecycle import History, Ledger, Lifecycle, Timings
from .maintenance import (FEATURE, EventStore, GraphQuota, event_row, publishes, scheduled_events_policy,
                          shows_policy)
from .tls import make_certificates
from .vm import SimulatedVm

SUBSCRIPTION = '00000000-0000-0000-0000-000000000001'
TENANT = '00000000-0000-0000-0000-0000000000aa'
LOCATION = 'westus'
OUTPUT_LIMIT_IN_BYTES = 4096
SCRIPT_TIMEOUT_IN_SECONDS = 90 * 60
IDENTITY_HEADER = 'fake-identity-header'
PRINCIPAL = '00000000-0000-0000-0000-0000000000bb'     # the object id that the 403s name
_GUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', re.I)
_KINDS = {'virtualmachinescalesets': 'virtualMachineScaleSets', 'virtualmachines': 'virtualMachines',
          'availabilitysets': 'availabilitySets'}

_COMPUTE = r'/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.compute'
_EVENTS = (_COMPUTE + r'/(?P<kind>virtualmachinescalesets|virtualmachines|availabilitysets)/(?P<name>[^/]+)'
                      r'/providers/microsoft\.maintenance/scheduledevents')
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
    ('POST', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)/manualupgrade', 'manual_upgrade'),
    ('POST', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)/(?P<action>reimage|reimageall|restart|redeploy)',
     'scale_set_action'),
    ('PATCH', _COMPUTE + r'/virtualmachinescalesets/(?P<vmss>[^/]+)', 'update_scale_set'),
    ('GET', _COMPUTE + r'/virtualmachines/(?P<vm>[^/]+)', 'instance'),
    ('GET', _COMPUTE + r'/virtualmachines/(?P<vm>[^/]+)/instanceview', 'instance_view'),
    ('POST', _COMPUTE + r'/virtualmachines/(?P<vm>[^/]+)/runcommand', 'run_command'),
    ('GET', _COMPUTE + r'/availabilitysets/(?P<avset>[^/]+)', 'availability_set'),
    ('GET', r'/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.features/providers/(?P<namespace>[^/]+)/features/'
            r'(?P<feature>[^/]+)', 'feature'),
    ('POST', r'/providers/microsoft\.resourcegraph/resources', 'resource_graph'),
    ('POST', _EVENTS + r'/(?P<event>[^/]+)/acknowledge', 'acknowledge'),
    ('POST', _EVENTS, 'acknowledge_list'),
]
_ROUTES = [(method, re.compile(pattern + '$', re.I), name) for method, pattern, name in _ROUTES]


class ArmError(Exception):
    def __init__(self, status, code, message, headers=None, details=None):
        super().__init__(message)
        self.status, self.code, self.headers, self.details = status, code, headers or {}, details

    def body(self):
        error = {'code': self.code, 'message': str(self)}
        if self.details is not None:
            error['details'] = self.details
        return {'error': error}


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
    subscription: str = SUBSCRIPTION
    scale_set: str | None = None            # the name of the Uniform scale set it belongs to
    availability_set: str | None = None     # the name of its availability set
    zones: list | None = None               # a scale set's instance: its one zone
    # A standalone VM's own (a scale set's instances follow the scale set's); see maintenance.py.
    scheduled_events_policy: dict | None = None
    scheduled_events_profile: dict | None = None

    def resource_id(self, subscription=None, scale_set=None):
        base = (f'/subscriptions/{subscription or self.subscription}/resourceGroups/{self.resource_group}/'
                f'providers/Microsoft.Compute')
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
    subscription: str = SUBSCRIPTION
    zones: list | None = None                         # its instances are spread over them
    model_version: int = 0                            # bumped by each change of the model
    scheduled_events_policy: dict | None = None       # properties.scheduledEventsPolicy
    scheduled_events_profile: dict | None = None      # properties.virtualMachineProfile.scheduledEventsProfile

    def resource_id(self):
        return (f'/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/'
                f'Microsoft.Compute/virtualMachineScaleSets/{self.name}')

    def new_instance(self, os_type='Linux', *, creating_until=None, health_delay=0.0):
        instance_id = str(self.next_id)
        self.next_id += 1
        instance = FakeInstance(f'{self.name}_{instance_id}', self.resource_group, instance_id, os_type,
                                life=Lifecycle(health_state='healthy' if self.health_extension else None,
                                               model_version=self.model_version),
                                subscription=self.subscription, scale_set=self.name,
                                zones=[self.zones[int(instance_id) % len(self.zones)]] if self.zones else None)
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


@dataclass
class FakeAvailabilitySet:
    name: str
    resource_group: str
    vm_names: list
    subscription: str = SUBSCRIPTION
    scheduled_events_policy: dict | None = None       # properties.scheduledEventsPolicy

    def resource_id(self):
        return (f'/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/'
                f'Microsoft.Compute/availabilitySets/{self.name}')


@dataclass
class FakeSubscription:
    """One subscription's resources, each table keyed by (resource group, name) in lower case."""

    subscription_id: str
    display_name: str = 'Fake subscription'
    scale_sets: dict = field(default_factory=dict)
    vms: dict = field(default_factory=dict)
    availability_sets: dict = field(default_factory=dict)


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
        self.history = History()
        self.run_commands = []    # one dict per Run Command accepted; see start_run_command
        self._zones = {}          # scale-set instance name -> its zone, kept after it is deleted
        self.certs = make_certificates(folder / 'tls')
        self.subscriptions = {subscription.lower(): FakeSubscription(subscription)}     # in the order added
        self.operations = {}
        self.events = EventStore()          # the published events, as Resource Graph holds them
        self.feature_registered = True      # Microsoft.Compute/SendScheduledEventsPolicy
        self.acknowledge_forbidden = False
        self.acknowledge_api_versions = set(maintenance.ACKNOWLEDGE_API_VERSIONS)
        self.acknowledge_list_api_versions = set(maintenance.ACKNOWLEDGE_LIST_API_VERSIONS)
        self.multi_status_shape = 'error'   # or 'response': {"response": {code, message}, "details": [...]}
        self.graph_quota = GraphQuota()
        self.graph_throttling = False       # True: 429 RateLimiting once the quota is spent
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

    @property
    def scale_sets(self):
        """The first subscription's scale sets: (rg, name) lower -> FakeScaleSet."""
        return self.subscriptions[self.subscription.lower()].scale_sets

    @property
    def vms(self):
        """The first subscription's standalone VMs: (rg, name) lower -> FakeInstance."""
        return self.subscriptions[self.subscription.lower()].vms

    @property
    def availability_sets(self):
        return self.subscriptions[self.subscription.lower()].availability_sets

    def add_subscription(self, subscription_id, display_name='Fake subscription'):
        """Another subscription in the tenant (the subscriptions list az login reads names them all)."""
        with self._lock:
            return self.subscriptions.setdefault(subscription_id.lower(),
                                                 FakeSubscription(subscription_id, display_name))

    def _subscription(self, subscription):
        found = self.subscriptions.get((subscription or self.subscription).lower())
        if found is None:
            raise ValueError(f'no subscription {subscription}: add_subscription() it first')
        return found

    def add_scale_set(self, resource_group, name, *, count, os_types=None, health_extension=False,
                      simulate_vms=True, pythons=None, subscription=None, zones=None, publish=False, policy=None,
                      profile=None):
        """A Uniform scale set of ``count`` instances named ``<name>_<id>``, instance N in zone
        ``zones[N % len(zones)]`` when ``zones`` are given. With ``simulate_vms`` each Linux
        instance gets a simulated VM (its own namespace and IMDS) for Run Command; the reimage tests need none.
        ``pythons`` gives an instance (by index) another python3 than this one, or None for none at all.
        ``policy`` and ``profile`` are its scheduledEventsPolicy and scheduledEventsProfile (see
        maintenance.scheduled_events_policy); ``publish=True`` adds publishing to Event Grid and Resource Graph.
        """
        sub = self._subscription(subscription)
        scale_set = FakeScaleSet(name, resource_group, health_extension=health_extension,
                                 subscription=sub.subscription_id, zones=zones,
                                 scheduled_events_policy=_with_publishing(policy, publish),
                                 scheduled_events_profile=profile)
        for index in range(count):
            instance = scale_set.new_instance((os_types or {}).get(index, 'Linux'))
            instance.python = (pythons or {}).get(index, instance.python)
        if simulate_vms:
            self._boot(list(scale_set.instances.values()))
        with self._lock:
            sub.scale_sets[(resource_group.lower(), name.lower())] = scale_set
            self._record()
        return scale_set

    def add_vm(self, resource_group, name, *, os_type='Linux', simulate_vm=True, subscription=None, zones=None,
               publish=False, policy=None, profile=None):
        """A standalone VM; with ``simulate_vm`` (Linux) a simulated VM behind it. ``policy``, ``profile`` and
        ``publish`` as for add_scale_set."""
        sub = self._subscription(subscription)
        instance = FakeInstance(name, resource_group, None, os_type, subscription=sub.subscription_id, zones=zones,
                                scheduled_events_policy=_with_publishing(policy, publish),
                                scheduled_events_profile=profile)
        if simulate_vm:
            self._boot([instance])
        with self._lock:
            sub.vms[(resource_group.lower(), name.lower())] = instance
        return instance

    def add_availability_set(self, resource_group, name, vm_names, *, subscription=None, publish=False, policy=None):
        """An availability set of VMs made with add_vm (same subscription and resource group, as Azure needs)."""
        sub = self._subscription(subscription)
        members = []
        for vm_name in vm_names:
            vm = sub.vms.get((resource_group.lower(), vm_name.lower()))
            if vm is None:
                raise ValueError(f'no VM {vm_name} in {resource_group}: add_vm() it first')
            members.append(vm)
        availability_set = FakeAvailabilitySet(name, resource_group, [vm.name for vm in members], sub.subscription_id,
                                               _with_publishing(policy, publish))
        with self._lock:
            for vm in members:
                vm.availability_set = name
            sub.availability_sets[(resource_group.lower(), name.lower())] = availability_set
        return availability_set

    def advance(self):
        """Apply every instance's changes due by now; drop deleted instances; keep the ledger."""
        now = time.monotonic()
        with self._lock:
            changed = False
            for scale_set in self._all_scale_sets():
                for instance_id, instance in list(scale_set.instances.items()):
                    changed |= instance.life.due(now)
                    if instance.life.provisioning_state == 'Deleted':
                        del scale_set.instances[instance_id]
            if changed:
                self._record()

    def _record(self):
        instances = [i for s in self._all_scale_sets() for i in s.instances.values()]
        self._zones.update((i.name, i.zones[0]) for i in instances if i.zones)
        self.ledger.record({i.name: i.life for i in instances})

    def zone_of(self, name):
        """The zone of scale-set instance ``name`` (also once deleted), or None where its scale set has none."""
        with self._lock:
            return self._zones.get(name)

    def below_by_zone(self):
        """Each ledger entry as (time, {zone: [instances below]}): a zone-by-zone cycle keeps to one zone."""
        with self._lock:
            zones = dict(self._zones)
        by_zone = []
        for at, below, _ in list(self.ledger.entries):
            grouped = {}
            for name in below:
                grouped.setdefault(zones.get(name), []).append(name)
            by_zone.append((at, grouped))
        return by_zone

    def change_model(self, scale_set):
        """A new model for ``scale_set`` (as a changed image or extension would make): every instance is
        outdated until a reimage or a manual upgrade. Returns the new version."""
        with self._lock:
            scale_set.model_version += 1
            return scale_set.model_version

    def _all_scale_sets(self):
        return [s for sub in list(self.subscriptions.values()) for s in sub.scale_sets.values()]

    def operate(self, scale_set, instances, action):
        """Start ``action`` (reimage, restart, redeploy, update, delete) on ``instances``; returns the operation
        id. A reimage or an update brings them to the model the scale set has now, if it succeeds."""
        timings = self.timings
        now = time.monotonic()
        with self._lock:
            ends = []
            model = scale_set.model_version if action in ('reimage', 'update') else None
            for instance in instances:
                self.history.record('action', instance.name, action)
                if action == 'delete':
                    instance.life.provisioning_state = 'Deleting'
                    instance.life.pending = [(now + timings.delete, {'provisioning_state': 'Deleted'})]
                    ends.append((now + timings.delete, True))
                else:
                    if action == 'reimage' and instance.vm is not None:
                        instance.vm.reimage()
                    ends.append(instance.life.operate(
                        now, getattr(timings, action), timings.health_delay, model_version=model,
                        power_during='running' if action in ('restart', 'update') else 'stopped'))
            self._record()
            return self._operation(max((end for end, _ in ends), default=now), all(ok for _, ok in ends))

    def update_scale_set(self, scale_set, *, capacity=None, new_model=False):
        """A PATCH: the new model first (the instances a scale-out creates run it), then ``capacity``; returns
        the operation id."""
        if new_model:
            self.change_model(scale_set)
        if capacity is not None:
            return self.scale(scale_set, capacity)
        with self._lock:
            return self._operation(time.monotonic(), True)

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
        for sub in list(self.subscriptions.values()):
            for scale_set in list(sub.scale_sets.values()):
                yield from list(scale_set.instances.values())
            yield from list(sub.vms.values())

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
        return self._resource(groups, 'scale_sets', 'virtualMachineScaleSets', groups['vmss'])

    def instances_named(self, scale_set, instance_ids):
        """The instances of ``scale_set`` that ``instance_ids`` name, ``"*"`` meaning all that are not being
        deleted; ArmError 400 when there are none, 404 naming the ids that are not instances."""
        if not isinstance(instance_ids, list) or not instance_ids or \
                not all(isinstance(i, str) for i in instance_ids):
            raise ArmError(400, 'InvalidParameter', "Required parameter 'instanceIds' is missing, empty or not a "
                                                    "list of strings.")
        if '*' in instance_ids:
            return [i for i in scale_set.instances.values() if i.life.provisioning_state != 'Deleting']
        unknown = [i for i in instance_ids if i not in scale_set.instances]
        if unknown:
            raise ArmError(404, 'NotFound', f"The scale set '{scale_set.name}' has no instance with the id "
                                            f"{', '.join(repr(i) for i in unknown)}.")
        return [scale_set.instances[i] for i in dict.fromkeys(instance_ids)]

    def instance(self, groups):
        if 'vmss' not in groups:
            return self._resource(groups, 'vms', 'virtualMachines', groups['vm'])
        found = self.scale_set(groups).instances.get(groups['id'])
        if found is None:
            raise ArmError(404, 'NotFound', 'The entity was not found in this Azure location.')
        return found

    def availability_set(self, groups):
        return self._resource(groups, 'availability_sets', 'availabilitySets', groups['avset'])

    def subscription_of(self, groups):
        found = self.subscriptions.get(groups['sub'].lower())
        if found is None:
            raise ArmError(404, 'SubscriptionNotFound', f"The subscription '{groups['sub']}' could not be found.")
        return found

    def _resource(self, groups, table, kind, name):
        found = getattr(self.subscription_of(groups), table).get((groups['rg'].lower(), name.lower()))
        if found is None:
            raise ArmError(404, 'ResourceNotFound', f"The Resource 'Microsoft.Compute/{kind}/{name}' under "
                                                    f"resource group '{groups['rg']}' was not found.")
        return found

    # Scheduled Events outside the VM -------------------------------------------------------------------------

    def publish(self, target, event=None):
        """Publish an event of ``target`` to Resource Graph as the platform does, which only happens when the
        target's policy publishes (raises ValueError otherwise); returns its row. ``target`` is a FakeScaleSet,
        a FakeInstance (for a Uniform scale set's instance the event hangs off the scale set and names that
        instance) or a FakeAvailabilitySet. ``event`` holds IMDS fields; by default a Reboot of every instance
        of the target, Scheduled 15 minutes ahead, with a new upper-case EventId.

            row = arm.publish(web, {'EventType': 'Freeze', 'Resources': ['web_0', 'web_3']})
        """
        kind, owner, resources = self._event_owner_of(target)
        if not self._publishes(kind, owner):
            raise ValueError(f'{kind} {owner.name} does not publish scheduled events to Resource Graph: give it '
                             f'publish=True (or a scheduledEventsPolicy that enables eventGridAndResourceGraph)')
        event = dict(event or {})
        event.setdefault('Resources', resources)
        return self.events.add(event_row(owner.subscription, owner.resource_group, kind, owner.name, event,
                                         tenant=TENANT, location=LOCATION, zones=getattr(owner, 'zones', None)))

    def set_event_status(self, event_id, status):
        """Move a published event to ``status`` (Scheduled, Started, Completed, Canceled), as the platform
        updates its row in place; NotBefore becomes "" unless Scheduled. Returns the row."""
        return self.events.set_status(event_id, status)

    def _event_owner_of(self, target):
        """-> (resource type in the event's id, the resource the event hangs off, its default Resources)."""
        if isinstance(target, FakeScaleSet):
            return 'virtualMachineScaleSets', target, [i.name for i in target.instances.values()]
        if isinstance(target, FakeAvailabilitySet):
            return 'availabilitySets', target, list(target.vm_names)
        if isinstance(target, FakeInstance) and target.scale_set is not None:
            scale_sets = self._subscription(target.subscription).scale_sets
            owner = scale_sets[(target.resource_group.lower(), target.scale_set.lower())]
            return 'virtualMachineScaleSets', owner, [target.name]
        if isinstance(target, FakeInstance):
            return 'virtualMachines', target, [target.name]
        raise TypeError(f'cannot publish an event of {target!r}: give a scale set, an instance or an availability set')

    def _publishes(self, kind, owner):
        if publishes(owner.scheduled_events_policy):
            return True
        # A VM of an availability set also publishes when the availability set's policy does.
        if kind == 'virtualMachines' and owner.availability_set:
            sets = self._subscription(owner.subscription).availability_sets
            return publishes(sets[(owner.resource_group.lower(), owner.availability_set.lower())]
                             .scheduled_events_policy)
        return False

    def acknowledge(self, groups, api_version, event_ids, *, single):
        """Approve ``event_ids`` of the resource in ``groups`` as the Maintenance API does; raises ArmError when
        the whole request fails, else returns the failures: [(event id, HTTP status, code, message)]."""
        _check_api_version(api_version, self.acknowledge_api_versions if single else self.acknowledge_list_api_versions)
        kind = _KINDS[groups['kind'].lower()]
        target = (f"/subscriptions/{groups['sub']}/resourcegroups/{groups['rg']}/providers/Microsoft.Compute/"
                  f"{kind}/{groups['name']}")
        scope = f"{target}/providers/Microsoft.Maintenance/scheduledevents" + (f"/{event_ids[0]}" if single else '')
        if self.acknowledge_forbidden:
            raise ArmError(403, 'AuthorizationFailed',
                           f"The client '{PRINCIPAL}' with object id '{PRINCIPAL}' does not have authorization to "
                           f"perform action '{maintenance.ACKNOWLEDGE_ACTION}' over scope '{scope}' or the scope is "
                           f"invalid. If access was recently granted, please refresh your credentials.")
        if not isinstance(event_ids, list) or not event_ids or not all(isinstance(i, str) for i in event_ids):
            raise ArmError(400, 'InvalidRequestContent', 'The request content was invalid and could not be '
                                                         'deserialized: expected {"value": ["<event id>", ...]}.')
        table = {'virtualMachineScaleSets': 'scale_sets', 'virtualMachines': 'vms',
                 'availabilitySets': 'availability_sets'}[kind]
        self._resource(groups, table, kind, groups['name'])
        started, failures = [], []
        with self._lock:        # check and start at once: two approvals of one event cannot both succeed
            for event_id in event_ids:
                row = self.events.get(event_id) if self.feature_registered else None
                if not _GUID.match(event_id):
                    failures.append((event_id, 400, 'InvalidParameter',
                                     f"'{event_id}' is not a valid scheduled event id: a GUID is expected."))
                elif row is None or maintenance.target_of(row) != target.lower():
                    failures.append((event_id, 404, 'NotFound', f"The scheduled event '{event_id}' was not found "
                                                                f"for the resource '{target}'."))
                elif row['properties']['EventStatus'] != 'Scheduled':
                    failures.append((event_id, 409, 'Conflict', f"The scheduled event '{event_id}' is "
                                                                f"{row['properties']['EventStatus']}: only a "
                                                                f"Scheduled event can be acknowledged."))
                else:
                    self.events.start_scheduled([event_id])
                    started.append(self.events.get(event_id))
        self._start_in_vms(started)
        return failures

    def _start_in_vms(self, rows):
        """The platform tells the IMDS of every VM an approved event names that it started."""
        simulated = {(i.subscription.lower(), i.name): i for i in self.all_instances() if i.vm is not None}
        for row in rows:
            for name in row['properties']['Resources']:
                instance = simulated.get((row['subscriptionId'].lower(), name))
                if instance is not None:
                    instance.vm.start_events([row['name']])

    def resource_graph(self, api_version, body):
        """Answer a Resource Graph query (contract section 1); raises ArmError for a request it refuses."""
        _check_api_version(api_version, maintenance.RESOURCE_GRAPH_API_VERSIONS)
        query = body.get('query') if isinstance(body, dict) else None
        options = (body.get('options') if isinstance(body, dict) else None) or {}
        if not isinstance(query, str) or not isinstance(options, dict):
            raise _graph_error('InvalidRequestContent', 'The request needs a "query" string, and "options" must be '
                                                        'an object.')
        if options.get('resultFormat', 'objectArray') != 'objectArray':
            raise _graph_error('InvalidParameter', f"This fake answers resultFormat 'objectArray' only, not "
                                                   f"{options['resultFormat']!r}.")
        scopes = self._graph_scopes(body)
        tables = {'maintenanceresources': self.events.rows(scopes) if self.feature_registered else [],
                  'resources': self._resource_rows(scopes)}
        try:
            result = run_kql(query, tables)
        except KqlError as ex:
            raise _graph_error('InvalidQuery', f'Query is invalid. Please refer to the documentation for the Azure '
                                               f'Resource Graph service and fix the error before retrying. {ex}') \
                from None
        try:
            return maintenance.page_of(result, query, options)
        except ValueError as ex:
            raise _graph_error('InvalidParameter', str(ex)) from None

    def _graph_scopes(self, body):
        """The subscriptions a query covers (lower case): those named, or with management groups (or no
        scope at all) every subscription the fake knows. Unknown subscriptions are left out."""
        named = body.get('subscriptions') or []
        if body.get('managementGroups') or not named:
            return set(self.subscriptions)
        return {str(s).lower() for s in named} & set(self.subscriptions)

    def _resource_rows(self, scopes):
        """The ``resources`` table: scale sets, standalone VMs and availability sets, as the latest api-version
        serves them (a Uniform scale set's instances are not in it, as in Azure)."""
        bodies = []
        for sub_id in scopes:
            sub = self.subscriptions[sub_id]
            bodies += [(self.scale_set_body(s, None), s) for s in sub.scale_sets.values()]
            bodies += [(self.instance_body(v, None), v) for v in sub.vms.values()]
            bodies += [(self.availability_set_body(a, None), a) for a in sub.availability_sets.values()]
        return [{'id': body['id'], 'name': body['name'], 'type': body['type'].lower(), 'tenantId': TENANT, 'kind': '',
                 'location': body['location'], 'resourceGroup': owner.resource_group.lower(),
                 'subscriptionId': owner.subscription, 'managedBy': '', 'sku': body.get('sku'), 'plan': None,
                 'properties': body['properties'], 'tags': {}, 'identity': None, 'zones': getattr(owner, 'zones', None),
                 'extendedLocation': None} for body, owner in bodies]

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

    def scale_set_body(self, scale_set, api_version=None):
        """A scale set's body; ``api_version`` None means the latest (which shows the policy)."""
        extensions = [{'name': 'ApplicationHealthLinux', 'properties': {
            'publisher': 'Microsoft.ManagedServices', 'type': 'ApplicationHealthLinux', 'typeHandlerVersion': '1.0',
            'autoUpgradeMinorVersion': True, 'settings': {'port': 80, 'protocol': 'http', 'requestPath': '/'}}}]
        capacity = sum(1 for i in scale_set.instances.values() if i.life.provisioning_state != 'Deleting')
        profile = {'extensionProfile': {'extensions': extensions if scale_set.health_extension else []}}
        properties = {'orchestrationMode': 'Uniform', 'provisioningState': 'Succeeded',
                      'upgradePolicy': {'mode': 'Manual'}, 'virtualMachineProfile': profile}
        if api_version is None or shows_policy(api_version):
            _put(properties, 'scheduledEventsPolicy', scale_set.scheduled_events_policy)
            _put(profile, 'scheduledEventsProfile', scale_set.scheduled_events_profile)
        body = {'name': scale_set.name, 'location': LOCATION, 'type': 'Microsoft.Compute/virtualMachineScaleSets',
                'id': scale_set.resource_id(), 'sku': {'name': 'Standard_D2s_v3', 'tier': 'Standard',
                                                       'capacity': capacity}, 'properties': properties}
        if scale_set.zones:
            body['zones'] = list(scale_set.zones)
        return body

    def availability_set_body(self, availability_set, api_version=None):
        """An availability set's body; ``api_version`` None means the latest (which shows the policy)."""
        sub = self._subscription(availability_set.subscription)
        members = [sub.vms[(availability_set.resource_group.lower(), n.lower())] for n in availability_set.vm_names]
        properties = {'platformUpdateDomainCount': 5, 'platformFaultDomainCount': 2,
                      'virtualMachines': [{'id': vm.resource_id()} for vm in members]}
        if api_version is None or shows_policy(api_version):
            _put(properties, 'scheduledEventsPolicy', availability_set.scheduled_events_policy)
        return {'name': availability_set.name, 'id': availability_set.resource_id(), 'location': LOCATION,
                'type': 'Microsoft.Compute/availabilitySets', 'sku': {'name': 'Aligned'}, 'properties': properties}

    def instance_body(self, instance, scale_set=None, expand=False, api_version=None):
        """A VM's body; ``api_version`` None means the latest (which shows the policy). A scale set's instance
        (``scale_set``: its name) says whether it runs the scale set's model; a standalone VM has no such field."""
        properties = {
            'vmId': str(uuid.uuid5(uuid.NAMESPACE_DNS, instance.name)),
            'provisioningState': instance.life.provisioning_state,
            'osProfile': {'computerName': instance.name.replace('_', '')},
            'storageProfile': {'osDisk': {'osType': instance.os_type, 'createOption': 'FromImage'}},
        }
        if scale_set:
            owner = self._subscription(instance.subscription).scale_sets[
                (instance.resource_group.lower(), scale_set.lower())]
            properties['latestModelApplied'] = instance.life.model_version == owner.model_version
        if expand:
            properties['instanceView'] = self.instance_view(instance)
        if instance.availability_set:
            properties['availabilitySet'] = {'id': f'/subscriptions/{instance.subscription}/resourceGroups/'
                                                   f'{instance.resource_group}/providers/Microsoft.Compute/'
                                                   f'availabilitySets/{instance.availability_set}'}
        if api_version is None or shows_policy(api_version):
            _put(properties, 'scheduledEventsPolicy', instance.scheduled_events_policy)
            _put(properties, 'scheduledEventsProfile', instance.scheduled_events_profile)
        body = {'name': instance.name, 'id': instance.resource_id(instance.subscription, scale_set),
                'location': LOCATION, 'properties': properties}
        if instance.zones:
            body['zones'] = list(instance.zones)
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
        started = [e for e in instance.vm.document()['events'] if e['EventStatus'] == 'Started']
        self.events.start_scheduled([e['EventId'] for e in started])      # and Resource Graph shows it
        for event in started:
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
        script = '\n'.join(request.get('script') or [])
        parameters = {p['name']: p['value'] for p in request.get('parameters') or []}
        with self._lock:
            self.operations[op_id] = operation
            started = self.history.record('run-command-start', instance.name,
                                          {'script': script, 'parameters': parameters})
            record = {'instance': instance.name, 'instance_id': instance.instance_id, 'script': script,
                      'parameters': parameters, 'started': started.at, 'ended': None, 'exit_code': None,
                      'failure': None}
            self.run_commands.append(record)
        threading.Thread(target=self._run_command, args=(instance, operation, record), daemon=True).start()
        return op_id

    def _run_command(self, instance, operation, record):
        try:
            started = time.monotonic()
            if instance.hang_run_command:
                return
            if instance.fail_run_command:
                self._end_run_command(instance, record, failure=instance.fail_run_command)
                operation.update(status='Failed', error={'code': 'VMExtensionProvisioningError',
                                                         'message': instance.fail_run_command})
                return
            if instance.vm is None:
                message = (f'{operation["request"].get("commandId")} cannot run in this fake: '
                           f'no {instance.os_type} VM behind {instance.name}.')
                self._end_run_command(instance, record, failure=message)
                operation.update(status='Failed', error={'code': 'VMAgentStatusCommunicationError',
                                                         'message': message})
                return
            code, stdout, stderr = instance.vm.run_script(record['script'], SCRIPT_TIMEOUT_IN_SECONDS,
                                                          record['parameters'])
            self._propagate_starts(instance)
            time.sleep(max(0.0, self.run_command_latency - (time.monotonic() - started)))
            self._end_run_command(instance, record, exit_code=code, failure=None if code is not None else 'timeout')
            operation.update(status='Succeeded', endTime=_now(), result=_run_command_result(code, stdout, stderr))
        finally:
            if not instance.hang_run_command:
                instance.busy.release()

    def _end_run_command(self, instance, record, *, exit_code=None, failure=None):
        """Note the end in the history and in ``record`` before the operation says so, so that what a client
        does once it has seen the end comes after it."""
        with self._lock:
            ended = self.history.record('run-command-end', instance.name, exit_code if failure is None else failure)
            record.update(ended=ended.at, exit_code=exit_code, failure=failure)


def _with_publishing(policy, publish):
    """``policy`` with publishing to Event Grid and Resource Graph turned on when ``publish``."""
    if not publish:
        return policy
    return {**(policy or {}), **(scheduled_events_policy(publish=True) or {})}


def _put(properties, key, value):
    if value is not None:
        properties[key] = value


def _check_api_version(api_version, supported):
    """Refuse an api-version as ARM does, naming the supported ones (newest first) so a client can fall back."""
    if not api_version:
        raise ArmError(400, 'MissingApiVersionParameter',
                       'The api-version query parameter (?api-version=) is required for all requests.')
    if api_version.lower() not in {v.lower() for v in supported}:
        raise ArmError(400, 'InvalidApiVersionParameter',
                       f"The api-version '{api_version}' is invalid. The supported versions are "
                       f"'{','.join(sorted(supported, reverse=True))}'.")


def _graph_error(code, message):
    """Resource Graph's 400: a support line on top, the reason in the details."""
    return ArmError(400, 'BadRequest', f'Please provide below info when asking for support: timestamp = {_now()}, '
                                       f'correlationId = {uuid.uuid4()}.', details=[{'code': code, 'message': message}])


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
                    return self._send(ex.status, ex.body(), ex.headers)
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
        return self._send(200, {'value': [
            {'id': f'/subscriptions/{sub.subscription_id}', 'subscriptionId': sub.subscription_id, 'tenantId': TENANT,
             'displayName': sub.display_name, 'state': 'Enabled'} for sub in self.server.arm.subscriptions.values()]})

    def _tenants(self, groups, query, body):
        return self._send(200, {'value': [{'id': f'/tenants/{TENANT}', 'tenantId': TENANT}]})

    def _scale_set(self, groups, query, body):
        arm = self.server.arm
        return self._send(200, arm.scale_set_body(arm.scale_set(groups), query.get('api-version', '')))

    def _availability_set(self, groups, query, body):
        arm = self.server.arm
        return self._send(200, arm.availability_set_body(arm.availability_set(groups), query.get('api-version', '')))

    def _feature(self, groups, query, body):
        arm = self.server.arm
        sub = arm.subscription_of(groups)
        if groups['namespace'].lower() != 'microsoft.compute' or groups['feature'].lower() != FEATURE.lower():
            raise ArmError(404, 'FeatureNotFound', f"The feature '{groups['feature']}' could not be found.")
        return self._send(200, {
            'id': f'/subscriptions/{sub.subscription_id}/providers/Microsoft.Features/providers/Microsoft.Compute/'
                  f'features/{FEATURE}',
            'name': f'Microsoft.Compute/{FEATURE}', 'type': 'Microsoft.Features/providers/features',
            'properties': {'state': 'Registered' if arm.feature_registered else 'NotRegistered'}})

    def _resource_graph(self, groups, query, body):
        arm = self.server.arm
        within, headers, resets_in = arm.graph_quota.take()
        try:
            if arm.graph_throttling and not within:
                raise ArmError(429, 'RateLimiting', 'Please provide below info when asking for support: timestamp = '
                                                    f'{_now()}, correlationId = {uuid.uuid4()}.',
                               {'Retry-After': str(resets_in)},
                               [{'code': 'RateLimiting', 'message': 'Client application has been throttled and should '
                                                                    'not attempt to repeat the request until an amount '
                                                                    'of time has elapsed.'}])
            answer = arm.resource_graph(query.get('api-version'), body)
        except ArmError as ex:
            ex.headers.update(headers)
            raise
        return self._send(200, answer, headers)

    def _acknowledge(self, groups, query, body):
        failures = self.server.arm.acknowledge(groups, query.get('api-version'), [groups['event']], single=True)
        if failures:
            _, status, code, message = failures[0]
            raise ArmError(status, code, message)
        return self._send(200, {'value': 'The scheduled event has been acknowledged.'})

    def _acknowledge_list(self, groups, query, body):
        arm = self.server.arm
        event_ids = body.get('value') if isinstance(body, dict) else None
        failures = arm.acknowledge(groups, query.get('api-version'), event_ids, single=False)
        if not failures:
            return self._send(200, {'value': f'{len(event_ids)} scheduled event(s) have been acknowledged.'})
        details = [{'target': event_id, 'code': code, 'message': message} for event_id, _, code, message in failures]
        summary = {'code': 'MultiStatus', 'message': f'{len(failures)} of {len(event_ids)} scheduled events could not '
                                                     f'be acknowledged; see the details.'}
        if arm.multi_status_shape == 'response':
            return self._send(207, {'response': summary, 'details': details})
        return self._send(207, {'error': dict(summary, details=details)})

    def _update_scale_set(self, groups, query, body):
        """sku.capacity scales; properties.virtualMachineProfile is a new model (its content is not kept)."""
        arm = self.server.arm
        scale_set = arm.scale_set(groups)
        body = body if isinstance(body, dict) else {}
        capacity = (body.get('sku') or {}).get('capacity')
        profile = (body.get('properties') or {}).get('virtualMachineProfile')
        valid_capacity = capacity is None or isinstance(capacity, int) and capacity >= 0
        if not (capacity is not None or profile) or not valid_capacity or not isinstance(profile or {}, dict):
            raise ArmError(400, 'InvalidParameter', 'this fake only updates sku.capacity (a count) and '
                                                    'properties.virtualMachineProfile (an object)')
        op_id = arm.update_scale_set(scale_set, capacity=capacity, new_model=bool(profile))
        return self._send(200, arm.scale_set_body(scale_set, query.get('api-version', '')),
                          self._operation_headers(op_id, query, location=False))

    def _instance_action(self, groups, query, body):
        arm = self.server.arm
        op_id = arm.operate(arm.scale_set(groups), [arm.instance(groups)], groups['action'].lower())
        return self._send(202, None, self._operation_headers(op_id, query))

    def _manual_upgrade(self, groups, query, body):
        """Bring the named instances (``"*"``: all) to the scale set's model: one operation, as the others."""
        arm = self.server.arm
        scale_set = arm.scale_set(groups)
        instances = arm.instances_named(scale_set, body.get('instanceIds') if isinstance(body, dict) else None)
        op_id = arm.operate(scale_set, instances, 'update')
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
        return self._send(200, {'value': [arm.instance_body(i, scale_set.name, expand, query.get('api-version', ''))
                                          for i in scale_set.instances.values()]})

    def _instance(self, groups, query, body):
        arm = self.server.arm
        instance = arm.instance(groups)
        expand = query.get('$expand', '').lower() == 'instanceview'
        return self._send(200, arm.instance_body(instance, groups.get('vmss') and arm.scale_set(groups).name, expand,
                                                 query.get('api-version', '')))

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
