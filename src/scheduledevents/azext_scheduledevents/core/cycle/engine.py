# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The rolling cycle: reimage, restart, redeploy or update a scale set's instances a few at a time, each
drained by its before-script, never moving on until it is back and healthy by its score (see
``health.py``) and its after-script passed.

    plan = Cycle(compute, 'rg', 'web').plan()           # reads only (see plan.py)
    report = Cycle(compute, 'rg', 'web').run()          # CycleError (with .report) when it stops early

Each action goes to one instance: the per-instance endpoint, or for ``update`` the scale set's manual
upgrade with that one instance id, never to the whole scale set. An instance's timeout counts from the
moment its action is sent. Which instance is taken when is ``decide.py``'s; this loop reads, asks it, and
carries out what it says. When fewer than two instances are healthy, the scale set first grows by one, and
the instance it added is deleted again at the end: on success, failure, timeout and interruption alike.
"""

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import replace

from ..arm import RETRIABLE_STATUSES, arm_errors
from ..config import CycleSettings, FanoutSettings
from ..errors import ArmError, CycleError, PreflightError
from ..fleet import Fleet
from ..health import HEALTHY, PROVISIONED, RUNNING
from ..log import get_logger
from ..times import iso_utc
from ..vocabulary import CycleAction, CycleResult, HealthMode, HookKind
from .decide import Finished, Rules, RollState, RunHook, Send, Skipped, Stop, decide
from .hooks import HookRun, read_run
from .plan import ScaleSetRef, make_plan
from .readings import InstanceReading, numeric
from .report import InstanceReport, cycle_report
from .statefile import CycleStateFile

logger = get_logger(__name__)


class Cycle:  # pylint: disable=too-many-instance-attributes
    """A rolling cycle of one scale set. ``compute`` is an azure-mgmt-compute client; ``hooks`` the
    before- and after-script (``hooks.Hook``); ``maintenance()`` -> ``{instance id: EventStatus}`` where
    events name instances (None: maintenance is not looked at); ``on_progress(text)`` hears what happens;
    ``state_path`` records finished instances and hook attempts so ``resume`` can go on from there."""

    def __init__(self, compute, resource_group, vmss_name, *, settings=CycleSettings(), hooks=(), maintenance=None,
                 state_path=None, resume=False, on_progress=None, clock=time.monotonic, sleep=time.sleep,
                 wall=time.time):
        self._compute = compute
        self.scale_set = ScaleSetRef(resource_group, vmss_name)
        self.settings = settings
        self.hooks = {hook.kind: hook for hook in hooks}
        self._maintenance = maintenance
        self._state = CycleStateFile(state_path, resource_group, vmss_name, settings.action)
        self.resume = resume
        self._progress = on_progress or (lambda text: None)
        self._clock, self._sleep, self._wall = clock, sleep, wall
        self._fleet = Fleet(compute, resource_group, vmss_name=vmss_name, clock=clock, settings=FanoutSettings(
            max_parallel=1, instance_timeout_in_seconds=settings.hook_timeout_in_seconds))

    @property
    def _where(self):
        return {'resource_group': self.scale_set.resource_group, 'vmss_name': self.scale_set.name}

    # Reading ----------------------------------------------------------------------------------------------

    def _required(self):
        """(the score that counts as healthy, capacity): 7, or 3 where the Application Health extension is
        absent."""
        with arm_errors(**self._where):
            model = self._compute.virtual_machine_scale_sets.get(self.scale_set.resource_group, self.scale_set.name)
        profile = getattr(model, 'virtual_machine_profile', None)
        extensions = getattr(getattr(profile, 'extension_profile', None), 'extensions', None) or []
        has_extension = any('ApplicationHealth' in (getattr(e, 'type_properties_type', None) or '')
                            for e in extensions)
        mode = self.settings.health
        if mode == HealthMode.EXTENSION and not has_extension:
            raise PreflightError(f'scale set {self.scale_set.name} has no Application Health extension '
                                 '(--health extension requires it)')
        if mode == HealthMode.NONE or not has_extension:
            if mode == HealthMode.AUTO:
                logger.warning('Scale set %s has no Application Health extension: healthy means provisioned and '
                               'running (score 3), not HealthState healthy.', self.scale_set.name)
            return PROVISIONED | RUNNING, model.sku.capacity
        return HEALTHY, model.sku.capacity

    def _readings(self):
        """Every instance, from one list read. Throttling (429) and service errors (5xx) outlast the SDK's
        own few retries in a storm, so they are waited out here: Retry-After when given, within the
        per-instance timeout."""
        give_up_at = self._clock() + self.settings.timeout_in_seconds
        while True:
            try:
                with arm_errors(**self._where):
                    vms = self._compute.virtual_machine_scale_set_vms.list(
                        self.scale_set.resource_group, self.scale_set.name, expand='instanceView')
                    return {vm.instance_id: InstanceReading.from_vm(vm) for vm in vms}
            except ArmError as ex:
                if ex.status not in RETRIABLE_STATUSES or self._clock() >= give_up_at:
                    raise
                delay = ex.retry_after or self.settings.poll_max_in_seconds
                logger.info('Compute answered %s; reading again in %.1f s', ex.status, delay)
                self._sleep(delay)

    def plan(self, instance_ids=None):
        """What ``run`` would do, from reads alone (``plan.CyclePlan``)."""
        return self._plan(instance_ids)[0]

    def _plan(self, instance_ids):
        """(the plan, the reading of every instance it was made from)."""
        required, capacity = self._required()
        finished = self._state.load().finished if self.resume else set()
        readings = self._readings()
        return make_plan(self.scale_set, self.settings, readings, required_score=required, capacity=capacity,
                         instance_ids=instance_ids, finished=finished,
                         maintenance=self._maintenance() if self._maintenance else None,
                         hooks=tuple(self.hooks.values())), readings

    # Running ----------------------------------------------------------------------------------------------

    def run(self, instance_ids=None):
        """Cycle the instances; returns the report, or raises ``CycleError`` carrying it."""
        plan, readings = self._plan(instance_ids)
        reports = {i: InstanceReport(i, r.name, r.zone, r.latest_model) for i, r in plan.targeted.items()}
        for skip in plan.skipped:
            if not skip.stops:
                reports[skip.instance_id].result, reports[skip.instance_id].reason = skip.result, skip.reason
        try:
            plan.check()
        except PreflightError as ex:
            raise PreflightError(str(ex), report=cycle_report(plan, reports, None)) from None
        added, scaled_from = [], None
        try:
            if plan.scale_out_first:
                scaled_from = set(plan.targeted)
                added = self._scale_out(plan.capacity, scaled_from)
                self._wait_healthy(added[0], plan.required_score)
                readings = None                 # the scale set has changed since
            self._roll(plan, reports, readings)
        except KeyboardInterrupt:
            _skip_pending(reports, 'interrupted')
            raise
        finally:
            if scaled_from is not None:
                # Whatever happened, even an interruption during the scale-out: what it added goes again.
                for instance_id in added or sorted(set(self._readings()) - scaled_from, key=numeric):
                    self._scale_back(instance_id)
        return cycle_report(plan, reports, added)

    def _roll(self, plan, reports, readings=None):
        """Read, decide, carry out, until every instance is done or one stops the cycle. ``readings``: the
        reading the plan was made from, while still current (it saves the first read)."""
        settings = self.settings
        rules = Rules(required_score=plan.required_score, max_unavailable=settings.max_unavailable,
                      pause_in_seconds=settings.pause_in_seconds, timeout_in_seconds=settings.timeout_in_seconds,
                      ignore_initial_health=settings.ignore_initial_health, zone_by_zone=settings.zone_by_zone,
                      before_script=HookKind.BEFORE in self.hooks, after_script=HookKind.AFTER in self.hooks,
                      action=str(settings.action))
        state = RollState(plan.order)
        maintenance, read_at, moved_on = plan.maintenance, self._clock(), False
        running = {}                    # future -> instance id
        delay, last_seen = settings.poll_min_in_seconds, {}
        pool = ThreadPoolExecutor(max_workers=settings.max_unavailable)
        try:
            while state.queue or state.taken:
                readings = readings or self._readings()
                if self._maintenance and state.queue and len(state.taken) < settings.max_unavailable and (
                        moved_on or self._clock() - read_at >= settings.maintenance_reread_in_seconds):
                    # Once per batch (and now and then while an event holds an instance back).
                    maintenance, read_at, moved_on = self._maintenance(), self._clock(), False
                before, seen = state, {i: readings[i].health for i in state.taken if i in readings}
                state, actions = decide(state, readings, maintenance, self._clock(), rules)
                # Read again soon after anything moved (a taken instance's state, a dip seen, a start or an
                # end), less often while nothing does.
                moved = actions or state.taken != before.taken or seen != last_seen
                last_seen = seen
                _note_scores(seen, reports)                      # also of those that just finished
                for action in actions:
                    if isinstance(action, Stop):
                        raise self._stopped(plan, reports, action)
                    moved_on |= isinstance(action, Finished)
                    future = self._carry_out(action, readings, reports, pool)
                    if future is not None:
                        running[future] = action.instance_id
                if not state.queue and not state.taken:
                    break
                delay = settings.poll_min_in_seconds if moved else min(delay * 1.5, settings.poll_max_in_seconds)
                state, readings = self._wait(state, running, reports, delay), None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _wait(self, state, running, reports, delay):
        """Wait ``delay`` before the next read, or less when a hook ends (it is acted on at once) -> the
        state with the hooks that ended."""
        if not running:
            self._sleep(delay)
            return state
        done, _ = wait(running, timeout=delay, return_when=FIRST_COMPLETED)
        for future in done:
            run, instance_id = future.result(), running.pop(future)
            reports[instance_id].hooks.setdefault(str(run.kind), []).append(run.to_view())
            self._progress(f'{reports[instance_id].name}: {run.kind} {"passed" if run.ok else "failed: " + run.reason}')
            state = state.with_hook(instance_id, run)
        return state

    def _carry_out(self, action, readings, reports, pool):
        """One action ``decide`` gave; returns the future of a hook it started."""
        report = reports[action.instance_id]
        if isinstance(action, Skipped):
            report.result, report.reason = CycleResult.SKIPPED, action.reason
            self._progress(f'{report.name}: skipped, {action.reason}')
            return None
        if isinstance(action, Finished):
            report.result, report.ended = CycleResult.HEALTHY, iso_utc(self._wall())
            report.seconds_to_healthy = action.seconds_to_healthy
            self._state.record_finished(action.instance_id)
            self._progress(f'{report.name}: healthy after {action.seconds_to_healthy:g} s')
            return None
        if report.started is None:
            report.result, report.started = CycleResult.IN_PROGRESS, iso_utc(self._wall())
        if isinstance(action, Send):
            self._send(action.instance_id)
            report.action = self.settings.action
            self._progress(f'{report.name}: {self.settings.action} sent')
            return None
        if isinstance(action, RunHook):
            attempt = self._state.next_attempt(action.instance_id, action.kind)
            self._progress(f'{report.name}: {action.kind} started (attempt {attempt})')
            return pool.submit(self._run_hook, readings[action.instance_id], self.hooks[action.kind], attempt)
        raise TypeError(f'not an action: {action!r}')

    def _run_hook(self, reading, hook, attempt):
        """One hook on one instance through Run Command -> its ``HookRun``; never raises for the instance's
        failures (they are the run's ``error``)."""
        environment = {'CYCLE_HOOK': str(hook.kind), 'CYCLE_ACTION': str(self.settings.action),
                       'CYCLE_INSTANCE_ID': reading.instance_id, 'CYCLE_INSTANCE_NAME': reading.name,
                       'CYCLE_ATTEMPT': str(attempt), 'CYCLE_SCALE_SET': self.scale_set.name,
                       'CYCLE_RESOURCE_GROUP': self.scale_set.resource_group}
        result, = self._fleet.run_scripts([reading.target], lambda target: hook.command(target.os_type, environment),
                                          lambda target, output: read_run(hook, attempt, output, 0.0))
        if not result.ok:
            return HookRun(hook.kind, attempt, error=result.error, seconds=result.seconds)
        return replace(result.answer, seconds=result.seconds)

    def _send(self, instance_id):
        """The action for exactly one instance. The operation is not polled: the instance views the cycle
        reads anyway show its progress, and its failure (ProvisioningState failed), at no extra ARM read."""
        if instance_id in ('', '*'):
            raise ValueError(f'not one instance: {instance_id!r}')
        group, name = self.scale_set.resource_group, self.scale_set.name
        with arm_errors(**self._where):
            if self.settings.action == CycleAction.UPDATE:
                self._compute.virtual_machine_scale_sets.begin_update_instances(
                    group, name, {'instance_ids': [instance_id]}, polling=False)
            else:
                getattr(self._compute.virtual_machine_scale_set_vms, f'begin_{self.settings.action}')(
                    group, name, instance_id, polling=False)

    def _scale_out(self, capacity, before):
        """Grow by one; returns the ids of the instances that appeared (one)."""
        self._progress(f'fewer than two healthy instances: scaling {self.scale_set.name} out to {capacity + 1}')
        with arm_errors(**self._where):
            self._compute.virtual_machine_scale_sets.begin_update(
                self.scale_set.resource_group, self.scale_set.name, {'sku': {'capacity': capacity + 1}},
                polling_interval=self.settings.poll_min_in_seconds).result()
        new = sorted(set(self._readings()) - before, key=numeric)
        if not new:
            raise CycleError(f'scaling {self.scale_set.name} out to {capacity + 1} added no instance')
        return new

    def _wait_healthy(self, instance_id, required):
        started = self._clock()
        while True:
            reading = self._readings().get(instance_id)
            if reading is not None and reading.health.is_healthy(required):
                self._progress(f'{reading.name} added and healthy')
                return
            if self._clock() - started > self.settings.timeout_in_seconds:
                raise CycleError(f'instance {instance_id}, added for availability, was not healthy within '
                                 f'{self.settings.timeout_in_seconds:g} s; nothing was cycled')
            self._sleep(self.settings.poll_min_in_seconds)

    def _scale_back(self, instance_id):
        """Delete exactly the instance the scale-out added, so capacity returns to what it was."""
        self._progress(f'deleting instance {instance_id}, added for availability')
        group, name = self.scale_set.resource_group, self.scale_set.name
        try:
            self._compute.virtual_machine_scale_set_vms.begin_delete(
                group, name, instance_id, polling_interval=self.settings.poll_min_in_seconds).result()
        except Exception as ex:  # pylint: disable=broad-except
            # The cycle's own outcome must still be reported; the leftover instance is named.
            logger.error('Could not delete instance %s added for availability: %s. Delete it with: az vmss '
                         'delete-instances -g %s -n %s --instance-ids %s', instance_id, ex, group, name, instance_id)

    def _stopped(self, plan, reports, stop):
        report = reports[stop.instance_id]
        report.result, report.reason, report.ended = stop.result, stop.reason, iso_utc(self._wall())
        _skip_pending(reports, 'the cycle stopped before reaching it')
        message = (f'{report.name}: {stop.reason}. The cycle stopped; instances after it were not touched. '
                   f'Look at it with: az vmss get-instance-view -g {self.scale_set.resource_group} -n '
                   f'{self.scale_set.name} --instance-id {stop.instance_id}')
        return CycleError(message, report=cycle_report(plan, reports, None))


def _note_scores(healths, reports):
    """The latest score of each instance under way (``{id: InstanceHealth}``), for the report."""
    for instance_id, health in healths.items():
        reports[instance_id].score, reports[instance_id].parts = health.score, health.parts()


def _skip_pending(reports, reason):
    for report in reports.values():
        if report.result == CycleResult.PENDING:
            report.result, report.reason = CycleResult.SKIPPED, reason
