# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""One step of the cycle's loop as a pure decision: from what is under way, one reading of every
instance, the maintenance under way and the time, to the next state and the actions to carry out. No I/O
here, so the admission rules (max-unavailable, zones, maintenance, pause) are table-tested as they are.

    state, actions = decide(state, readings, maintenance, now, rules)
    # actions: RunHook, Send, Finished, Skipped, Stop; the loop carries them out in order

The rules, for an instance to be taken:
- fewer than ``max_unavailable`` instances are taken, and the pause since the last one has passed;
- counting every instance below the required score, every one taken and every one a Started event names,
  taking this one (unless it is already counted) keeps that count within ``max_unavailable``;
- it is itself healthy (one that dropped for another reason is waited for), unless initial health is
  ignored; it is not under a Started event (it is held back, the next one goes first);
- with ``zone_by_zone``, no instance of another zone is in that count.
An instance taken is done when it was seen below the score after its action and is healthy again (and its
after-script passed); the first failure stops the whole cycle.
"""

from dataclasses import dataclass, field, replace

from ..vocabulary import CyclePhase, CycleResult, EventStatus, HookKind


@dataclass(frozen=True)
class Rules:  # pylint: disable=too-many-instance-attributes
    """What the decision needs of the settings and the plan."""

    required_score: int
    max_unavailable: int = 1
    pause_in_seconds: float = 0.0
    timeout_in_seconds: float = 1800.0
    ignore_initial_health: bool = False
    zone_by_zone: bool = False
    before_script: bool = False
    after_script: bool = False
    action: str = 'reimage'


@dataclass(frozen=True)
class Taken:
    """An instance the cycle has taken: its phase, when it began, and the hook that ended in it (if any)."""

    phase: CyclePhase
    since: float
    sent_at: float | None = None
    seen_below: bool = False
    hook: object = None                 # HookRun, once this phase's hook has ended


@dataclass(frozen=True)
class RollState:
    queue: tuple                        # instance ids not taken yet, in order
    taken: dict = field(default_factory=dict)     # instance id -> Taken
    last_started: float | None = None
    blocked_since: float | None = None

    def with_hook(self, instance_id, run):
        """The state once ``instance_id``'s hook has ended with ``run``."""
        return replace(self, taken={**self.taken, instance_id: replace(self.taken[instance_id], hook=run)})


@dataclass(frozen=True)
class RunHook:
    """Start the hook of this kind on the instance (through Run Command)."""

    instance_id: str
    kind: HookKind


@dataclass(frozen=True)
class Send:
    """Send the action to the instance, and to it alone."""

    instance_id: str


@dataclass(frozen=True)
class Finished:
    """The instance is done: healthy again (and its after-script passed)."""

    instance_id: str
    seconds_to_healthy: float


@dataclass(frozen=True)
class Skipped:
    """The instance is left out (it no longer exists); the cycle goes on."""

    instance_id: str
    reason: str


@dataclass(frozen=True)
class Stop:
    """The cycle stops here: this instance ends with ``result``; nothing more starts."""

    instance_id: str
    result: CycleResult
    reason: str


def decide(state, readings, maintenance, now, rules):
    """-> (the next ``RollState``, [actions]). ``readings``: {id: InstanceReading} of every instance that
    exists; ``maintenance``: {id: EventStatus} of the instances events name."""
    taken, actions = dict(state.taken), []
    for instance_id, item in state.taken.items():
        outcome = _follow(instance_id, item, readings.get(instance_id), now, rules)
        if isinstance(outcome, Stop):
            return replace(state, taken=taken), [a for a in actions if isinstance(a, Finished)] + [outcome]
        next_item, new_actions = outcome
        if next_item is None:
            del taken[instance_id]
        else:
            taken[instance_id] = next_item
        actions += new_actions
    queue, last_started = list(state.queue), state.last_started
    unavailable = _unavailable(readings, maintenance, taken, rules)
    while queue and len(taken) < rules.max_unavailable:
        if last_started is not None and now - last_started < rules.pause_in_seconds:
            break
        instance_id = _candidate(queue, readings, maintenance, rules)
        if instance_id is None:
            break
        reading = readings.get(instance_id)
        if reading is None:
            queue.remove(instance_id)
            actions.append(Skipped(instance_id, 'the instance no longer exists'))
            continue
        if not _admits(instance_id, reading, readings, unavailable, rules):
            break
        queue.remove(instance_id)
        healthy = reading.health.is_healthy(rules.required_score)
        if rules.before_script:
            taken[instance_id] = Taken(CyclePhase.BEFORE_SCRIPT, now, seen_below=not healthy)
            actions.append(RunHook(instance_id, HookKind.BEFORE))
        else:
            taken[instance_id] = Taken(CyclePhase.ACTION_SENT, now, sent_at=now, seen_below=not healthy)
            actions.append(Send(instance_id))
        unavailable.add(instance_id)
        last_started = now
    blocked_since = None
    if queue and not taken and not actions:
        blocked_since = state.blocked_since if state.blocked_since is not None else now
        if now - blocked_since > rules.timeout_in_seconds:
            return replace(state, taken=taken), [Stop(queue[0], CycleResult.SKIPPED, _waited(
                readings, maintenance, rules))]
    return RollState(tuple(queue), taken, last_started, blocked_since), actions


