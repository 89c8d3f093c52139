# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Policy values with their units in their names, so a reader finds every number in one place."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

from .errors import InvalidSettingError
from .vocabulary import CycleAction, HealthMode

# Settings are frozen and taken by keyword: ``@dataclass(**FROZEN_BY_KEYWORD)``. ``kw_only`` came in Python
# 3.10: on an older Python (the agent runs on a VM's own, 3.8 and later) they are only frozen; every caller
# passes keywords all the same.
FROZEN_BY_KEYWORD = {'frozen': True, 'kw_only': True} if sys.version_info >= (3, 10) else {'frozen': True}

# IMDS's first call on a VM enables Scheduled Events and can take up to two minutes to answer.
IMDS_DEADLINE_IN_SECONDS = 120.0
# IMDS is link-local: a connection that is not made within this time will not be made at all.
IMDS_CONNECT_TIMEOUT_IN_SECONDS = 2.0


@dataclass(**FROZEN_BY_KEYWORD)
class RetryPolicy:
    """Capped exponential backoff with jitter, within one overall deadline.

    The delay before retry ``n`` (0-based) is drawn from ``[d/2, d]`` with
    ``d = min(max_delay, first_delay * 2 ** n)``; a ``Retry-After`` header, when IMDS sends one, wins.

        RetryPolicy()                                   # production: 0.5 s, 1 s, 2 s ... 8 s, for 120 s
        RetryPolicy(deadline_in_seconds=5)              # give up after 5 s
    """

    first_delay_in_seconds: float = 0.5
    max_delay_in_seconds: float = 8.0
    deadline_in_seconds: float = IMDS_DEADLINE_IN_SECONDS
    connect_timeout_in_seconds: float = IMDS_CONNECT_TIMEOUT_IN_SECONDS

    def __post_init__(self):
        if self.first_delay_in_seconds <= 0 or self.max_delay_in_seconds < self.first_delay_in_seconds:
            raise InvalidSettingError('need 0 < first_delay_in_seconds <= max_delay_in_seconds')
        if self.deadline_in_seconds <= 0 or self.connect_timeout_in_seconds <= 0:
            raise InvalidSettingError('deadline_in_seconds and connect_timeout_in_seconds must be positive')

    def delay(self, attempt, rng=random.random):
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_delay_in_seconds, self.first_delay_in_seconds * 2 ** attempt)
        return ceiling / 2 + rng() * ceiling / 2


DEFAULT_RETRY_POLICY = RetryPolicy()


# Polling once a second is what the Scheduled Events documentation recommends, and Preempt gives 30 s.
WATCH_INTERVAL_IN_SECONDS = 1.0
# One poll of the watcher waits at most this long; the loop itself retries for ever.
WATCH_POLL_DEADLINE_IN_SECONDS = 10.0
HANDLER_TIMEOUT_IN_SECONDS = 300.0
# Handlers for a Scheduled event must finish this long before NotBefore.
DEADLINE_MARGIN_IN_SECONDS = 5.0
# A handler always gets at least this long, even when NotBefore is already (nearly) due.
MIN_HANDLER_TIMEOUT_IN_SECONDS = 1.0
# An event is over when it is absent from this many successful polls in a row: the first answer while
# the service is being enabled may be an empty document, which must not complete every known event.
COMPLETION_CONFIRM_POLLS = 3
# After this long without a good answer from IMDS the watcher warns (once) instead of logging quietly.
IMDS_OUTAGE_WARNING_IN_SECONDS = 10.0
# After SIGTERM, a handler past its deadline gets this long to exit before SIGKILL.
HANDLER_KILL_GRACE_IN_SECONDS = 5.0
# Keep the end of a handler's output in the log, not all of it.
HANDLER_OUTPUT_TAIL_IN_BYTES = 4096
# A webhook or Event Grid notification: each attempt waits this long, and at most this many retries follow
# the first, within the deadline (a Retry-After that would pass it ends the retries).
WEBHOOK_TIMEOUT_IN_SECONDS = 5.0
WEBHOOK_RETRIES = 3
WEBHOOK_DEADLINE_IN_SECONDS = 30.0
WEBHOOK_RETRY_POLICY = RetryPolicy(deadline_in_seconds=WEBHOOK_DEADLINE_IN_SECONDS,
                                   connect_timeout_in_seconds=WEBHOOK_TIMEOUT_IN_SECONDS)
