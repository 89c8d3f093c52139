# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The fan-out: read or approve Scheduled Events on every instance of a scale set (or on one VM) through
Run Command, up to ``max_parallel`` at once, with one result per instance.

A failure on one instance (busy with another Run Command, deallocated, timed out, a failed operation,
output that does not fit) is that instance's result; it never stops the others. ``compute`` is an
azure-mgmt-compute ``ComputeManagementClient``, made by the caller.

    fleet = Fleet(compute, 'rg', vmss_name='web')
    results = fleet.read(fleet.targets())
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from .approval import outcomes
from .arm import arm_errors
from .config import FanoutSettings
from .errors import ArmError, EventNotFoundError, ImdsProtocolError, RunCommandOutputError, TargetNotFoundError
from .events import EventsDocument
from .log import get_logger
from .runcommand import approve_script, parse_output, read_script
from .times import retry_after_seconds

logger = get_logger(__name__)


@dataclass(frozen=True)
class FleetTarget:
    """One VM to run on: a scale-set instance (``instance_id`` set) or a standalone VM."""

    name: str
    instance_id: str | None
    os_type: str
    power_state: str | None

    @property
    def where(self):
        """The columns that say which instance a row is of, as every fleet row starts."""
        return {'Instance': self.name, 'InstanceId': self.instance_id}


class _OneInstance:  # pylint: disable=too-few-public-methods
    """What every per-instance result says: which instance (``target``), and whether it went well."""

    target = error = None      # the dataclass's own fields

    @property
    def ok(self):
        return self.error is None

    @property
    def where(self):
        return self.target.where


@dataclass(frozen=True)
class InstanceResult(_OneInstance):
    """What one instance answered: its compute.name and document, or why it could not be read."""

    target: FleetTarget
    vm_name: str | None = None
    document: EventsDocument | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def reading(self):
        """``(where, vm_name, document)`` for ``views``; only for a result that is ``ok``."""
        return self.where, self.vm_name, self.document


@dataclass(frozen=True)
class ScriptResult(_OneInstance):
    """What one instance's script gave: the ``read`` function's answer, or why there is none."""

    target: FleetTarget
    answer: object = None
    error: str | None = None
    seconds: float = 0.0


