# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The status file, ``<state dir>/status.json``: how the running watcher is doing, in one small flat JSON
object that fleet tooling reads through Run Command (``cat /var/lib/scheduled-events/status.json``). Pure:
a ``watchstats.Snapshot`` in, the file's text out. Times are ISO 8601 UTC; counts are since the watcher
started.

    version                     the extension's version
    started                     when this watcher started
    last_poll                   when it last polled IMDS (null before the first poll)
    last_poll_result            "ok", or what went wrong, in one line (null before the first poll)
    imds_failures_in_a_row      polls in a row that IMDS did not answer well (0 after an answer)
    events_pending              how many events it acts on that have not completed
    events_pending_ids          their EventIds
    steps_not_ok                steps cut off or not successful: {"event", "transition", "step", "status"}
                                each (status interrupted, failed, timeout or late), while the state keeps the event
    last_approval_event         the EventId of the last approval decision (null before one)
    last_approval_time          when it was made
    last_approval_state         approved, by-peer, withheld, not-sent or failed

    {"version": "1.0.0b1", "started": "2024-05-01T08:00:00Z", "last_poll": "2024-05-01T09:12:03Z",
     "last_poll_result": "ok", "imds_failures_in_a_row": 0, "events_pending": 1, "events_pending_ids":
     ["C7061BAC-AFDC-4513-B24B-AA5F13A16123"], "steps_not_ok": [], "last_approval_event": ...}
"""

import json

from .times import iso_utc

STATUS_FILE = 'status.json'
OK = 'ok'


def render(snapshot):
    """The status file's text for one ``Snapshot``: one JSON object and a newline."""
    event_id, when, state = snapshot.last_approval or (None, None, None)
    status = {
        'version': snapshot.version,
        'started': iso_utc(snapshot.started),
        'last_poll': _time(snapshot.last_poll),
        'last_poll_result': _result(snapshot),
        'imds_failures_in_a_row': snapshot.imds_failures_in_a_row,
        'events_pending': len(snapshot.events.pending),
        'events_pending_ids': list(snapshot.events.pending),
        'steps_not_ok': [{'event': p.event_id, 'transition': p.transition, 'step': p.step, 'status': p.status}
                         for p in snapshot.events.problems],
        'last_approval_event': event_id,
        'last_approval_time': _time(when),
        'last_approval_state': state,
    }
    return json.dumps(status) + '\n'


def _result(snapshot):
    if snapshot.last_poll is None:
        return None
    return OK if snapshot.last_poll_error is None else snapshot.last_poll_error


def _time(epoch):
    return None if epoch is None else iso_utc(epoch)
