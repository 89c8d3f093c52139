# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Detection: what changed between the watcher's records and a new document, as values. Pure: nothing
here reads a clock, a file or the network, and no record is changed (``StateStore.apply`` does that).

A poll compares the document with the last snapshot of every EventId, never with incarnation numbers (a
client can miss incarnations, and they can reset):

    new and Scheduled -> scheduled      new and Started -> started (a hardware failure has no Scheduled phase)
    NotBefore moved   -> rescheduled    Scheduled -> Started -> started
    absent from COMPLETION_CONFIRM_POLLS good polls in a row -> completed (finished or canceled: IMDS never says)
"""

from dataclasses import dataclass
from typing import Optional, Tuple

from .config import COMPLETION_CONFIRM_POLLS
from .events import ScheduledEvent
from .vocabulary import EventStatus, TransitionKind


@dataclass(frozen=True)
class Transition:
    """A change in one event's life. ``key`` is unique per event and change, and stable across restarts."""

    kind: TransitionKind
    event: ScheduledEvent
    key: str


@dataclass(frozen=True)
class Change:  # pylint: disable=too-many-instance-attributes
    """What one poll changes in one event's record; ``None`` fields stay as they are.

    ``first_seen`` is set for an event seen for the first time (with ``ignored``, the reason it is not
    acted on, if any); ``forget`` drops the record of an ignored event that left.
    """

    event_id: str
    snapshot: Optional[dict] = None
    missing_polls: Optional[int] = None
    completed: bool = False
    transitions: Tuple[Transition, ...] = ()
    first_seen: bool = False
    ignored: Optional[str] = None
    forget: bool = False

    @property
    def counts_only(self):
        """Only the count of polls that missed the event moved: nothing to act on, and nothing lost if a
        crash forgets it (the count starts again), so it need not reach the disk at once."""
        return not (self.snapshot or self.completed or self.transitions or self.first_seen or self.forget)


def derive_transitions(previous, current):
    """What happened between two snapshots of one event (either may be ``None``)."""
    if current is None:
        if previous is None:
            return []
        return [Transition(TransitionKind.COMPLETED, previous, f'{previous.event_id}/{TransitionKind.COMPLETED}')]
    event_id = current.event_id
    started = current.event_status == EventStatus.STARTED
    if previous is None:
        kind = TransitionKind.STARTED if started else TransitionKind.SCHEDULED
        return [Transition(kind, current, f'{event_id}/{kind}')]
    if started and previous.event_status != EventStatus.STARTED:
        return [Transition(TransitionKind.STARTED, current, f'{event_id}/{TransitionKind.STARTED}')]
    if not started and current.not_before != previous.not_before:
        stamp = current.not_before.isoformat() if current.not_before else 'none'
        return [Transition(TransitionKind.RESCHEDULED, current, f'{event_id}/{TransitionKind.RESCHEDULED}/{stamp}')]
    return []


def detect(records, document, *, ignore_reason):
    """The changes one good poll of ``document`` makes to ``records`` (EventId -> EventRecord).

    ``ignore_reason(event)`` says why a new event is not acted on, or ``None``. Transitions a record
    already has are not repeated.
    """
    changes = []
    present = set()
    for event in document.events:
        present.add(event.event_id)
        record = records.get(event.event_id)
        wire = event.to_wire()
        if record is None:
            reason = ignore_reason(event)
            transitions = () if reason else tuple(derive_transitions(None, event))
            changes.append(Change(event.event_id, snapshot=wire, first_seen=True, ignored=reason,
                                  transitions=transitions))
            continue
        if record.ignored or record.completed_at is not None:
            if record.missing_polls:
                changes.append(Change(event.event_id, missing_polls=0))
            continue
        new = tuple(t for t in derive_transitions(ScheduledEvent.from_wire(record.snapshot), event)
                    if not record.has_transition(t.key))
        if new or record.snapshot != wire or record.missing_polls:
            changes.append(Change(event.event_id, snapshot=wire if record.snapshot != wire else None,
                                  missing_polls=0 if record.missing_polls else None, transitions=new))
    for event_id, record in records.items():
        if event_id in present or record.completed_at is not None:
            continue
        missing = record.missing_polls + 1
        if missing < COMPLETION_CONFIRM_POLLS:
            changes.append(Change(event_id, missing_polls=missing))
        elif record.ignored:
            changes.append(Change(event_id, forget=True))
        else:
            gone = derive_transitions(ScheduledEvent.from_wire(record.snapshot), None)
            changes.append(Change(event_id, missing_polls=missing, completed=True,
                                  transitions=tuple(t for t in gone if not record.has_transition(t.key))))
    return changes
