# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The cycle's report: one row per targeted instance, with its hooks' runs and output, and the totals;
the JSON on stdout and the source of ``--junit``."""

from dataclasses import asdict, dataclass, field

from ..vocabulary import CycleResult

FAILURES = (CycleResult.FAILED, CycleResult.TIMEOUT)
SKIPS = (CycleResult.SKIPPED, CycleResult.UP_TO_DATE, CycleResult.DONE_BEFORE_RESUME)


@dataclass
class InstanceReport:  # pylint: disable=too-many-instance-attributes
    """One instance's part in the cycle, as the report shows it."""

    instance_id: str
    name: str
    zone: str | None = None
    latest_model_applied: bool | None = None
    result: CycleResult = CycleResult.PENDING
    action: str | None = None
    started: str | None = None
    ended: str | None = None
    seconds_to_healthy: float | None = None
    score: int | None = None
    parts: dict | None = None
    reason: str | None = None
    hooks: dict = field(default_factory=dict)           # hook kind -> [HookRun view, ...]

    def to_view(self):
        return asdict(self)


def cycle_report(plan, reports, added):
    """The whole report of a cycle from its plan, its ``{id: InstanceReport}`` and the instances added."""
    rows = list(reports.values())
    done = [r for r in rows if r.result == CycleResult.HEALTHY]
    return {
        'scaleSet': plan.scale_set.name, 'resourceGroup': plan.scale_set.resource_group,
        'action': plan.settings.action, 'requiredScore': plan.required_score,
        'instances': [r.to_view() for r in rows],
        'totals': {'targeted': len(rows), 'cycled': len(done),
                   'skipped': sum(1 for r in rows if r.result in SKIPS),
                   'upToDate': sum(1 for r in rows if r.result == CycleResult.UP_TO_DATE),
                   'failed': sum(1 for r in rows if r.result in FAILURES),
                   'secondsToHealthyMax': max((r.seconds_to_healthy for r in done), default=None)},
        'scaledOutInstances': added or [],
    }
