# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Approving checks the document before the POST and reads it again after, against the emulator."""

import pytest

from azext_scheduledevents.core.approval import approve_events
from azext_scheduledevents.core.errors import EventNotFoundError, InvalidEventIdError
from azext_scheduledevents.core.imds import ImdsClient

UNKNOWN = '00000000-0000-0000-0000-000000000000'


def posts(server):
    return [r for r in server.requests() if r['method'] == 'POST']


def test_approves_and_reports_the_new_status(emulator):
    event_id, = emulator.add_events([{'EventType': 'Reboot'}])
    result, = approve_events(ImdsClient(emulator.url), [event_id])
    assert result.to_dict() == {'EventId': event_id, 'EventType': 'Reboot', 'StatusBefore': 'Scheduled',
                                'EventStatus': 'Started', 'ApprovalSent': True}


def test_unknown_ids_are_refused_and_nothing_is_sent(emulator):
    event_id, = emulator.add_events([{'EventType': 'Reboot'}])
    with pytest.raises(EventNotFoundError) as raised:
        approve_events(ImdsClient(emulator.url), [event_id, UNKNOWN])
    assert raised.value.event_ids == (UNKNOWN,)
    assert posts(emulator) == []


def test_force_sends_unknown_ids_and_says_they_are_absent(emulator):
    result, = approve_events(ImdsClient(emulator.url), [UNKNOWN], force=True)
    assert (result.status_before, result.status_after, result.sent) == ('NotInDocument', 'NotInDocument', True)
    assert len(posts(emulator)) == 1


def test_ids_are_sent_as_the_document_spells_them(emulator):
    event_id, = emulator.add_events([{'EventType': 'Freeze'}])
    approve_events(ImdsClient(emulator.url), [event_id.lower()])
    assert event_id in posts(emulator)[0]['body']


def test_started_events_are_not_sent_again(emulator):
    started, = emulator.add_events([{'EventType': 'Redeploy', 'already_started': True}])
    result, = approve_events(ImdsClient(emulator.url), [started])
    assert (result.status_after, result.sent) == ('Started', False)
    assert posts(emulator) == []


def test_duplicate_ids_are_sent_once(emulator):
    event_id, = emulator.add_events([{'EventType': 'Reboot'}])
    results = approve_events(ImdsClient(emulator.url), [event_id, event_id.lower()])
    assert len(results) == 1
    assert posts(emulator)[0]['body'].count(event_id) == 1


def test_malformed_ids_stop_everything_before_any_request(emulator):
    with pytest.raises(InvalidEventIdError):
        approve_events(ImdsClient(emulator.url), [UNKNOWN, 'x'])
    assert emulator.requests() == []
