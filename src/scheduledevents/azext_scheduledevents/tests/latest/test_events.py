# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------

from datetime import datetime, timezone

import pytest

from azext_scheduledevents.core.errors import ImdsProtocolError, InvalidEventIdError
from azext_scheduledevents.core.events import EventsDocument, ScheduledEvent, parse_rfc1123, validate_event_id
from azext_scheduledevents.core.times import format_http_date

EVENT = {
    'EventId': 'C7061BAC-AFDC-4513-B24B-AA5F13A16123',
    'EventType': 'Reboot',
    'ResourceType': 'VirtualMachine',
    'Resources': ['myvmss_3', 'myvmss_7'],
    'EventStatus': 'Scheduled',
    'NotBefore': 'Mon, 19 Sep 2016 18:29:47 GMT',
    'Description': 'Virtual machine is going to be restarted as requested by authorized user.',
    'EventSource': 'User',
    'DurationInSeconds': 7,
}


def test_parses_the_documented_example():
    document = EventsDocument.from_wire({'DocumentIncarnation': 2, 'Events': [EVENT]})
    event = document.events[0]
    assert document.incarnation == 2
    assert event.event_id == EVENT['EventId']
    assert event.resources == ('myvmss_3', 'myvmss_7')
    assert event.not_before == datetime(2016, 9, 19, 18, 29, 47, tzinfo=timezone.utc)
    assert event.duration_in_seconds == 7
    assert event.to_wire() == EVENT


def test_empty_document_is_not_an_error():
    assert EventsDocument.from_wire({'DocumentIncarnation': 1, 'Events': []}).events == ()


@pytest.mark.parametrize('missing', ['Description', 'EventSource', 'DurationInSeconds'])
def test_fields_of_later_api_versions_are_absent_not_errors(missing):
    event = ScheduledEvent.from_wire({k: v for k, v in EVENT.items() if k != missing})
    assert missing not in event.to_wire()


def test_unknown_fields_and_types_are_kept():
    event = ScheduledEvent.from_wire(dict(EVENT, EventType='Hibernate', FutureField={'a': 1}))
    assert not event.is_known_type
    assert event.to_wire()['EventType'] == 'Hibernate'
    assert event.to_wire()['FutureField'] == {'a': 1}


def test_started_event_has_empty_not_before():
    event = ScheduledEvent.from_wire(dict(EVENT, EventStatus='Started', NotBefore=''))
    assert event.not_before is None
    assert event.seconds_until_not_before(datetime.now(timezone.utc)) is None
    assert event.to_wire()['NotBefore'] == ''


@pytest.mark.parametrize('api_version, absent', [
    ('2019-01-01', {'Description', 'EventSource', 'DurationInSeconds'}),
    ('2019-04-01', {'EventSource', 'DurationInSeconds'}),
    ('2019-08-01', {'DurationInSeconds'}),
    ('2020-07-01', set()),
], ids=['2019-01-01', '2019-04-01', '2019-08-01', '2020-07-01'])
def test_wire_form_follows_the_api_version(api_version, absent):
    wire = ScheduledEvent.from_wire(EVENT).to_wire(api_version)
    assert set(EVENT) - set(wire) == absent


@pytest.mark.parametrize('name, affected', [
    ('myvmss_3', True),
    ('myvmss_7', True),
    ('myvmss000003', False),      # the hostname, which Microsoft's old sample compared, never matches
    ('myvmss_', False),
    ('MYVMSS_3', False),
], ids=['first', 'second', 'hostname', 'prefix', 'case'])
def test_affects_matches_compute_name_exactly(name, affected):
    assert ScheduledEvent.from_wire(EVENT).affects(name) is affected


def test_seconds_until_not_before():
    event = ScheduledEvent.from_wire(EVENT)
    assert event.seconds_until_not_before(datetime(2016, 9, 19, 18, 28, 47, tzinfo=timezone.utc)) == 60
    assert event.seconds_until_not_before(datetime(2016, 9, 19, 18, 30, 47, tzinfo=timezone.utc)) == -60


def test_view_adds_the_derived_fields():
    view = ScheduledEvent.from_wire(EVENT).to_view(vm_name='myvmss_7',
                                                   now=datetime(2016, 9, 19, 18, 29, 40, tzinfo=timezone.utc))
    assert view['AffectsThisVm'] is True
    assert view['SecondsUntilNotBefore'] == 7


def test_document_lookup_ignores_guid_case():
    document = EventsDocument.from_wire({'DocumentIncarnation': 3, 'Events': [EVENT]})
    assert document.get(EVENT['EventId'].lower()).event_id == EVENT['EventId']
    assert document.get('00000000-0000-0000-0000-000000000000') is None


@pytest.mark.parametrize('document, message', [
    ([], 'not a JSON object'),
    ({'Events': []}, 'DocumentIncarnation'),
    ({'DocumentIncarnation': '2', 'Events': []}, 'DocumentIncarnation'),
    ({'DocumentIncarnation': 2, 'Events': {}}, 'not a list'),
    ({'DocumentIncarnation': 2, 'Events': ['x']}, 'not an object'),
    ({'DocumentIncarnation': 2, 'Events': [dict(EVENT, EventId=None)]}, 'EventId'),
    ({'DocumentIncarnation': 2, 'Events': [dict(EVENT, Resources='myvmss_3')]}, 'Resources'),
    ({'DocumentIncarnation': 2, 'Events': [dict(EVENT, NotBefore='2016-09-19T18:29:47Z')]}, 'RFC 1123'),
    ({'DocumentIncarnation': 2, 'Events': [dict(EVENT, DurationInSeconds='7')]}, 'DurationInSeconds'),
], ids=['list', 'no-incarnation', 'string-incarnation', 'events-object', 'event-string', 'no-id',
        'resources-string', 'iso-date', 'duration-string'])
def test_malformed_documents_are_protocol_errors(document, message):
    with pytest.raises(ImdsProtocolError, match=message):
        EventsDocument.from_wire(document)


def test_rfc1123_round_trip():
    moment = datetime(2026, 11, 24, 8, 5, 9, 999000, tzinfo=timezone.utc)
    assert format_http_date(moment) == 'Tue, 24 Nov 2026 08:05:09 GMT'
    assert parse_rfc1123('Tue, 24 Nov 2026 08:05:09 GMT') == moment.replace(microsecond=0)
    assert parse_rfc1123('') is None


@pytest.mark.parametrize('event_id', ['C7061BAC-AFDC-4513-B24B-AA5F13A16123', 'c7061bac-afdc-4513-b24b-aa5f13a16123'])
def test_valid_event_ids(event_id):
    assert validate_event_id(event_id) == event_id


GOOD_ID = 'C7061BAC-AFDC-4513-B24B-AA5F13A16123'


@pytest.mark.parametrize('event_id', ['', 'nope', GOOD_ID[:-1], '{%s}' % GOOD_ID, GOOD_ID + '"; rm -rf /',
                                      GOOD_ID + '\n', None],
                         ids=['empty', 'word', 'short', 'braces', 'injection', 'newline', 'none'])
def test_invalid_event_ids(event_id):
    with pytest.raises(InvalidEventIdError):
        validate_event_id(event_id)