def _follow(instance_id, item, reading, now, rules):
    """One taken instance -> (its next ``Taken`` or None when done, [actions]), or a ``Stop``."""
    if item.phase == CyclePhase.BEFORE_SCRIPT:
        return _after_before_script(instance_id, item, reading, now, rules)
    if reading is None:
        return Stop(instance_id, CycleResult.FAILED, 'the instance disappeared during its action')
    if item.phase == CyclePhase.AFTER_SCRIPT:
        return _after_after_script(instance_id, item, rules)
    return _after_action(instance_id, item, reading.health, now, rules)


def _after_before_script(instance_id, item, reading, now, rules):
    if item.hook is None:
        return item, []
    if not item.hook.ok:
        return Stop(instance_id, CycleResult.FAILED, f'{item.hook.reason}; the instance was not touched')
    if reading is None:
        return Stop(instance_id, CycleResult.FAILED, 'the instance disappeared during its before-script')
    # Below the score when its action is sent, not when its script began: only then is a dip still to come.
    below = not reading.health.is_healthy(rules.required_score)
    return Taken(CyclePhase.ACTION_SENT, now, sent_at=now, seen_below=below), [Send(instance_id)]


def _after_after_script(instance_id, item, rules):
    if item.hook is None:
        return item, []
    if not item.hook.ok:
        return Stop(instance_id, CycleResult.FAILED, f'{item.hook.reason} after the {rules.action}')
    return None, [Finished(instance_id, round(item.since - item.sent_at, 1))]


def _after_action(instance_id, item, health, now, rules):
    if (health.provisioning_state or '').lower() == 'failed':
        return Stop(instance_id, CycleResult.FAILED,
                    f'the {rules.action} failed (ProvisioningState {health.provisioning_state})')
    healthy = health.is_healthy(rules.required_score)
    # Healthy again after having been seen below the score: the action really happened. A reimage, restart,
    # redeploy or update takes far longer than one poll, so the dip is always seen.
    if healthy and item.seen_below:
        if rules.after_script:
            return Taken(CyclePhase.AFTER_SCRIPT, now, sent_at=item.sent_at), [RunHook(instance_id, HookKind.AFTER)]
        return None, [Finished(instance_id, round(now - item.sent_at, 1))]
    if now - item.sent_at > rules.timeout_in_seconds:
        state = health.shortfall(rules.required_score) if not healthy else \
            f'never seen below the score: the {rules.action} did not show'
        return Stop(instance_id, CycleResult.TIMEOUT, f'not healthy {rules.timeout_in_seconds:g} s after the '
                    f'{rules.action} was sent ({state})')
    return replace(item, seen_below=item.seen_below or not healthy), []


def _unavailable(readings, maintenance, taken, rules):
    """Every instance that counts against ``max_unavailable`` now."""
    below = {i for i, r in readings.items() if not r.health.is_healthy(rules.required_score)}
    started = {i for i, s in maintenance.items() if s == EventStatus.STARTED and i in readings}
    return below | started | set(taken)


def _candidate(queue, readings, maintenance, rules):
    """The next instance to take: in order, but not one under a Started event (held back until it leaves);
    with ``ignore_initial_health``, those already below the score first, so they hold up nobody."""
    free = [i for i in queue if maintenance.get(i) != EventStatus.STARTED]
    if rules.ignore_initial_health:
        for instance_id in free:
            if instance_id in readings and not readings[instance_id].health.is_healthy(rules.required_score):
                return instance_id
    return free[0] if free else None


def _admits(instance_id, reading, readings, unavailable, rules):
    healthy = reading.health.is_healthy(rules.required_score)
    if not healthy and not rules.ignore_initial_health:
        return False                    # it dropped for another reason since the plan: wait for it
    # An instance already counted adds nothing to what is unavailable by being taken.
    if instance_id not in unavailable and len(unavailable) >= rules.max_unavailable:
        return False
    if rules.zone_by_zone:
        zones = {readings[i].zone for i in unavailable if i in readings}
        if zones - {reading.zone}:
            return False
    return True


def _waited(readings, maintenance, rules):
    below = [r.name for r in readings.values() if not r.health.is_healthy(rules.required_score)]
    under = [readings[i].name for i, s in maintenance.items() if s == EventStatus.STARTED and i in readings]
    waiting = [f'{", ".join(below)} to be healthy again'] if below else []
    waiting += [f'the maintenance of {", ".join(under)} to end'] if under else []
    return f'waited {rules.timeout_in_seconds:g} s for {" and ".join(waiting) or "a free slot"} before starting'
