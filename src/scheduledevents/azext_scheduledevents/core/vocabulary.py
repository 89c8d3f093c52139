# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Every closed set of values the tool stores, prints or compares, as str Enums.

A member is its value: it compares equal to it, serialises to it in JSON, and prints as it (``Word``
makes ``str()`` and ``format()`` say the value on every Python, where a plain ``(str, Enum)`` says
``Class.MEMBER`` from 3.11 on), so state files and JSON output stay byte-identical while the code can no
longer misspell them. knack takes each class directly for an option's choices.

    TransitionKind('scheduled') is TransitionKind.SCHEDULED
    f'{StepStatus.OK}' == 'ok'
"""

from enum import Enum


class Word(str, Enum):
    """A value of a closed set; ``Word.values()`` lists them in declaration order."""

    def __str__(self):
        return self.value

    def __format__(self, spec):
        return format(self.value, spec)

    @classmethod
    def values(cls):
        return [member.value for member in cls]


class EventType(Word):
    """The maintenance an event announces (IMDS ``EventType``)."""

    FREEZE = 'Freeze'
    REBOOT = 'Reboot'
    REDEPLOY = 'Redeploy'
    PREEMPT = 'Preempt'
    TERMINATE = 'Terminate'


class EventStatus(Word):
    """Where an event is in IMDS (``EventStatus``); an event that is over leaves the document."""

    SCHEDULED = 'Scheduled'
    STARTED = 'Started'
    # Only Resource Graph and Event Grid show these; in IMDS an event that is over leaves the document.
    COMPLETED = 'Completed'
    CANCELED = 'Canceled'


class EventSource(Word):
    """Who started an event (``EventSource``, from api-version 2019-08-01)."""

    PLATFORM = 'Platform'
    USER = 'User'


class TransitionKind(Word):
    """A change in one event's life, as the watcher sees it."""

    SCHEDULED = 'scheduled'
    RESCHEDULED = 'rescheduled'
    STARTED = 'started'
    COMPLETED = 'completed'


class Decision(Word):
    """The approval decision line the watcher prints for a Scheduled event."""

    APPROVED = 'approved'
    NOT_APPROVED = 'not-approved'


class StepStatus(Word):
    """A step of a transition (a command, a notification): written ``begun`` before it runs; ok, failed,
    timeout and late are final."""

    BEGUN = 'begun'
    OK = 'ok'
    FAILED = 'failed'
    TIMEOUT = 'timeout'
    INTERRUPTED = 'interrupted'     # cut off by a crash: runs again while there is time
    LATE = 'late'                   # cut off by a crash, and NotBefore passed before it could run again


class ApprovalState(Word):
    """What became of the watcher's approval of one event; the record keeps the reason beside it."""

    SENDING = 'sending'
    APPROVED = 'approved'
    BY_PEER = 'by-peer'             # the group was ready and another VM of it sent the approval
    WITHHELD = 'withheld'
    NOT_SENT = 'not-sent'
    FAILED = 'failed'


class ApproveMode(Word):
    """When ``watch`` approves a Scheduled event (``--approve``)."""

    NEVER = 'never'
    AFTER_HANDLERS = 'after-handlers'
    IMMEDIATELY = 'immediately'


class Approver(Word):
    """Which VM of an event's Resources sends the approval (``--approver``)."""

    SELF = 'self'
    LEADER = 'leader'
    ALL = 'all'                     # one VM, once every VM the event names is ready


class Outcome(Word):
    """One VM's outcome for an event, as the group it shares the event with sees it (``--approver all``)."""

    READY = 'ready'
    FAILED = 'failed'


class CycleAction(Word):
    """What ``cycle`` does to each instance: the per-instance endpoint of the same name, or for ``update``
    the scale set's manual upgrade with that one instance id."""

    REIMAGE = 'reimage'
    RESTART = 'restart'
    REDEPLOY = 'redeploy'
    UPDATE = 'update'


class HookKind(Word):
    """When a ``cycle`` hook script runs on an instance: before its action, or once it is healthy again."""

    BEFORE = 'before-script'
    AFTER = 'after-script'


class HealthMode(Word):
    """Which score ``cycle`` requires: 7 with the Application Health extension, 3 without."""

    AUTO = 'auto'
    EXTENSION = 'extension'
    NONE = 'none'


class CycleResult(Word):
    """Where one instance is in a cycle, as the report shows it."""

    PENDING = 'pending'
    IN_PROGRESS = 'in-progress'
    HEALTHY = 'healthy'
    SKIPPED = 'skipped'
    UP_TO_DATE = 'up-to-date'
    TIMEOUT = 'timeout'
    FAILED = 'failed'
    DONE_BEFORE_RESUME = 'done-before-resume'


class CyclePhase(Word):
    """Where an instance that the cycle has taken is: its before-script runs, its action was sent and
    it is not healthy again yet, or its after-script runs."""

    BEFORE_SCRIPT = 'before-script'
    ACTION_SENT = 'action-sent'
    AFTER_SCRIPT = 'after-script'


class FaultKind(Word):
    """A fault the IMDS emulator can inject."""

    STATUS = 'status'
    RESET = 'reset'
    DELAY = 'delay'
    GARBAGE = 'garbage'
    EMPTY = 'empty'


class LineStyle(Word):
    """How ``watch`` writes its lines: JSON lines, or text for a person."""

    JSON = 'json'
    TEXT = 'text'


class AgentResult(Word):
    """What ``agent install`` or ``uninstall`` did on one instance."""

    INSTALLED = 'installed'
    UPGRADED = 'upgraded'
    UNCHANGED = 'unchanged'
    REMOVED = 'removed'
    ABSENT = 'absent'
    FAILED = 'failed'


class AgentState(Word):
    """How the agent runs on one instance, as ``agent status`` says it; only ``running`` is good."""

    RUNNING = 'running'
    MISSING = 'missing'
    OUTDATED = 'outdated'
    STOPPED = 'stopped'
    STALE = 'stale'
    FAILED = 'failed'


class TargetKind(Word):
    """What a scheduled event hangs off in the control plane: the resource type in its ARM id."""

    SCALE_SET = 'virtualMachineScaleSets'
    VM = 'virtualMachines'
    AVAILABILITY_SET = 'availabilitySets'


class Route(Word):
    """How fleet ``list`` and ``approve`` reach the events: Run Command on every instance, or Azure's control
    plane (Resource Graph and the Maintenance acknowledge API); ``auto`` picks by the target's policy."""

    AUTO = 'auto'
    RUN_COMMAND = 'run-command'
    CONTROL_PLANE = 'control-plane'
