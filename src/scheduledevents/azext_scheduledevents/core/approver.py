# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The approver: decides, for each Scheduled event, whether this VM approves it, sends the approval, and
says the decision in exactly one line, approved or not-approved with its reason, whatever the reason.

The decision is saved before its line is written (and the line is written again after a crash between the
two), so an event is approved at most once and never without a finished, successful run of its
scheduled handlers when the policy asks for them.

    approver = Approver(store, policy=ApprovalPolicy(mode=ApproveMode.AFTER_HANDLERS), vm_name='web_0',
                        client_factory=ImdsClient, settings=WatchSettings(), emit=print)
    approver.decide(record, handlers_ok=True)

With ``--approver all`` and an event that names other VMs too, the decision is the group's
(``coordination.py``): this VM reports its outcome, waits for the verdict, and sends the approval only if
it is the one VM of the group whose claim succeeded.
"""

import time
from datetime import datetime, timezone

from .approval import approve_events
from .config import RetryPolicy
from .errors import EventNotFoundError, ImdsError
from .events import ScheduledEvent
from .errors import BlobError
from .lines import decision_line
from .log import get_logger
from .vocabulary import ApprovalState, Approver as ApproverKind, Decision, Outcome
from .watchstats import WatchStats

logger = get_logger(__name__)

HANDLERS_FAILED = 'a scheduled handler failed, timed out or was cut off too late to run again'
_FINAL = (ApprovalState.APPROVED, ApprovalState.BY_PEER, ApprovalState.WITHHELD, ApprovalState.NOT_SENT,
          ApprovalState.FAILED)


class Approver:  # pylint: disable=too-many-instance-attributes,too-few-public-methods
    """Approves through IMDS clients from ``client_factory`` (one per attempt: a client is not shared
    between threads), under ``policy``; ``emit`` takes the decision lines, ``stats`` hears of each decision."""

    def __init__(self, store, *, policy, vm_name, client_factory, settings, emit, coordinator=None, stop=None,
                 stats=None, wall=time.time, clock=time.monotonic, sleep=time.sleep, now=None):
        self._store = store
        self._coordinator = coordinator
        self._stop = stop
        self._policy = policy
        self._vm_name = vm_name
        self._client_factory = client_factory
        self._settings = settings
        self._emit = emit
        self._stats = stats or WatchStats(wall=wall)
        self._wall, self._clock, self._sleep = wall, clock, sleep
        self._now = now or (lambda: datetime.fromtimestamp(wall(), timezone.utc))

    def decide(self, record, *, handlers_ok, attempt=1):
        """Decide on the event of ``record`` once; ``handlers_ok`` is the outcome of its scheduled handlers
        (True when the policy approves without waiting for them), ``attempt`` their run's number."""
        if record.approval in _FINAL:
            self._announce(record)
            return
        event = ScheduledEvent.from_wire(record.snapshot)
        if self._policy.approver == ApproverKind.ALL and set(event.resources) - {self._vm_name}:
            self._decide_with_group(record, event, handlers_ok=handlers_ok, attempt=attempt)
            return
        reason = self._policy.withholds(event, self._vm_name)
        if reason is not None:
            # What the policy says is no news for the log: said once, quietly, and in the decision line.
            self._settle(record, ApprovalState.WITHHELD, reason, quiet=True)
            return
        if not handlers_ok:
            self._settle(record, ApprovalState.WITHHELD, HANDLERS_FAILED)
            return
        self._approve(record, event)

    def _decide_with_group(self, record, event, *, handlers_ok, attempt):
        """Report this VM's outcome, wait for the group's verdict, and approve if this VM's claim wins."""
        reason = self._policy.withholds(event, self._vm_name)
        ready = reason is None and handlers_ok
        try:
            self._coordinator.report(event.event_id, Outcome.READY if ready else Outcome.FAILED, attempt=attempt)
            if not ready:
                self._settle(record, ApprovalState.WITHHELD, reason or f'{HANDLERS_FAILED}; the group will not approve',
                             quiet=bool(reason))
                return
            verdict = self._coordinator.wait(event, first_seen=record.first_seen, settings=self._settings,
                                             stop=self._stop)
            if not verdict.decided:
                return                                          # stopped: decided after the restart
            if not verdict.approve:
                self._settle(record, ApprovalState.WITHHELD, verdict.reason)
                return
            won, holder = self._coordinator.claim(event.event_id)
        except BlobError as ex:
            # Without the group nobody can tell that all are ready: the event starts at NotBefore.
            self._settle(record, ApprovalState.FAILED, f'the group could not be reached: {ex}')
            return
        if not won:
            self._settle(record, ApprovalState.BY_PEER, f'{verdict.reason}; {holder} sends the approval')
            return
        self._approve(record, event, because=verdict.reason)

    def _approve(self, record, event, *, because=None):
        """Send the approval (saved as sending first, so a restart sends it again) and settle the outcome;
        ``because`` goes before the detail of an approval that was sent."""
        self._store.update(record, _set_approval, record, ApprovalState.SENDING, None)
        state, detail = self._send(event)
        if because and state == ApprovalState.APPROVED:
            detail = f'{because}; {detail}'
        self._settle(record, state, detail)

    def event_over(self, event_id):
        """The event completed: its group records go (``--approver all``)."""
        if self._coordinator is None or self._policy.approver != ApproverKind.ALL:
            return
        try:
            self._coordinator.forget(event_id)
        except BlobError as ex:
            logger.info('Could not remove the group records of %s: %s', event_id, ex)

    def _send(self, event):
        """Approve ``event``, retrying IMDS faults until NotBefore (at least one poll deadline) ->
        (ApprovalState, detail)."""
        left = event.seconds_until_not_before(self._now()) or 0
        give_up_at = self._clock() + max(self._settings.poll_deadline_in_seconds, left)
        attempt = 0
        while True:
            remaining = give_up_at - self._clock()
            try:
                with self._client_factory(retry=RetryPolicy(deadline_in_seconds=max(remaining, 0.1))) as client:
                    result = approve_events(client, [event.event_id], force=False)[0]
            except EventNotFoundError:
                return ApprovalState.NOT_SENT, 'it left the document (over, or canceled)'
            except ImdsError as ex:
                delay = RetryPolicy().delay(attempt)
                if self._clock() + delay >= give_up_at:
                    # NotBefore comes all the same; the daemon goes on.
                    return ApprovalState.FAILED, f'approving failed: {ex}'
                logger.info('Approving %s: %s; trying again in %.1f s', event.event_id, ex, delay)
                self._sleep(delay)
                attempt += 1
                continue
            if result.sent:
                return ApprovalState.APPROVED, f'EventStatus {result.status_after}'
            return ApprovalState.NOT_SENT, f'it was already {result.status_after}'

    def _settle(self, record, state, detail, *, quiet=False):
        self._store.update(record, _set_approval, record, state, detail)
        self._stats.approval_settled(record.event_id, state)
        self._announce(record, quiet=quiet or state in (ApprovalState.APPROVED, ApprovalState.BY_PEER))

    def _announce(self, record, *, quiet=True):
        """The decision's one line and log entry, unless they were written already."""
        if record.approval_announced:
            return
        event = ScheduledEvent.from_wire(record.snapshot)
        approved = record.approval in (ApprovalState.APPROVED, ApprovalState.BY_PEER)
        (logger.info if quiet else logger.warning)('%s %s (%s): %s.', 'Approved' if approved else 'Not approving',
                                                   event.event_id, event.event_type, record.approval_reason)
        self._emit(decision_line(Decision.APPROVED if approved else Decision.NOT_APPROVED, event,
                                 record.approval_reason, vm_name=self._vm_name, epoch=self._wall()))
        self._store.update(record, setattr, record, 'approval_announced', True)


def _set_approval(record, state, reason):
    record.approval, record.approval_reason = state, reason
