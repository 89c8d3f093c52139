# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Event timelines for the emulator, and the built-in scenarios that ship as JSON in ``scenarios/``.

A scenario file is ``{"description": "...", "events": [<plan>, ...]}``. A plan holds the IMDS fields
(``EventType`` is required; ``EventSource``, ``Description``, ``DurationInSeconds``, ``Resources``,
``EventId`` are optional) and its timeline, in seconds at real speed:

    at                 when the event appears (default 0)
    notice             from appearing to NotBefore (default: the documented minimum for the type)
    runs_for           how long it stays Started before leaving the document (default 30)
    cancel_after       from appearing to being withdrawn while still Scheduled (canceled maintenance)
    reschedule_after   from appearing to NotBefore moving, to reschedule_notice from then
    already_started    appears Started with no Scheduled phase (a hardware failure)

``"{vm}"`` in Resources stands for the emulated VM's name.
"""

import json
import os
import re
from dataclasses import asdict, dataclass, replace

from ..core.config import EMULATOR_SPEED
from ..core.errors import ScenarioError
from ..core.events import MINIMUM_NOTICE_IN_SECONDS, validate_event_id
from ..core.vocabulary import EventType

SCENARIO_DIR = os.path.join(os.path.dirname(__file__), 'scenarios')
DEFAULT_RUNS_FOR_IN_SECONDS = 30.0

_TIMELINE_FIELDS = ('at', 'notice', 'runs_for', 'cancel_after', 'reschedule_after', 'reschedule_notice')
_WIRE_FIELDS = {'EventType': 'event_type', 'EventSource': 'event_source', 'Description': 'description',
                'DurationInSeconds': 'duration_in_seconds', 'Resources': 'resources', 'EventId': 'event_id'}


@dataclass(frozen=True, kw_only=True)
class EventPlan:  # pylint: disable=too-many-instance-attributes
    """One event's fields and timeline (seconds on the emulator's clock, already divided by speed)."""

    event_type: str
    resources: tuple
    event_source: str | None = 'Platform'
    description: str | None = None
    duration_in_seconds: int | None = -1
    event_id: str | None = None
    at: float = 0.0
    notice: float = 0.0
    runs_for: float = DEFAULT_RUNS_FOR_IN_SECONDS
    cancel_after: float | None = None
    reschedule_after: float | None = None
    reschedule_notice: float | None = None
    already_started: bool = False

    @classmethod
    def from_json(cls, obj, *, vm_name, speed=EMULATOR_SPEED, terminate_notice=None):
        """Read a plan from its JSON form; ``speed`` compresses every duration of the timeline."""
        if not isinstance(obj, dict):
            raise ScenarioError('an event plan must be a JSON object')
        unknown = set(obj) - set(_WIRE_FIELDS) - set(_TIMELINE_FIELDS) - {'already_started'}
        if unknown:
            raise ScenarioError(f'unknown event plan fields: {", ".join(sorted(unknown))}')
        event_type = obj.get('EventType')
        if not isinstance(event_type, str) or not event_type:
            raise ScenarioError('an event plan needs an EventType, such as "Reboot"')
        if obj.get('EventId') is not None:
            validate_event_id(obj['EventId'])
        resources = obj.get('Resources', ['{vm}'])
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise ScenarioError('Resources must be a list of VM names')
        timeline = {}
        for name in _TIMELINE_FIELDS:
            value = obj.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ScenarioError(f'{name} must be a number of seconds, 0 or more')
            timeline[name] = value
        if (timeline['reschedule_after'] is None) != (timeline['reschedule_notice'] is None):
            raise ScenarioError('reschedule_after and reschedule_notice go together')
        notice = timeline['notice']
        if notice is None:
            notice = terminate_notice if event_type == EventType.TERMINATE and terminate_notice else \
                MINIMUM_NOTICE_IN_SECONDS.get(event_type, 15 * 60)
        scale = {name: None if value is None else value / speed for name, value in timeline.items()}
        return cls(
            event_type=event_type,
            resources=tuple(vm_name if r == '{vm}' else r for r in resources),
            event_source=obj.get('EventSource', 'Platform'),
            description=obj.get('Description'),
            duration_in_seconds=obj.get('DurationInSeconds', -1),
            event_id=obj.get('EventId'),
            at=scale['at'] or 0.0,
            notice=notice / speed,
            runs_for=(DEFAULT_RUNS_FOR_IN_SECONDS if timeline['runs_for'] is None else timeline['runs_for']) / speed,
            cancel_after=scale['cancel_after'],
            reschedule_after=scale['reschedule_after'],
            reschedule_notice=scale['reschedule_notice'],
            already_started=bool(obj.get('already_started', False)),
        )

    def with_event_id(self, event_id):
        return replace(self, event_id=event_id)

    def to_json(self):
        """The plan as stored (timeline already scaled), for the emulator's state view."""
        fields = asdict(self)
        wire = {wire_name: fields.pop(name) for wire_name, name in _WIRE_FIELDS.items()}
        wire['Resources'] = list(wire['Resources'])
        return {**wire, **fields}


def parse_terminate_notice(text):
    """A scale set's notBeforeTimeout (``'PT5M'`` .. ``'PT15M'``) -> seconds."""
    match = re.match(r'^PT(?:(\d+)M)?(?:(\d+)S)?$', text or '')
    seconds = int(match.group(1) or 0) * 60 + int(match.group(2) or 0) if match and any(match.groups()) else None
    if seconds is None or not 5 * 60 <= seconds <= 15 * 60:
        raise ScenarioError(f'terminate notice {text!r} must be an ISO 8601 duration from PT5M to PT15M')
    return seconds


def builtin_scenarios():
    """Names of the scenarios that ship with the extension."""
    return sorted(name[:-len('.json')] for name in os.listdir(SCENARIO_DIR) if name.endswith('.json'))


def load_scenario(name_or_path):
    """A built-in scenario by name, or a scenario file by path -> (description, [plan JSON, ...])."""
    path = os.path.join(SCENARIO_DIR, name_or_path + '.json')
    if not os.path.isfile(path):
        path = name_or_path
    try:
        with open(path, encoding='utf-8') as handle:
            scenario = json.load(handle)
    except FileNotFoundError:
        raise ScenarioError(f'no scenario {name_or_path!r}: give a file or one of '
                            f'{", ".join(builtin_scenarios())}') from None
    except (OSError, ValueError) as ex:
        raise ScenarioError(f'cannot read scenario {name_or_path!r}: {ex}') from None
    if not isinstance(scenario, dict) or not isinstance(scenario.get('events'), list):
        raise ScenarioError(f'scenario {name_or_path!r} must be {{"description": ..., "events": [...]}}')
    return scenario.get('description', ''), scenario['events']
