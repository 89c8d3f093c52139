# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Approving events safely: check the document before the POST, and read it again after.

IMDS's answer to a StartRequests for an unknown or already Started id is not documented, so the POST's
status proves nothing; the document does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import FROZEN_BY_KEYWORD
from .errors import EventNotFoundError, InvalidSettingError
from .events import validate_event_id
from .log import get_logger
from .vocabulary import ApproveMode, Approver, EventSource, EventStatus

logger = get_logger(__name__)

# The status an approval result shows for an id that is not (or no longer) in the document.
NOT_IN_DOCUMENT = 'NotInDocument'


@dataclass(**FROZEN_BY_KEYWORD)
class ApprovalPolicy:
    """When the watcher may approve an event. Nothing is approved unless ``mode`` says so.

    Approving releases an event for every VM in its Resources. With ``approver='leader'`` only the VM
    named first in Resources approves, so one VM decides for the group (the others still run their
    handlers); the cost is that the group waits for the leader, and for NotBefore if the leader is down.

        ApprovalPolicy(mode=ApproveMode.AFTER_HANDLERS, event_types=frozenset({'Freeze', 'Reboot'}))
    """

    mode: ApproveMode = ApproveMode.NEVER
    event_types: frozenset | None = None
    user_initiated: bool = False
    approver: Approver = Approver.SELF

    def __post_init__(self):
        try:
            object.__setattr__(self, 'mode', ApproveMode(self.mode))
            object.__setattr__(self, 'approver', Approver(self.approver))
        except ValueError:
            raise InvalidSettingError(f'mode is one of {", ".join(ApproveMode.values())} and approver one of '
                                      f'{", ".join(Approver.values())}') from None

    def withholds(self, event, vm_name):
        """Why this VM must not approve ``event``, or ``None`` when it may."""
        if self.mode == ApproveMode.NEVER:
            return 'approval is off (--approve never)'
        if self.event_types is not None and event.event_type not in self.event_types:
            return f'{event.event_type} is not among the --approve-types'
        if event.event_source == EventSource.USER and not self.user_initiated:
            return 'the event is user-initiated (--approve-user-initiated approves those)'
        if self.approver == Approver.LEADER and (not event.resources or event.resources[0] != vm_name):
            leader = event.resources[0] if event.resources else 'nobody'
            return f'the leader, {leader}, approves it (--approver leader)'
        return None


@dataclass(frozen=True)
class ApprovalResult:
    """What happened to one requested id: its status before the POST and in the document after it."""

    event_id: str
    event_type: str | None
    status_before: str
    status_after: str
    sent: bool

    def to_dict(self):
        return {'EventId': self.event_id, 'EventType': self.event_type, 'StatusBefore': self.status_before,
                'EventStatus': self.status_after, 'ApprovalSent': self.sent}


def approve_events(client, event_ids, *, force=False):
    """Approve ``event_ids`` through ``client`` (an ``ImdsClient``) and report each id's outcome.

    Every id must be a GUID before anything is sent. Unless ``force``, every id must be in the current
    document; ids are sent as the document spells them. Events already Started are not sent again.

        approve_events(ImdsClient(), ['C7061BAC-AFDC-4513-B24B-AA5F13A16123'])
    """
    unique = {}
    for event_id in event_ids:
        unique.setdefault(validate_event_id(event_id).lower(), event_id)
    ids = list(unique.values())
    before = client.get_document()
    missing = [event_id for event_id in ids if before.get(event_id) is None]
    if missing and not force:
        raise EventNotFoundError(f'not in the Scheduled Events document: {", ".join(missing)}', event_ids=missing)
    to_send = []
    for event_id in ids:
        event = before.get(event_id)
        if event is None or event.event_status != EventStatus.STARTED:
            to_send.append(event.event_id if event else event_id)
    if to_send:
        client.approve(to_send)
    after = client.get_document() if to_send else before
    return outcomes(ids, before, after, sent=to_send)


def outcomes(event_ids, before, after, *, sent):
    """Each id's ``ApprovalResult`` from the documents read before and after approving the ids ``sent``."""
    results = []
    for event_id in event_ids:
        old, new = before.get(event_id), after.get(event_id)
        known = new or old
        spelled = known.event_id if known else event_id
        results.append(ApprovalResult(
            event_id=spelled, event_type=known.event_type if known else None,
            status_before=old.event_status if old else NOT_IN_DOCUMENT,
            status_after=new.event_status if new else NOT_IN_DOCUMENT,
            sent=spelled in sent))
    for result in results:
        if result.sent and result.status_after == EventStatus.SCHEDULED:
            logger.warning('Event %s is still Scheduled after approval: Azure may be waiting for other VMs on '
                           'the same host.', result.event_id)
    return results
