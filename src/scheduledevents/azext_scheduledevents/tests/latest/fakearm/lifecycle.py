# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""How the fake's instances move through real states over time, the ledger of how many were below a
health score of 7 at every moment, and the history of what was done to them, in time order.

A reimage, for example: ProvisioningState Updating and PowerState stopped at once, PowerState starting a
little before the operation ends, then Succeeded and running with HealthState initializing, and healthy
``health_delay`` seconds later. Changes are applied when a request looks, in time order. A reimage or an update
(manual upgrade) that succeeds brings the instance to the model the scale set had when it started.
"""

import threading
import time
from dataclasses import dataclass, field

from azext_scheduledevents.core.health import HEALTHY, health_score


@dataclass(frozen=True, kw_only=True)
class Timings:
    """Seconds each simulated operation takes (real Azure: minutes; tests compress them)."""

    reimage: float = 1.0
    restart: float = 0.5
    redeploy: float = 1.0
    update: float = 1.0
    create: float = 1.0
    delete: float = 0.3
    health_delay: float = 0.5


@dataclass
class Lifecycle:
    """One instance's states and the changes scheduled for it: ``[(at, {attribute: value}), ...]``."""

    provisioning_state: str = 'Succeeded'
    power_state: str = 'running'
    health_state: str | None = None          # None: the scale set has no Application Health extension
    never_healthy: bool = False              # after an operation, health stays 'unhealthy'
    fail_next_operation: bool = False        # the next operation ends Failed
    model_version: int = 0                   # the scale set's model version this instance runs
    pending: list = field(default_factory=list)

    @property
    def score(self):
        return health_score(self.provisioning_state, self.power_state, self.health_state)

    def is_healthy(self):
        required = HEALTHY if self.health_state is not None else HEALTHY & ~4
        return self.score & required == required

    def operate(self, now, duration, health_delay, *, power_during='stopped', model_version=None):
        """Start an operation: returns (when it ends, whether it succeeds). ``model_version``: the model the
        instance runs once the operation has succeeded (None: it keeps its own)."""
        failed = self.fail_next_operation
        self.fail_next_operation = False
        has_health = self.health_state is not None
        self.provisioning_state, self.power_state = 'Updating', power_during
        if has_health:
            self.health_state = 'unknown'
        end = now + duration
        self.pending = [(now + duration * 0.8, {'power_state': 'starting'})]
        if failed:
            self.pending.append((end, {'provisioning_state': 'Failed', 'power_state': 'stopped'}))
            return end, False
        self.pending.append((end, {'provisioning_state': 'Succeeded', 'power_state': 'running',
                                   **({'health_state': 'initializing'} if has_health else {}),
                                   **({'model_version': model_version} if model_version is not None else {})}))
        if has_health:
            self.pending.append((end + health_delay,
                                 {'health_state': 'unhealthy' if self.never_healthy else 'healthy'}))
        return end, True

    def due(self, now):
        """Apply the changes due by ``now``; True when anything changed."""
        ready = sorted((c for c in self.pending if c[0] <= now), key=lambda c: c[0])
        self.pending = [c for c in self.pending if c[0] > now]
        for _, changes in ready:
            for name, value in changes.items():
                setattr(self, name, value)
        return bool(ready)


class Ledger:
    """How many instances were below 7 (or below 3 where health cannot be seen), each time that changed."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.entries = []          # (time, below, {instance: score})

    def record(self, lifecycles):
        """``lifecycles``: {instance name: Lifecycle} of every instance that exists now."""
        below = sorted(name for name, life in lifecycles.items() if not life.is_healthy())
        with self._lock:
            if not self.entries or self.entries[-1][1] != below:
                self.entries.append((self._clock(), below, {n: life.score for n, life in lifecycles.items()}))

    def max_below(self):
        with self._lock:
            return max((len(below) for _, below, _ in self.entries), default=0)


@dataclass(frozen=True)
class Happening:
    """One thing done to an instance: ``kind`` 'action' (``detail``: reimage, restart, redeploy, update or
    delete), 'run-command-start' (``detail``: {'script': text, 'parameters': {name: value}}) or 'run-command-end'
    (``detail``: the exit code, or the failure's message). ``at`` is on the ledger's clock."""

    at: float
    kind: str
    instance: str
    detail: object = None


class History:
    """What was done to which instance, in the order it happened: for tests of what ran before what."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.entries = []          # Happening, in time order

    def record(self, kind, instance, detail=None):
        with self._lock:
            happening = Happening(self._clock(), kind, instance, detail)
            self.entries.append(happening)
            return happening
