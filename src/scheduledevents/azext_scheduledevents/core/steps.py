# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The step runner: a transition's line, its commands in order and its notifications, each step at least
once until it finished and never again after.

Each step is saved as ``begun`` (with its attempt number) before it runs and with its outcome after. A
step that a crash cut off (``interrupted`` when the state was loaded) runs again, as attempt 2, 3...,
unless it is a command of a scheduled or rescheduled transition and NotBefore has passed: then it is
``late``, for good, and counts as not successful. Notifications carry a stable CloudEvents id (the
transition's key), so a receiver can drop the repeat a crash may cause.

    runner = StepRunner(store, commands={TransitionKind.SCHEDULED: [drain]}, sinks=[], settings=WatchSettings(),
                        vm_name='web_0', emit=print, stop=threading.Event())
    handlers_ok = runner.run(record, transition)
"""

import threading
from datetime import datetime, timezone

from .config import MIN_HANDLER_TIMEOUT_IN_SECONDS
from .events import ScheduledEvent
from .lines import transition_line
from .log import get_logger
from .vocabulary import StepStatus, TransitionKind
from .watchstats import WatchStats

logger = get_logger(__name__)

_BEFORE_NOT_BEFORE = (TransitionKind.SCHEDULED, TransitionKind.RESCHEDULED)


class StepRunner:  # pylint: disable=too-many-instance-attributes
    """Runs the steps of one transition at a time; ``emit`` takes each line, ``stop`` ends it between steps,
    ``stats`` (a ``WatchStats``) hears of every command run."""

    def __init__(self, store, *, commands, sinks, settings, vm_name, emit, stop, stats=None, now=None):
        self._store = store
        self._commands = commands
        self._sinks = sinks
        self._settings = settings
        self._vm_name = vm_name
        self._emit = emit
        self._stop = stop
        self._stats = stats or WatchStats()
        self._now = now or (lambda: datetime.now(timezone.utc))

    def run(self, record, transition):
        """Every step of ``transition``: True when each command finished with success, False when one did
        not, ``None`` when ``stop`` came before every step was taken (the rest runs after a restart)."""
        line = self.announce(record, transition)
        notifier = threading.Thread(target=self._notify, args=(record, transition, line), daemon=True)
        notifier.start()
        handlers_ok = self._run_commands(record, transition, line)
        notifier.join()
        if not all(transition.finished(step) for step in self.steps(transition.kind)):
            return None
        return handlers_ok

    def announce(self, record, transition):
        """Write the transition's line, once; returns the line (handlers and notifications carry it)."""
        line = transition_line(transition, vm_name=self._vm_name, now=self._now())
        if not transition.emitted:
            self._emit(line)
            self._store.update(record, setattr, transition, 'emitted', True)
        return line

    def steps(self, kind):
        """The names of a kind's steps; the name is how the state knows the step."""
        commands = [f'command:{i}:{h.name}' for i, h in enumerate(self._commands.get(kind, ()))]
        return commands + [sink.step for sink in self._sinks]

    def seconds_left(self, transition):
        """Seconds from now to the NotBefore of the event as the transition saw it (None: not set)."""
        return ScheduledEvent.from_wire(transition.event).seconds_until_not_before(self._now())

    def _run_commands(self, record, transition, line):
        all_ok = True
        for step, handler in zip(self.steps(transition.kind), self._commands.get(transition.kind, ())):
            attempt = self._begin(record, transition, step, command=True)
            if attempt is not None:
                left = self.seconds_left(transition)
                result = handler.run(dict(line, SecondsUntilNotBefore=left, attempt=attempt),
                                     timeout=self._timeout(transition, left))
                self._finish(record, transition, step, result.status)
                self._stats.handler_ran(transition.kind, result.status)
                log = logger.info if result.status == StepStatus.OK else logger.warning
                log('Handler %s for %s of %s %s after %.1f s (attempt %d).', handler.name, transition.kind,
                    line['EventId'], result.detail, result.seconds, attempt)
            if not transition.finished(step):
                return False
            all_ok &= transition.steps[step] == StepStatus.OK
        return all_ok

    def _notify(self, record, transition, line):
        for sink in self._sinks:
            if self._begin(record, transition, sink.step, command=False) is None:
                continue
            try:
                ok = sink.notify(line)
            except OSError as ex:
                logger.warning('Notification %s failed: %s', sink.step, ex)
                ok = False
            self._finish(record, transition, sink.step, StepStatus.OK if ok else StepStatus.FAILED)

    def _begin(self, record, transition, step, *, command):
        """Save the step as begun and return its attempt number; ``None`` when it must not run now: it
        finished, ``stop`` came, or (a command cut off by a crash) NotBefore has passed."""
        status = transition.steps.get(step)
        if transition.finished(step) or self._stop.is_set():
            return None
        if status == StepStatus.INTERRUPTED and command and transition.kind in _BEFORE_NOT_BEFORE:
            left = self.seconds_left(transition)
            if left is not None and left <= 0:
                logger.warning('Step %s of %s was cut off by a crash and NotBefore has passed: not run again.',
                               step, transition.key)
                self._finish(record, transition, step, StepStatus.LATE)
                return None
        attempt = transition.attempts.get(step, 0) + 1
        if attempt > 1:
            logger.warning('Step %s of %s was cut off by a crash: running it again (attempt %d).', step,
                           transition.key, attempt)

        def begin():
            transition.steps[step] = StepStatus.BEGUN
            transition.attempts[step] = attempt
        self._store.update(record, begin)
        return attempt

    def _finish(self, record, transition, step, status):
        self._store.update(record, transition.steps.__setitem__, step, status)

    def _timeout(self, transition, left):
        """The handler's limit: --handler-timeout, and for a Scheduled event the time left before NotBefore
        less the margin; never below the minimum, so a late handler still gets a moment."""
        timeout = self._settings.handler_timeout_in_seconds
        if left is not None and transition.kind in _BEFORE_NOT_BEFORE:
            timeout = min(timeout, left - self._settings.deadline_margin_in_seconds)
        return max(timeout, MIN_HANDLER_TIMEOUT_IN_SECONDS)
