# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The rolling cycle: reimage (or restart, or redeploy) a scale set's instances a few at a time, never
moving on until each is back and healthy by its score (see ``health.py``).

    plan = Cycle(compute, 'rg', 'web').plan()           # reads only: order, batches, lowest healthy count
    report = Cycle(compute, 'rg', 'web').run()          # CycleError (with .report) when it stops early

Each action goes to one instance by the per-instance endpoint, never to the whole scale set. An
instance's timeout counts from the moment its action is sent, whatever happens after. While any instance
is below the required score (for any reason), no new action starts beyond ``max_unavailable``. When fewer
than two instances are healthy, the scale set first grows by one, and the instance it added is deleted
again at the end: on success, failure, timeout and interruption alike.
"""

import json
import os
import time
from dataclasses import asdict, dataclass

from .arm import RETRIABLE_STATUSES, arm_errors
from .atomicfile import write_atomic
from .config import CycleSettings
from .errors import ArmError, CycleError, PreflightError, TargetNotFoundError
from .health import HEALTHY, PROVISIONED, RUNNING, InstanceHealth
from .log import get_logger
from .times import iso_utc
from .vocabulary import CycleResult, HealthMode

logger = get_logger(__name__)


@dataclass
class InstanceReport:  # pylint: disable=too-many-instance-attributes
    """One instance's part in the cycle, as the report shows it."""

    instance_id: str
    name: str
    result: CycleResult = CycleResult.PENDING
    action: str | None = None
    started: str | None = None
    ended: str | None = None
    seconds_to_healthy: float | None = None
    score: int | None = None
    parts: dict | None = None
    reason: str | None = None


