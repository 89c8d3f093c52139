# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The plan of a cycle, from reads alone: which instances, in which order (zone by zone where asked),
which are skipped and why, which are under maintenance, which hooks run. ``--dry-run`` prints it; ``run``
consumes it, so the pre-flight is written once.

    plan = make_plan(scale_set, settings, readings, required_score=7, capacity=5, hooks=hooks)
    plan.check()                    # PreflightError unless every targeted instance is healthy
    plan.to_view()                  # what --dry-run prints
"""

from dataclasses import dataclass, field

from ..config import CycleSettings
from ..errors import PreflightError, TargetNotFoundError
from ..vocabulary import CycleResult, EventStatus
from .readings import numeric


@dataclass(frozen=True)
class ScaleSetRef:
    """Which scale set is cycled."""

    resource_group: str
    name: str


@dataclass(frozen=True)
class Skip:
    """An instance the plan leaves out, why, and what the report says of it."""

    instance_id: str
    reason: str
    result: CycleResult = CycleResult.SKIPPED
    stops: bool = False          # the pre-flight refuses to start while it holds


@dataclass(frozen=True)
class CyclePlan:  # pylint: disable=too-many-instance-attributes
    """Everything ``run`` needs decided before it sends anything."""

    scale_set: ScaleSetRef
    settings: CycleSettings
    required_score: int
    capacity: int
    healthy_now: int
    order: tuple                        # instance ids to cycle, in order
    targeted: dict                      # instance id -> InstanceReading, cycled or skipped
    skipped: tuple = ()                 # Skip
    maintenance: dict = field(default_factory=dict)     # instance id -> EventStatus at planning
    hooks: tuple = ()                   # Hook

    @property
    def zones(self):
        """Instance id -> zone (None where the scale set is not zonal)."""
        return {i: r.zone for i, r in self.targeted.items()}

    @property
    def outdated(self):
        """The targeted instances not on the latest model."""
        return sorted((i for i, r in self.targeted.items() if r.latest_model is False), key=numeric)

    @property
    def scale_out_first(self):
        """Fewer than two healthy instances: one is added first (and deleted at the end)."""
        return self.healthy_now < 2 and not self.settings.ignore_availability and bool(self.order)

    @property
    def batches(self):
        """The order cut into groups of ``max_unavailable``, never across zones with --zone-by-zone."""
        step, zones, batches, batch = self.settings.max_unavailable, self.zones, [], []
        for instance_id in self.order:
            if batch and (len(batch) >= step or (self.settings.zone_by_zone and zones[batch[0]] != zones[instance_id])):
                batches.append(batch)
                batch = []
            batch.append(instance_id)
        return batches + ([batch] if batch else [])

    def check(self):
        """Refuse to start (changing nothing) while a skip that stops holds."""
        stopping = [s for s in self.skipped if s.stops]
        if stopping:
            raise PreflightError('not every targeted instance is healthy: ' + '; '.join(
                f'{self.name_of(s.instance_id)} {s.reason}' for s in stopping) + '. Nothing was changed.')

    def name_of(self, instance_id):
        return self.targeted[instance_id].name

    def to_view(self):
        step = self.settings.max_unavailable
        under = sorted((i for i, s in self.maintenance.items() if s == EventStatus.STARTED), key=numeric)
        return {
            'scaleSet': self.scale_set.name, 'action': self.settings.action, 'requiredScore': self.required_score,
            'capacity': self.capacity, 'healthyNow': self.healthy_now, 'scaleOutFirst': self.scale_out_first,
            'order': list(self.order), 'batches': self.batches,
            'zones': self.zones if any(self.zones.values()) else None,
            'zoneByZone': self.settings.zone_by_zone,
            'outdated': self.outdated,
            'lowestHealthyPredicted': max(0, self.healthy_now + (1 if self.scale_out_first else 0) - step),
            'hooks': {str(h.kind): h.source for h in self.hooks},
            'underMaintenance': under,
            'scheduledMaintenance': sorted((i for i, s in self.maintenance.items()
                                            if s == EventStatus.SCHEDULED), key=numeric),
            'skipped': [{'instanceId': s.instance_id, 'reason': s.reason} for s in self.skipped],
            'wouldStop': [{'instanceId': s.instance_id, 'reason': s.reason} for s in self.skipped if s.stops],
        }


def make_plan(scale_set, settings, readings, *, required_score, capacity, instance_ids=None, finished=(),
              maintenance=None, hooks=()):
    """The plan from one reading of every instance (``{id: InstanceReading}``); ``finished``: ids a
    resumed cycle did before; ``maintenance``: ``{id: EventStatus}`` where events name instances."""
    targets = _targets(scale_set, readings, instance_ids)
    order, skipped = [], []
    for instance_id in targets:
        reading = readings[instance_id]
        if instance_id in finished:
            skipped.append(Skip(instance_id, 'finished before (--resume)', CycleResult.DONE_BEFORE_RESUME))
        elif settings.skips_up_to_date and reading.latest_model:
            skipped.append(Skip(instance_id, 'up to date: already on the latest model (--include-up-to-date '
                                             'cycles it too)', CycleResult.UP_TO_DATE))
        elif not reading.health.is_healthy(required_score) and not settings.ignore_initial_health:
            skipped.append(Skip(instance_id, reading.health.shortfall(required_score), stops=True))
        else:
            order.append(instance_id)
    if settings.zone_by_zone:
        # Zones in order, instances by id within each; an instance of no zone goes last.
        zones = {i: readings[i].zone for i in order}
        order.sort(key=lambda i: (zones[i] is None, numeric(zones[i] or ''), numeric(i)))
    return CyclePlan(
        scale_set=scale_set, settings=settings, required_score=required_score, capacity=capacity,
        healthy_now=sum(1 for r in readings.values() if r.health.is_healthy(required_score)),
        order=tuple(order), targeted={i: readings[i] for i in targets}, skipped=tuple(skipped), hooks=tuple(hooks),
        maintenance={i: s for i, s in (maintenance or {}).items() if i in readings})


def _targets(scale_set, readings, instance_ids):
    if not instance_ids:
        return sorted(readings, key=numeric)
    missing = sorted(set(map(str, instance_ids)) - set(readings), key=numeric)
    if missing:
        raise TargetNotFoundError(f'scale set {scale_set.name} has no instance {", ".join(missing)}',
                                  resource_group=scale_set.resource_group, vmss_name=scale_set.name)
    return [str(i) for i in instance_ids]