class Fleet:
    """The instances of one scale set (``vmss_name``) or one VM (``vm_name``) in ``resource_group``."""

    def __init__(self, compute, resource_group, *, vmss_name=None, vm_name=None, settings=FanoutSettings(),
                 clock=time.monotonic):
        if (vmss_name is None) == (vm_name is None):
            raise ValueError('give exactly one of vmss_name and vm_name')
        self._compute = compute
        self.resource_group = resource_group
        self.vmss_name = vmss_name
        self.vm_name = vm_name
        self.settings = settings
        self._clock = clock

    def targets(self, instance_ids=None):
        """The instances, with their OS and power state from one list call (instance view expanded)."""
        with arm_errors(resource_group=self.resource_group, vmss_name=self.vmss_name, vm_name=self.vm_name):
            if self.vm_name:
                vms = [self._compute.virtual_machines.get(self.resource_group, self.vm_name, expand='instanceView')]
            else:
                vms = list(self._compute.virtual_machine_scale_set_vms.list(
                    self.resource_group, self.vmss_name, expand='instanceView'))
        targets = [FleetTarget(name=vm.name, instance_id=getattr(vm, 'instance_id', None), os_type=os_type_of(vm),
                               power_state=_power_state(vm)) for vm in vms]
        if instance_ids:
            wanted = [str(i) for i in instance_ids]
            missing = sorted(set(wanted) - {t.instance_id for t in targets})
            if missing:
                raise TargetNotFoundError(f'scale set {self.vmss_name} has no instance {", ".join(missing)}',
                                          resource_group=self.resource_group, vmss_name=self.vmss_name)
            targets = [t for t in targets if t.instance_id in wanted]
        return targets

    def read(self, targets, *, api_version, on_result=None):
        """Each target's document, concurrently; ``on_result(result)`` is called as each one finishes."""
        def read_one(target):
            command_id, script = read_script(target.os_type, api_version)
            return self._run(target, command_id, script)
        return self._fan_out(targets, read_one, on_result)

    def approve_where_seen(self, targets, event_ids, *, api_version, on_result=None):
        """Read ``targets`` and approve on one that sees every id, preferring one the events name, as that
        instance's own watcher would -> (all read results, the chosen one's result before, its result
        after, each id's ``ApprovalResult``). Raises ``EventNotFoundError`` when no target sees them all.
        """
        results = self.read(targets, api_version=api_version, on_result=on_result)
        seeing = [r for r in results if r.ok and all(r.document.get(i) for i in event_ids)]
        seeing.sort(key=lambda r: not all(r.document.get(i).affects(r.vm_name) for i in event_ids))
        if not seeing:
            where = targets[0].name if len(targets) == 1 else 'any instance that could be read'
            raise EventNotFoundError(f'{", ".join(event_ids)} not in the document of {where}', event_ids=event_ids)
        chosen = seeing[0]
        ids = [chosen.document.get(i).event_id for i in event_ids]
        after = self.approve(chosen.target, ids, api_version=api_version)
        approvals = outcomes(ids, chosen.document, after.document, sent=ids) if after.ok else []
        return results, chosen, after, approvals

    def approve(self, target, event_ids, *, api_version):
        """Approve ``event_ids`` on ``target`` (one instance approves for all it names) -> its result after."""
        command_id, script = approve_script(target.os_type, event_ids, api_version)
        return self._run(target, command_id, script, step='approve')

    def _fan_out(self, targets, work, on_result):
        """``work`` on every target, ``max_parallel`` at once; ``on_result`` hears each as it finishes, so one
        slow instance never holds up the count. Results come back in the order of ``targets``."""
        results = {}
        with ThreadPoolExecutor(max_workers=self.settings.max_parallel) as pool:
            futures = {pool.submit(work, target): index for index, target in enumerate(targets)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_result:
                    on_result(results[futures[future]])
        return [results[index] for index in range(len(targets))]

    def run_scripts(self, targets, script_for, read, *, on_result=None):
        """Any script on every target, ``max_parallel`` at once: ``script_for(target)`` gives the Run Command
        input (``commandId``, ``script`` lines, optional ``parameters``), ``read(target, output)`` turns the
        RunCommandResult (a dict) into the answer. -> one ``ScriptResult`` per target, in their order."""
        def run_one(target):
            started = self._clock()
            try:
                answer = read(target, self._execute(target, script_for(target)))
            except (ArmError, RunCommandOutputError) as ex:
                return ScriptResult(target, error=str(ex), seconds=self._clock() - started)
            return ScriptResult(target, answer=answer, seconds=self._clock() - started)
        return self._fan_out(targets, run_one, on_result)

    def _run(self, target, command_id, script, step=None):
        """Run one Scheduled Events script on one target; every failure becomes the result's ``error``."""
        started = self._clock()
        try:
            output = self._execute(target, {'commandId': command_id, 'script': script})
            result = self._result(target, parse_output(output), step)
        except (ArmError, RunCommandOutputError, ImdsProtocolError) as ex:
            result = InstanceResult(target, error=str(ex))
        return InstanceResult(result.target, result.vm_name, result.document, result.error, self._clock() - started)

    def _execute(self, target, parameters):
        """Run Command on one target -> its RunCommandResult as a dict. Raises ``ArmError`` (the VM is not
        running, the operation failed or did not finish in time)."""
        if target.power_state not in (None, 'running'):
            raise ArmError(f'the VM is {target.power_state}, not running')
        with arm_errors(resource_group=self.resource_group, vmss_name=self.vmss_name, vm_name=self.vm_name):
            poller = self._begin(target, parameters)
            output = poller.result(timeout=self.settings.instance_timeout_in_seconds)
        if not poller.done():
            raise ArmError(f'Run Command did not finish within {self.settings.instance_timeout_in_seconds:g} s')
        return output.as_dict() if hasattr(output, 'as_dict') else output

    def _begin(self, target, parameters):
        polling = _scheduled_polling(self.settings, self._clock)
        if target.instance_id is None:
            return self._compute.virtual_machines.begin_run_command(
                self.resource_group, target.name, parameters, polling=polling)
        return self._compute.virtual_machine_scale_set_vms.begin_run_command(
            self.resource_group, self.vmss_name, target.instance_id, parameters, polling=polling)

    @staticmethod
    def _result(target, answers, step):
        name_status, vm_name = answers['name']
        for key in ([step] if step else []) + ['doc']:
            status, body = answers.get(key, (0, ''))
            if status != 200:
                detail = body.strip()[:200] or 'no answer'
                return InstanceResult(target, error=f'IMDS on the instance answered {status or "nothing"} to the '
                                                    f'{key} request: {detail}')
        try:
            document = EventsDocument.from_wire(json.loads(answers['doc'][1]))
        except ValueError:
            raise ImdsProtocolError('IMDS on the instance answered with a body that is not JSON') from None
        return InstanceResult(target, vm_name=vm_name.strip() if name_status == 200 else None, document=document)


def _scheduled_polling(settings, clock):
    """ARM polling that follows ``settings.poll_delay`` (a Retry-After from Compute still wins), with the
    final result read from the Location URL, as the SDK does for Run Command."""
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class ScheduledPolling(ARMPolling):
        def initialize(self, *args, **kwargs):
            self._started = clock()  # pylint: disable=attribute-defined-outside-init
            super().initialize(*args, **kwargs)

        def _extract_delay(self):
            retry_after = retry_after_seconds(self._pipeline_response.http_response.headers.get('Retry-After'))
            return retry_after or settings.poll_delay(clock() - self._started)

    return ScheduledPolling(settings.poll_interval_in_seconds, lro_options={'final-state-via': 'location'})


def os_type_of(vm):
    disk = getattr(getattr(vm, 'storage_profile', None), 'os_disk', None)
    os_type = getattr(disk, 'os_type', None) or 'Linux'
    return getattr(os_type, 'value', os_type)


def _power_state(vm):
    statuses = getattr(getattr(vm, 'instance_view', None), 'statuses', None) or []
    for status in statuses:
        if (status.code or '').startswith('PowerState/'):
            return status.code.split('/', 1)[1]
    return None