class Cycle:  # pylint: disable=too-many-instance-attributes
    """A rolling cycle of one scale set. ``compute`` is an azure-mgmt-compute client; ``on_progress(text)``
    hears what happens; ``state_path`` records finished instances so ``resume`` can skip them."""

    def __init__(self, compute, resource_group, vmss_name, *, settings=CycleSettings(), state_path=None,
                 resume=False, on_progress=None, clock=time.monotonic, sleep=time.sleep, wall=time.time):
        self._compute = compute
        self.resource_group = resource_group
        self.vmss_name = vmss_name
        self.settings = settings
        self.state_path = state_path
        self.resume = resume
        self._progress = on_progress or (lambda text: None)
        self._required_score = None
        self._clock, self._sleep, self._wall = clock, sleep, wall

    # Reading ----------------------------------------------------------------------------------------------

    def _required(self):
        """The score that counts as healthy: 7, or 3 where the Application Health extension is absent."""
        with arm_errors(resource_group=self.resource_group, vmss_name=self.vmss_name):
            model = self._compute.virtual_machine_scale_sets.get(self.resource_group, self.vmss_name)
        profile = getattr(model, 'virtual_machine_profile', None)
        extensions = getattr(getattr(profile, 'extension_profile', None), 'extensions', None) or []
        has_extension = any('ApplicationHealth' in (getattr(e, 'type_properties_type', None) or '')
                            for e in extensions)
        mode = self.settings.health
        if mode == HealthMode.EXTENSION and not has_extension:
            raise PreflightError(f'scale set {self.vmss_name} has no Application Health extension '
                                 '(--health extension requires it)')
        if mode == HealthMode.NONE or not has_extension:
            if mode == HealthMode.AUTO:
                logger.warning('Scale set %s has no Application Health extension: healthy means provisioned and '
                               'running (score 3), not HealthState healthy.', self.vmss_name)
            return PROVISIONED | RUNNING, model.sku.capacity
        return HEALTHY, model.sku.capacity

    def _healths(self):
        """Every instance's health, from one list read. Throttling (429) and service errors (5xx) outlast the
        SDK's own few retries in a storm, so they are waited out here: Retry-After when given, within the
        per-instance timeout."""
        give_up_at = self._clock() + self.settings.timeout_in_seconds
        while True:
            try:
                with arm_errors(resource_group=self.resource_group, vmss_name=self.vmss_name):
                    vms = self._compute.virtual_machine_scale_set_vms.list(self.resource_group, self.vmss_name,
                                                                           expand='instanceView')
                    return {vm.instance_id: InstanceHealth.from_vm(vm) for vm in vms}
            except ArmError as ex:
                if ex.status not in RETRIABLE_STATUSES or self._clock() >= give_up_at:
                    raise
                delay = ex.retry_after or self.settings.poll_max_in_seconds
                logger.info('Compute answered %s; reading again in %.1f s', ex.status, delay)
                self._sleep(delay)

    def _targets(self, healths, instance_ids):
        if not instance_ids:
            return sorted(healths, key=_numeric)
        missing = sorted(set(map(str, instance_ids)) - set(healths), key=_numeric)
        if missing:
            raise TargetNotFoundError(f'scale set {self.vmss_name} has no instance {", ".join(missing)}',
                                      resource_group=self.resource_group, vmss_name=self.vmss_name)
        return [str(i) for i in instance_ids]

    # Planning ---------------------------------------------------------------------------------------------

    def plan(self, instance_ids=None):
        """What ``run`` would do, from reads alone: order, batches, the lowest healthy count, skips."""
        required, capacity = self._required()
        healths = self._healths()
        targets = self._targets(healths, instance_ids)
        finished = self._finished() if self.resume else set()
        healthy = [i for i, h in healths.items() if h.is_healthy(required)]
        order, skipped = [], []
        for instance_id in targets:
            if instance_id in finished:
                skipped.append({'instanceId': instance_id, 'reason': 'finished before (--resume)'})
            elif not healths[instance_id].is_healthy(required) and not self.settings.ignore_initial_health:
                skipped.append({'instanceId': instance_id, 'reason': _below(healths[instance_id], required)})
            else:
                order.append(instance_id)
        scale_out = len(healthy) < 2 and not self.settings.ignore_availability
        step = self.settings.max_unavailable
        return {
            'scaleSet': self.vmss_name, 'action': self.settings.action, 'requiredScore': required,
            'capacity': capacity, 'healthyNow': len(healthy), 'scaleOutFirst': scale_out,
            'order': order, 'batches': [order[i:i + step] for i in range(0, len(order), step)],
            'lowestHealthyPredicted': max(0, len(healthy) + (1 if scale_out else 0) - step),
            'skipped': skipped,
            'wouldStop': [s for s in skipped if 'finished before' not in s['reason']],
        }

    # Running ----------------------------------------------------------------------------------------------

    def run(self, instance_ids=None):
        """Cycle the instances; returns the report, or raises ``CycleError`` carrying it."""
        required, capacity = self._required()
        self._required_score = required
        healths = self._healths()
        targets = self._targets(healths, instance_ids)
        finished = self._finished() if self.resume else set()
        reports = {i: InstanceReport(i, healths[i].name) for i in targets}
        for instance_id in finished & set(targets):
            reports[instance_id].result = CycleResult.DONE_BEFORE_RESUME
        todo = [i for i in targets if i not in finished]
        if not self.settings.ignore_initial_health:
            unhealthy = [i for i in todo if not healths[i].is_healthy(required)]
            if unhealthy:
                raise PreflightError('not every targeted instance is healthy: ' + '; '.join(
                    f'{healths[i].name} {_below(healths[i], required)}' for i in unhealthy) +
                    '. Nothing was changed.', report=self._report(reports, None))
        added, scaled_from = [], None
        healthy_count = sum(1 for h in healths.values() if h.is_healthy(required))
        try:
            if healthy_count < 2 and not self.settings.ignore_availability and todo:
                scaled_from = set(healths)
                added = self._scale_out(capacity, scaled_from)
                self._wait_healthy(added[0], required)
                healths = None
            self._roll(todo, reports, required, healths)
        except KeyboardInterrupt:
            self._stop_report(reports, 'interrupted')
            raise
        finally:
            if scaled_from is not None:
                # Whatever happened, even an interruption during the scale-out: what it added goes again.
                for instance_id in added or sorted(set(self._healths()) - scaled_from, key=_numeric):
                    self._scale_back(instance_id)
        return self._report(reports, added)

    def _roll(self, todo, reports, required, healths=None):  # pylint: disable=too-many-statements
        """Send, watch, move on. ``healths``: the reading just taken, if still current (saves one read)."""
        queue = list(todo)
        in_flight = {}          # instance id -> (started clock, seen below the required score)
        delay = self.settings.poll_min_in_seconds
        last_started = blocked_since = None
        while queue or in_flight:
            healths = healths or self._healths()
            changed = False
            for instance_id, (started, seen_drop) in list(in_flight.items()):
                health = healths.get(instance_id)
                report = reports[instance_id]
                if health is None:
                    raise self._stopped(reports, instance_id, CycleResult.FAILED,
                                        'the instance disappeared during its action')
                report.score, report.parts = health.score, health.parts()
                if not health.is_healthy(required) and not seen_drop:
                    in_flight[instance_id] = (started, True)
                    seen_drop = changed = True
                if (health.provisioning_state or '').lower() == 'failed':
                    reason = f'the {self.settings.action} failed (ProvisioningState {health.provisioning_state})'
                    raise self._stopped(reports, instance_id, CycleResult.FAILED, reason)
                # Healthy again after having been seen below the score: the action really happened. A
                # reimage, restart or redeploy takes far longer than one poll, so the dip is always seen.
                if health.is_healthy(required) and seen_drop:
                    report.result, report.ended = CycleResult.HEALTHY, iso_utc(self._wall())
                    report.seconds_to_healthy = round(self._clock() - started, 1)
                    del in_flight[instance_id]
                    self._record_finished(instance_id)
                    self._progress(f'{report.name}: healthy after {report.seconds_to_healthy:g} s')
                    changed = True
                elif self._clock() - started > self.settings.timeout_in_seconds:
                    raise self._stopped(reports, instance_id, CycleResult.TIMEOUT,
                                        f'not healthy {self.settings.timeout_in_seconds:g} s after the '
                                        f'{self.settings.action} was sent ({_below(health, required)})')
            unavailable = sum(1 for h in healths.values() if not h.is_healthy(required))
            unavailable = max(unavailable, len(in_flight))
            while queue and len(in_flight) < self.settings.max_unavailable:
                if last_started is not None and self._clock() - last_started < self.settings.pause_in_seconds:
                    break
                instance_id = self._next(queue, healths, required)
                health = healths.get(instance_id)
                report = reports[instance_id]
                if health is None:
                    queue.remove(instance_id)
                    report.result, report.reason = CycleResult.SKIPPED, 'the instance no longer exists'
                    self._progress(f'{report.name}: skipped, it no longer exists')
                    continue
                # An instance already below the score adds nothing to what is unavailable by being cycled.
                adds = health.is_healthy(required)
                if (adds and unavailable >= self.settings.max_unavailable) or \
                        (not adds and not self.settings.ignore_initial_health):
                    break
                queue.remove(instance_id)
                self._send(instance_id)
                last_started = self._clock()
                in_flight[instance_id] = (last_started, not adds)
                report.result, report.action = CycleResult.IN_PROGRESS, self.settings.action
                report.started = iso_utc(self._wall())
                unavailable += adds
                changed = True
                self._progress(f'{report.name}: {self.settings.action} sent')
            if in_flight or changed or not queue:
                blocked_since = None
            elif blocked_since is None:
                blocked_since = self._clock()
            elif self._clock() - blocked_since > self.settings.timeout_in_seconds:
                below = ', '.join(h.name for h in healths.values() if not h.is_healthy(required))
                raise self._stopped(reports, queue[0], CycleResult.SKIPPED,
                                    f'waited {self.settings.timeout_in_seconds:g} s for {below} to be healthy '
                                    'again before starting')
            if not queue and not in_flight:
                break
            delay = self.settings.poll_min_in_seconds if changed else \
                min(delay * 1.5, self.settings.poll_max_in_seconds)
            self._sleep(delay)
            healths = None

    def _next(self, queue, healths, required):
        """The next instance to cycle: in order, but with --ignore-initial-health the ones already below
        the score first, so that they do not hold up every other instance."""
        if self.settings.ignore_initial_health:
            for instance_id in queue:
                if instance_id in healths and not healths[instance_id].is_healthy(required):
                    return instance_id
        return queue[0]

    def _send(self, instance_id):
        """The action for exactly one instance, by the per-instance endpoint. The operation is not polled:
        the instance views the cycle reads anyway show its progress, and its failure (ProvisioningState
        failed), at no extra ARM read."""
        operations = self._compute.virtual_machine_scale_set_vms
        with arm_errors(resource_group=self.resource_group, vmss_name=self.vmss_name):
            getattr(operations, f'begin_{self.settings.action}')(self.resource_group, self.vmss_name, instance_id,
                                                                 polling=False)

    def _scale_out(self, capacity, before):
        """Grow by one; returns the ids of the instances that appeared (one)."""
        self._progress(f'fewer than two healthy instances: scaling {self.vmss_name} out to {capacity + 1}')
        with arm_errors(resource_group=self.resource_group, vmss_name=self.vmss_name):
            self._compute.virtual_machine_scale_sets.begin_update(
                self.resource_group, self.vmss_name, {'sku': {'capacity': capacity + 1}},
                polling_interval=self.settings.poll_min_in_seconds).result()
        new = sorted(set(self._healths()) - before, key=_numeric)
        if not new:
            raise CycleError(f'scaling {self.vmss_name} out to {capacity + 1} added no instance')
        return new

    def _wait_healthy(self, instance_id, required):
        started = self._clock()
        while True:
            health = self._healths().get(instance_id)
            if health is not None and health.is_healthy(required):
                self._progress(f'{health.name} added and healthy')
                return
            if self._clock() - started > self.settings.timeout_in_seconds:
                raise CycleError(f'instance {instance_id}, added for availability, was not healthy within '
                                 f'{self.settings.timeout_in_seconds:g} s; nothing was cycled')
            self._sleep(self.settings.poll_min_in_seconds)

    def _scale_back(self, instance_id):
        """Delete exactly the instance the scale-out added, so capacity returns to what it was."""
        self._progress(f'deleting instance {instance_id}, added for availability')
        try:
            self._compute.virtual_machine_scale_set_vms.begin_delete(
                self.resource_group, self.vmss_name, instance_id,
                polling_interval=self.settings.poll_min_in_seconds).result()
        except Exception as ex:  # pylint: disable=broad-except
            # The cycle's own outcome must still be reported; the leftover instance is named.
            logger.error('Could not delete instance %s added for availability: %s. Delete it with: az vmss '
                         'delete-instances -g %s -n %s --instance-ids %s', instance_id, ex, self.resource_group,
                         self.vmss_name, instance_id)

    # State and report -------------------------------------------------------------------------------------

    def _finished(self):
        if not self.state_path or not os.path.exists(self.state_path):
            return set()
        with open(self.state_path, encoding='utf-8') as handle:
            state = json.load(handle)
        if state.get('scaleSet') != [self.resource_group, self.vmss_name] or state.get('action') != \
                self.settings.action:
            raise PreflightError(f'state file {self.state_path} belongs to another cycle '
                                 f'({state.get("scaleSet")}, {state.get("action")})')
        return set(state.get('finished', []))

    def _record_finished(self, instance_id):
        if not self.state_path:
            return
        finished = sorted(self._finished() | {instance_id}, key=_numeric)
        write_atomic(self.state_path, json.dumps({'scaleSet': [self.resource_group, self.vmss_name],
                                                  'action': self.settings.action, 'finished': finished}).encode())

    def _stopped(self, reports, instance_id, result, reason):
        report = reports[instance_id]
        report.result, report.reason, report.ended = result, reason, iso_utc(self._wall())
        self._stop_report(reports, 'the cycle stopped before reaching it')
        message = (f'{report.name}: {reason}. The cycle stopped; instances after it were not touched. '
                   f'Look at it with: az vmss get-instance-view -g {self.resource_group} -n {self.vmss_name} '
                   f'--instance-id {instance_id}')
        return CycleError(message, report=self._report(reports, None))

    @staticmethod
    def _stop_report(reports, reason):
        for report in reports.values():
            if report.result == CycleResult.PENDING:
                report.result, report.reason = CycleResult.SKIPPED, reason

    def _report(self, reports, added):
        rows = [asdict(r) for r in reports.values()]
        done = [r for r in reports.values() if r.result == CycleResult.HEALTHY]
        return {
            'scaleSet': self.vmss_name, 'resourceGroup': self.resource_group, 'action': self.settings.action,
            'requiredScore': self._required_score, 'instances': rows,
            'totals': {'targeted': len(rows), 'cycled': len(done),
                       'skipped': sum(1 for r in reports.values()
                                      if r.result in (CycleResult.SKIPPED, CycleResult.DONE_BEFORE_RESUME)),
                       'failed': sum(1 for r in reports.values()
                                     if r.result in (CycleResult.FAILED, CycleResult.TIMEOUT)),
                       'secondsToHealthyMax': max((r.seconds_to_healthy for r in done), default=None)},
            'scaledOutInstances': added or [],
        }


def _below(health, required):
    return (f'scores {health.score}, needs {required} (ProvisioningState {health.provisioning_state}, '
            f'PowerState {health.power_state}, HealthState {health.health_state})')


def _numeric(instance_id):
    return (0, int(instance_id)) if str(instance_id).isdigit() else (1, str(instance_id))
