# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The Scheduled Events document as typed values, tolerant of what it does not know.

What IMDS serves at api-version 2020-07-01 (older versions omit the later fields)::

    {"DocumentIncarnation": 2,
     "Events": [{"EventId": "C7061BAC-AFDC-4513-B24B-AA5F13A16123", "EventType": "Reboot",
                 "ResourceType": "VirtualMachine", "Resources": ["myvmss_3", "myvmss_7"],
                 "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT",
                 "Description": "Virtual machine is going to be restarted as requested by authorized user.",
                 "EventSource": "User", "DurationInSeconds": 7}]}

Event types and statuses stay plain strings on the event, so a type Azure adds tomorrow is shown, not
rejected; ``vocabulary.EventType`` and ``EventStatus`` name the ones this version knows.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field
from datetime import datetime

from .errors import ImdsProtocolError, InvalidEventIdError
from .times import format_http_date, parse_http_date
from .vocabulary import EventType


# The api-version that first carries each optional field; older documents simply do not have it.
FIELDS_ADDED_IN = {
    'Description': '2019-04-01',
    'EventSource': '2019-08-01',
    'DurationInSeconds': '2020-07-01',
}

# The documented minimum notice: NotBefore after the event first appears. Terminate's is the scale set's
# terminateNotificationProfile.notBeforeTimeout (PT5M..PT15M, default PT5M). Targets, not promises.
MINIMUM_NOTICE_IN_SECONDS = {
    EventType.FREEZE: 15 * 60,
    EventType.REBOOT: 15 * 60,
    EventType.REDEPLOY: 10 * 60,
    EventType.PREEMPT: 30,
    EventType.TERMINATE: 5 * 60,
}

_GUID = re.compile(r'[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}')
_KNOWN_FIELDS = ('EventId', 'EventType', 'ResourceType', 'Resources', 'EventStatus', 'NotBefore',
                 'Description', 'EventSource', 'DurationInSeconds')


def validate_event_id(event_id):
    """Return ``event_id`` if it is a GUID, else raise ``InvalidEventIdError``.

        validate_event_id('C7061BAC-AFDC-4513-B24B-AA5F13A16123')
    """
    if not isinstance(event_id, str) or not _GUID.fullmatch(event_id):
        raise InvalidEventIdError(f'{event_id!r} is not an event id: event ids are GUIDs such as '
                                  'C7061BAC-AFDC-4513-B24B-AA5F13A16123.')
    return event_id


def parse_rfc1123(text):
    """NotBefore: ``'Mon, 19 Sep 2016 18:29:47 GMT'`` -> aware UTC datetime; ``''`` -> ``None``."""
    if text == '':
        return None
    parsed = parse_http_date(text)
    if parsed is None:
        raise ImdsProtocolError(f'NotBefore {text!r} is not an RFC 1123 date such as "Mon, 19 Sep 2016 18:29:47 GMT"')
    return parsed