# The environment variable that holds the Event Grid topic key: a secret never goes on a command line.
EVENT_GRID_KEY_ENV = 'SCHEDULED_EVENTS_EVENT_GRID_KEY'
SYSLOG_SOCKET = '/dev/log'
# How long a finished event is remembered, so that a document that flickers cannot make it new again.
COMPLETED_RETENTION_IN_SECONDS = 7 * 24 * 3600
# Where a service keeps its state; under az without --state-dir it is this name under az's config directory.
SERVICE_STATE_DIR = '/var/lib/scheduled-events'
# Its secrets (an Event Grid key), root only: never on a command line.
SERVICE_ENVIRONMENT_FILE = '/etc/default/scheduled-events'
# The standalone agent's, when --state-dir names none.
AGENT_STATE_DIR = '/var/lib/azure-scheduled-events'
STATE_DIR_NAME = 'scheduled-events'
# A service is stopped this long after SIGTERM beyond the longest handler.
SERVICE_STOP_MARGIN_IN_SECONDS = 30.0


@dataclass(**FROZEN_BY_KEYWORD)
class WatchSettings:  # pylint: disable=too-many-instance-attributes
    """How ``watch`` polls and which events it acts on.

        WatchSettings()                                           # every second, this VM's events, all types
        WatchSettings(event_types=frozenset({'Preempt'}), once=True)
    """

    interval_in_seconds: float = WATCH_INTERVAL_IN_SECONDS
    all_resources: bool = False
    event_types: frozenset | None = None
    ignore_freeze_under_in_seconds: float | None = None
    handler_timeout_in_seconds: float = HANDLER_TIMEOUT_IN_SECONDS
    deadline_margin_in_seconds: float = DEADLINE_MARGIN_IN_SECONDS
    poll_deadline_in_seconds: float = WATCH_POLL_DEADLINE_IN_SECONDS
    # --approver all: approve with the VMs present this long after the event appeared (None: wait for all).
    wait_for_all_timeout_in_seconds: float | None = None
    once: bool = False

    @property
    def poll_retry(self):
        """Retries within one poll keep pace with the polling: a fault must not hide a short event."""
        first = min(RetryPolicy.first_delay_in_seconds, self.interval_in_seconds / 2)
        return RetryPolicy(first_delay_in_seconds=first,
                           max_delay_in_seconds=max(first, min(RetryPolicy.max_delay_in_seconds,
                                                               self.interval_in_seconds * 8)),
                           deadline_in_seconds=self.poll_deadline_in_seconds)

    def __post_init__(self):
        if self.interval_in_seconds <= 0 or self.handler_timeout_in_seconds <= 0:
            raise InvalidSettingError('interval and handler timeout must be greater than 0')
        if self.deadline_margin_in_seconds < 0:
            raise InvalidSettingError('the deadline margin cannot be negative')


# Run Command allows one script at a time per VM and is throttled per subscription: a handful in flight.
FANOUT_MAX_PARALLEL = 10
# Even a trivial Run Command script takes tens of seconds on Azure.
FANOUT_INSTANCE_TIMEOUT_IN_SECONDS = 300.0
# Compute's 202s carry no Retry-After, and the SDK would then wait 30 s between polls. Ours: quick polls
# while a short script may be done, once a second after that, and slower once it is plainly a long one.
FANOUT_QUICK_POLL_IN_SECONDS = 0.1
FANOUT_QUICK_POLLS_FOR_SECONDS = 2.0
FANOUT_POLL_INTERVAL_IN_SECONDS = 1.0
FANOUT_SLOW_POLL_AFTER_SECONDS = 60.0
FANOUT_SLOW_POLL_IN_SECONDS = 5.0


@dataclass(**FROZEN_BY_KEYWORD)
class FanoutSettings:
    """How a fleet command spreads over instances.

        FanoutSettings(max_parallel=20, instance_timeout_in_seconds=120)
    """

    max_parallel: int = FANOUT_MAX_PARALLEL
    instance_timeout_in_seconds: float = FANOUT_INSTANCE_TIMEOUT_IN_SECONDS
    poll_interval_in_seconds: float = FANOUT_POLL_INTERVAL_IN_SECONDS

    def poll_delay(self, elapsed_in_seconds):
        """Seconds to wait before the next poll of a Run Command that started ``elapsed`` seconds ago."""
        if elapsed_in_seconds < FANOUT_QUICK_POLLS_FOR_SECONDS:
            return min(FANOUT_QUICK_POLL_IN_SECONDS, self.poll_interval_in_seconds)
        if elapsed_in_seconds < FANOUT_SLOW_POLL_AFTER_SECONDS:
            return self.poll_interval_in_seconds
        return max(FANOUT_SLOW_POLL_IN_SECONDS, self.poll_interval_in_seconds)

    def __post_init__(self):
        if self.max_parallel < 1 or self.instance_timeout_in_seconds <= 0 or self.poll_interval_in_seconds <= 0:
            raise InvalidSettingError('max_parallel must be at least 1, and the timeout and poll interval above 0')


