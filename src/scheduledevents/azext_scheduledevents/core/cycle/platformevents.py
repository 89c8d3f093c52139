# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``--respect-maintenance``: which instances of a scale set scheduled events name, and how far along each
event is, ``{instance id: EventStatus}`` (Started wins where two events name one instance). Two sources:
Resource Graph where the scale set publishes there (one query), else every instance's own document
through Run Command (one fleet read).

    read = from_resource_graph(send, target)          # or from_instances(fleet, target, api_version)
    read()                                            # {'2': EventStatus.STARTED, '4': EventStatus.SCHEDULED}
"""

from ..resourcegraph import instance_ids, query_events
from ..vocabulary import EventStatus

_LIVE = (EventStatus.SCHEDULED, EventStatus.STARTED)


def from_resource_graph(send, target):
    """A reader of the events Resource Graph holds for ``target`` (an ``ArmTarget`` of the scale set)."""
    def read():
        named = []
        for row in query_events(send, statuses=[str(s) for s in _LIVE], target=target):
            properties = row.get('properties') or {}
            resources = properties.get('Resources') or []
            named += [(i, properties.get('EventStatus')) for i in instance_ids(target, resources)]
        return _by_instance(named)
    return read


def from_instances(fleet, target, api_version):
    """A reader of every instance's Scheduled Events document, through Run Command (``fleet.Fleet`` of the
    scale set ``target``). An instance that cannot be read names nothing itself; the events of a scale set
    show in the documents of all its instances."""
    def read():
        named = []
        for result in fleet.read(fleet.targets(), api_version=api_version):
            if result.ok:
                named += [(i, event.event_status) for event in result.document.events
                          for i in instance_ids(target, event.resources)]
        return _by_instance(named)
    return read


def _by_instance(named):
    found = {}
    for instance_id, status in named:
        if status in _LIVE and found.get(instance_id) != EventStatus.STARTED:
            found[instance_id] = EventStatus(status)
    return found
