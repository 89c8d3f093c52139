# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The lines ``watch`` writes: one per transition, one per approval decision, as JSON or as text.

    {"time": "...Z", "transition": "scheduled", "key": "<EventId>/scheduled", "vm": "web_0", "EventId": ...}
    {"time": "...Z", "transition": "approved", "key": "<EventId>/approved", "vm": "web_0", "detail": ...}

Handlers get the same line on stdin, and notifications carry it as their data.
"""

from datetime import datetime, timezone

from .events import ScheduledEvent
from .times import iso_utc
from .vocabulary import Decision, TransitionKind


def transition_line(record, *, vm_name, now=None):
    """The line of one ``TransitionRecord``: when it was seen, what changed, and the event as then.

    A completed event is gone: its line has no seconds left, whatever its last snapshot said.
    """
    event = ScheduledEvent.from_wire(record.event)
    view = event.to_view(vm_name=vm_name, now=now or datetime.now(timezone.utc))
    if record.kind == TransitionKind.COMPLETED:
        view['SecondsUntilNotBefore'] = None
    return {'time': iso_utc(record.detected_at, timespec='milliseconds'), 'transition': record.kind,
            'key': record.key, 'vm': vm_name, **view}


def decision_line(decision, event, detail, *, vm_name, epoch):
    """The approval decision for one Scheduled event: approved, or not-approved with the reason."""
    return {'time': iso_utc(epoch, timespec='milliseconds'), 'transition': decision,
            'key': f'{event.event_id}/{decision}', 'vm': vm_name, 'EventId': event.event_id,
            'EventType': event.event_type, 'detail': detail}


def format_text(line):
    """One line for a person at a terminal."""
    head = f"{line['time']}  {line['transition']:<12} {line['EventType']:<9} {line['EventId']}"
    if line['transition'] in Decision.values():
        return f"{head}  {line['detail']}"
    resources = ', '.join(line.get('Resources') or [])
    if line['transition'] == TransitionKind.COMPLETED:
        return f"{head}  left the document (over, or canceled)  resources {resources}"
    left = line.get('SecondsUntilNotBefore')
    when = f"NotBefore {line['NotBefore']} (in {left} s)" if left is not None else line.get('EventStatus', '')
    return f"{head}  {when}  resources {resources}"