@dataclass(frozen=True)
class ScheduledEvent:  # pylint: disable=too-many-instance-attributes
    """One entry of ``Events``. Fields an older api-version omits are ``None``; unknown fields are kept."""

    event_id: str
    event_type: str
    event_status: str
    resource_type: str = 'VirtualMachine'
    resources: tuple = ()
    not_before: datetime | None = None
    description: str | None = None
    event_source: str | None = None
    duration_in_seconds: int | None = None
    extra: types.MappingProxyType = field(default_factory=lambda: types.MappingProxyType({}),
                                          compare=False, hash=False)

    @property
    def is_known_type(self):
        return self.event_type in EventType.values()

    def affects(self, vm_name):
        """True when ``vm_name`` (instance metadata ``compute.name``) is exactly one of ``Resources``."""
        return vm_name in self.resources

    def seconds_until_not_before(self, now):
        """Whole seconds from ``now`` (aware datetime) to NotBefore; ``None`` when NotBefore is empty."""
        if self.not_before is None:
            return None
        return int((self.not_before - now).total_seconds())

    def same_id(self, event_id):
        """EventIds are GUIDs, and GUIDs compare without regard to case."""
        return self.event_id.lower() == event_id.lower()

    def to_view(self, *, vm_name, now):
        """The wire form plus what a reader wants to know at once: does it touch this VM, how long until?"""
        view = self.to_wire()
        view['AffectsThisVm'] = None if vm_name is None else self.affects(vm_name)
        view['SecondsUntilNotBefore'] = self.seconds_until_not_before(now)
        return view

    @classmethod
    def from_wire(cls, obj):
        """Build from one JSON object of ``Events``; raise ``ImdsProtocolError`` on a malformed entry."""
        if not isinstance(obj, dict):
            raise ImdsProtocolError(f'an entry of Events is a {type(obj).__name__}, not an object')
        for name in ('EventId', 'EventType', 'EventStatus'):
            if not isinstance(obj.get(name), str):
                raise ImdsProtocolError(f'an entry of Events has no string {name}: {obj!r:.200}')
        resources = obj.get('Resources', [])
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise ImdsProtocolError(f'Resources of event {obj["EventId"]} is not a list of names')
        not_before = obj.get('NotBefore', '')
        if not isinstance(not_before, str):
            raise ImdsProtocolError(f'NotBefore of event {obj["EventId"]} is not a string')
        duration = obj.get('DurationInSeconds')
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)):
            raise ImdsProtocolError(f'DurationInSeconds of event {obj["EventId"]} is not an integer')
        return cls(
            event_id=obj['EventId'],
            event_type=obj['EventType'],
            event_status=obj['EventStatus'],
            resource_type=obj.get('ResourceType', 'VirtualMachine'),
            resources=tuple(resources),
            not_before=parse_rfc1123(not_before),
            description=obj.get('Description'),
            event_source=obj.get('EventSource'),
            duration_in_seconds=duration,
            extra=types.MappingProxyType({k: v for k, v in obj.items() if k not in _KNOWN_FIELDS}),
        )

    def to_wire(self, api_version=None):
        """The IMDS JSON form; with ``api_version``, without the fields that version does not have."""
        wire = {
            'EventId': self.event_id,
            'EventType': self.event_type,
            'ResourceType': self.resource_type,
            'Resources': list(self.resources),
            'EventStatus': self.event_status,
            'NotBefore': format_http_date(self.not_before) if self.not_before else '',
            'Description': self.description,
            'EventSource': self.event_source,
            'DurationInSeconds': self.duration_in_seconds,
        }
        for name, since in FIELDS_ADDED_IN.items():
            if wire[name] is None or (api_version is not None and api_version < since):
                del wire[name]
        wire.update(self.extra)
        return wire


@dataclass(frozen=True)
class EventsDocument:
    """The whole document. ``incarnation`` changes whenever anything in it changes (it may also reset)."""

    incarnation: int
    events: tuple = ()

    def get(self, event_id):
        """The event with this id, or ``None``: an event that is over has simply left the document."""
        return next((event for event in self.events if event.same_id(event_id)), None)

    @classmethod
    def from_wire(cls, obj):
        if not isinstance(obj, dict):
            raise ImdsProtocolError(f'the document is a {type(obj).__name__}, not a JSON object')
        incarnation = obj.get('DocumentIncarnation')
        if isinstance(incarnation, bool) or not isinstance(incarnation, int):
            raise ImdsProtocolError('the document has no integer DocumentIncarnation')
        events = obj.get('Events', [])
        if not isinstance(events, list):
            raise ImdsProtocolError('Events in the document is not a list')
        return cls(incarnation=incarnation, events=tuple(ScheduledEvent.from_wire(e) for e in events))

    def to_wire(self, api_version=None):
        return {'DocumentIncarnation': self.incarnation,
                'Events': [event.to_wire(api_version) for event in self.events]}