CYCLE_TIMEOUT_IN_SECONDS = 30 * 60.0
CYCLE_MAX_UNAVAILABLE = 1
# Instance views are read at most this often, and less often (up to the maximum) while nothing changes.
CYCLE_POLL_MIN_IN_SECONDS = 2.0
CYCLE_POLL_MAX_IN_SECONDS = 10.0
# A before- or after-script (through Run Command) must end within this; Run Command itself stops at 90 min.
CYCLE_HOOK_TIMEOUT_IN_SECONDS = 30 * 60.0
# While a Started event holds an instance back, maintenance is read again at most this often.
CYCLE_MAINTENANCE_REREAD_IN_SECONDS = 30.0


@dataclass(**FROZEN_BY_KEYWORD)
class CycleSettings:  # pylint: disable=too-many-instance-attributes
    """How ``cycle`` moves through a scale set.

        CycleSettings()                                         # reimage one at a time, 30 min each
        CycleSettings(action=CycleAction.RESTART, max_unavailable=2, timeout_in_seconds=600)
    """

    action: CycleAction = CycleAction.REIMAGE
    max_unavailable: int = CYCLE_MAX_UNAVAILABLE
    timeout_in_seconds: float = CYCLE_TIMEOUT_IN_SECONDS
    pause_in_seconds: float = 0.0
    ignore_initial_health: bool = False
    ignore_availability: bool = False
    health: HealthMode = HealthMode.AUTO
    # Which instances: with ``update``, only those not on the latest model unless ``include_up_to_date``;
    # ``only_outdated`` makes the other actions choose the same way.
    only_outdated: bool = False
    include_up_to_date: bool = False
    zone_by_zone: bool = False
    poll_min_in_seconds: float = CYCLE_POLL_MIN_IN_SECONDS
    poll_max_in_seconds: float = CYCLE_POLL_MAX_IN_SECONDS
    hook_timeout_in_seconds: float = CYCLE_HOOK_TIMEOUT_IN_SECONDS
    maintenance_reread_in_seconds: float = CYCLE_MAINTENANCE_REREAD_IN_SECONDS

    @property
    def skips_up_to_date(self):
        """True when instances already on the latest model are left out."""
        return (self.action == CycleAction.UPDATE or self.only_outdated) and not self.include_up_to_date

    def __post_init__(self):
        # Kept as members: a string that is none of them fails here, not in the middle of a cycle.
        object.__setattr__(self, 'action', _member(CycleAction, self.action, 'action'))
        object.__setattr__(self, 'health', _member(HealthMode, self.health, 'health'))
        if self.max_unavailable < 1 or self.timeout_in_seconds <= 0 or self.pause_in_seconds < 0:
            raise InvalidSettingError('max_unavailable must be at least 1, the timeout above 0, the pause 0 or more')
        if self.hook_timeout_in_seconds <= 0 or self.maintenance_reread_in_seconds <= 0:
            raise InvalidSettingError('the hook timeout and the maintenance re-read interval must be above 0')
        if not 0 < self.poll_min_in_seconds <= self.poll_max_in_seconds:
            raise InvalidSettingError('need 0 < poll_min_in_seconds <= poll_max_in_seconds')


# Blob Storage (coordination between VMs, the blob sink). One attempt waits at most this long for an answer
# before it is abandoned and sent again; every operation, retries included, ends within the deadline.
BLOB_TIMEOUT_IN_SECONDS = 10.0
BLOB_DEADLINE_IN_SECONDS = 30.0
# Unlike IMDS, storage is reached across the network (or a private endpoint): allow a slower handshake.
BLOB_CONNECT_TIMEOUT_IN_SECONDS = 5.0
BLOB_RETRY_POLICY = RetryPolicy(deadline_in_seconds=BLOB_DEADLINE_IN_SECONDS,
                                connect_timeout_in_seconds=BLOB_CONNECT_TIMEOUT_IN_SECONDS)
# List Blobs returns at most this many names a page (the service's own maximum is 5000).
BLOB_LIST_PAGE_SIZE = 5000
# A managed identity's token is fetched again this long before it expires (as the Azure SDKs do).
TOKEN_REFRESH_MARGIN_IN_SECONDS = 300.0

# The IMDS emulator's defaults, as `az scheduled-events emulator` offers them.
EMULATOR_HOST = '127.0.0.1'
EMULATOR_PORT = 8169
EMULATOR_SCENARIO = 'empty'
# Real time; 60 turns a 15-minute notice into 15 seconds.
EMULATOR_SPEED = 1.0
EMULATOR_VM_NAME = 'web_0'
EMULATOR_TERMINATE_NOTICE = 'PT5M'
# IMDS answers 429 beyond 5 requests a second per VM.
EMULATOR_RATE_LIMIT_PER_SECOND = 5


def _member(word_class, value, name):
    try:
        return word_class(value)
    except ValueError:
        raise InvalidSettingError(f'{name} is one of {", ".join(word_class.values())}, not {value!r}') from None
