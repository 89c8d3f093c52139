# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The emulator keeps IMDS's contract, checked over HTTP with bare requests."""

import json
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from azext_scheduledevents.core.events import parse_rfc1123
from azext_scheduledevents.emulator.imds import ImdsEmulator
from azext_scheduledevents.core.errors import ScenarioError
from azext_scheduledevents.emulator.scenarios import builtin_scenarios, parse_terminate_notice

from .conftest import http_call, python_child_env

SE = '/metadata/scheduledevents?api-version=2020-07-01'
META = {'Metadata': 'true'}


def get_document(server, path=SE):
    status, _, body = http_call(server.url, 'GET', path, headers=META)
    assert status == 200, body
    return json.loads(body)


def approve(server, *event_ids):
    return http_call(server.url, 'POST', SE, {'StartRequests': [{'EventId': i} for i in event_ids]}, META)[0]


def test_missing_metadata_header_is_400(emulator):
    status, _, body = http_call(emulator.url, 'GET', SE)
    assert status == 400
    assert json.loads(body) == {'error': 'Bad request. Required metadata header not specified'}


def test_x_forwarded_for_is_refused(emulator):
    status, _, _ = http_call(emulator.url, 'GET', SE, headers={'Metadata': 'true', 'X-Forwarded-For': '10.0.0.1'})
    assert status == 400


@pytest.mark.parametrize('query', ['', '?api-version=', '?api-version=2099-01-01'], ids=['missing', 'empty', 'unknown'])
def test_bad_api_version_gets_the_real_error_body(emulator, query):
    status, _, body = http_call(emulator.url, 'GET', '/metadata/scheduledevents' + query, headers=META)
    assert status == 400
    error = json.loads(body)
    assert error['error'].startswith('Bad request. api-version is invalid or was not specified')
    assert error['newest-versions'][0] == '2020-07-01'


def test_older_api_version_omits_later_fields(emulator):
    emulator.add_events([{'EventType': 'Reboot', 'Description': 'd', 'DurationInSeconds': 5}])
    event = get_document(emulator, '/metadata/scheduledevents?api-version=2019-01-01')['Events'][0]
    assert not {'Description', 'EventSource', 'DurationInSeconds'} & set(event)
    assert get_document(emulator)['Events'][0]['DurationInSeconds'] == 5


def test_not_before_is_rfc1123_and_honours_the_notice(emulator):
    emulator.add_events([{'EventType': 'Preempt'}])
    event = get_document(emulator)['Events'][0]
    assert re.fullmatch(r'[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT', event['NotBefore'])
    left = (parse_rfc1123(event['NotBefore']) - datetime.now(timezone.utc)).total_seconds()
    assert 27 <= left <= 30           # Preempt's documented 30 s, NotBefore in whole seconds, never later
    assert re.fullmatch(r'[0-9A-F]{8}-([0-9A-F]{4}-){3}[0-9A-F]{12}', event['EventId'])


def test_lifecycle_keeps_the_event_id_and_bumps_the_incarnation(timed_emulator, clock):
    event_id, = timed_emulator.add_events([{'EventType': 'Reboot', 'notice': 60, 'runs_for': 30}])
    first = get_document(timed_emulator)
    assert first['Events'][0]['EventStatus'] == 'Scheduled'
    clock.advance(60)
    started = get_document(timed_emulator)
    assert started['Events'][0] == dict(first['Events'][0], EventStatus='Started', NotBefore='')
    assert started['Events'][0]['EventId'] == event_id
    assert started['DocumentIncarnation'] > first['DocumentIncarnation']
    clock.advance(30)
    done = get_document(timed_emulator)
    assert done['Events'] == []
    assert done['DocumentIncarnation'] > started['DocumentIncarnation']
    assert get_document(timed_emulator)['DocumentIncarnation'] == done['DocumentIncarnation']


def test_approval_starts_the_event_now(timed_emulator, clock):
    event_id, = timed_emulator.add_events([{'EventType': 'Redeploy', 'notice': 600, 'runs_for': 10}])
    before = get_document(timed_emulator)
    assert approve(timed_emulator, event_id.lower()) == 200
    after = get_document(timed_emulator)
    assert after['Events'][0]['EventStatus'] == 'Started'
    assert after['Events'][0]['NotBefore'] == ''
    assert after['DocumentIncarnation'] == before['DocumentIncarnation'] + 1
    assert approve(timed_emulator, event_id) == 200          # approving again is a no-op
    assert get_document(timed_emulator)['DocumentIncarnation'] == after['DocumentIncarnation']
    clock.advance(10)
    assert get_document(timed_emulator)['Events'] == []


def test_unknown_id_is_answered_but_changes_nothing(emulator):
    emulator.add_events([{'EventType': 'Reboot'}])
    before = get_document(emulator)
    assert approve(emulator, '00000000-0000-0000-0000-000000000000') == 200
    assert get_document(emulator) == before


@pytest.mark.parametrize('body', [b'', b'not json', b'{}', b'{"StartRequests": []}', b'{"StartRequests": [{"Id": 1}]}'],
                         ids=['empty', 'garbage', 'no-key', 'empty-list', 'no-event-id'])
def test_malformed_approval_is_400(emulator, body):
    assert http_call(emulator.url, 'POST', SE, body, META)[0] == 400


def test_canceled_event_leaves_while_scheduled(timed_emulator, clock):
    timed_emulator.add_events([{'EventType': 'Reboot', 'notice': 900, 'cancel_after': 60}])
    assert get_document(timed_emulator)['Events'][0]['EventStatus'] == 'Scheduled'
    clock.advance(60)
    assert get_document(timed_emulator)['Events'] == []


def test_rescheduled_event_moves_not_before(timed_emulator, clock):
    timed_emulator.add_events([{'EventType': 'Reboot', 'notice': 900, 'reschedule_after': 120,
                                'reschedule_notice': 1800}])
    first = get_document(timed_emulator)['Events'][0]
    clock.advance(120)
    moved = get_document(timed_emulator)['Events'][0]
    assert moved['EventId'] == first['EventId']
    delta = (parse_rfc1123(moved['NotBefore']) - parse_rfc1123(first['NotBefore'])).total_seconds()
    assert 1019 <= delta <= 1021      # from 900 s after appearing to 120 + 1800 s after appearing


def test_hardware_failure_appears_started(emulator):
    emulator.add_events([{'EventType': 'Redeploy', 'already_started': True}])
    event = get_document(emulator)['Events'][0]
    assert (event['EventStatus'], event['NotBefore']) == ('Started', '')


def test_events_appear_at_their_time(timed_emulator, clock):
    timed_emulator.add_events([{'EventType': 'Freeze', 'at': 30}])
    assert get_document(timed_emulator)['Events'] == []
    clock.advance(30)
    assert [e['EventType'] for e in get_document(timed_emulator)['Events']] == ['Freeze']


def test_several_events_at_once(emulator):
    emulator.add_events([{'EventType': t} for t in ('Freeze', 'Reboot', 'Redeploy', 'Preempt', 'Terminate')])
    events = get_document(emulator)['Events']
    assert [e['EventType'] for e in events] == ['Freeze', 'Reboot', 'Redeploy', 'Preempt', 'Terminate']
    assert len({e['EventId'] for e in events}) == 5


def test_rate_limit_answers_429():
    with ImdsEmulator(rate_limit=5) as server:
        statuses = [http_call(server.url, 'GET', SE, headers=META)[0] for _ in range(12)]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses


def test_instance_metadata(emulator):
    status, _, body = http_call(emulator.url, 'GET', '/metadata/instance?api-version=2021-02-01', headers=META)
    compute = json.loads(body)['compute']
    assert (status, compute['name'], compute['vmScaleSetName']) == (200, 'web_0', 'web')
    assert compute['platformFaultDomain'] == '0'       # every value is a string
    leaf = '/metadata/instance/compute/name?api-version=2021-02-01'
    assert http_call(emulator.url, 'GET', leaf, headers=META)[0] == 400          # leaves need format=text
    assert http_call(emulator.url, 'GET', leaf + '&format=text', headers=META)[2] == b'web_0'


def test_unknown_path_and_method(emulator):
    assert http_call(emulator.url, 'GET', '/metadata/nothing?api-version=2020-07-01', headers=META)[0] == 404
    assert http_call(emulator.url, 'DELETE', SE, headers=META)[0] == 405


def test_control_api_over_http(emulator):
    status, _, body = http_call(emulator.url, 'POST', '/_emulator/events',
                                {'events': [{'EventType': 'Reboot'}, {'EventType': 'Freeze', 'Resources': ['web_1']}]})
    ids = json.loads(body)['EventIds']
    assert status == 201 and len(ids) == 2
    assert [e['Resources'] for e in get_document(emulator)['Events']] == [['web_0'], ['web_1']]
    assert http_call(emulator.url, 'DELETE', f'/_emulator/events/{ids[0]}')[0] == 200
    assert [e['EventId'] for e in get_document(emulator)['Events']] == [ids[1]]
    assert http_call(emulator.url, 'POST', '/_emulator/faults', {'kind': 'status', 'status': 500, 'count': 1})[0] == 201
    assert http_call(emulator.url, 'GET', SE, headers=META)[0] == 500
    state = json.loads(http_call(emulator.url, 'GET', '/_emulator/state')[2])
    assert state['faults'] == [] and len(state['events']) == 1
    log = json.loads(http_call(emulator.url, 'GET', '/_emulator/requests')[2])['requests']
    assert [r['status'] for r in log] == [200, 200, 500]
    assert http_call(emulator.url, 'DELETE', '/_emulator/events')[0] == 200
    assert get_document(emulator)['Events'] == []


@pytest.mark.parametrize('path, body', [
    ('/_emulator/events', {'EventType': 'Reboot', 'notice': -1}),
    ('/_emulator/events', {'EventType': 'Reboot', 'bogus': 1}),
    ('/_emulator/events', {'notice': 5}),
    ('/_emulator/faults', {'kind': 'explode'}),
    ('/_emulator/faults', {'kind': 'status', 'probability': 2}),
], ids=['negative-notice', 'unknown-field', 'no-type', 'unknown-fault', 'bad-probability'])
def test_control_api_refuses_bad_input(emulator, path, body):
    status, _, answer = http_call(emulator.url, 'POST', path, body)
    assert status == 400 and json.loads(answer)['error']


@pytest.mark.parametrize('name', builtin_scenarios())
def test_builtin_scenarios_load_and_serve(name):
    with ImdsEmulator.from_scenario(name, vm_name='web_3', speed=60, rate_limit=0) as server:
        document = get_document(server)
    assert isinstance(document['DocumentIncarnation'], int)
    if name not in ('empty',):
        assert document['Events']


def test_vmss_scenario_names_two_instances():
    with ImdsEmulator.from_scenario('vmss', rate_limit=0) as server:
        reboot = get_document(server)['Events'][0]
    assert reboot['Resources'] == ['web_0', 'web_3']


def test_speed_compresses_notices():
    with ImdsEmulator.from_scenario('reboot', speed=60, rate_limit=0) as server:
        event = get_document(server)['Events'][0]
    left = (parse_rfc1123(event['NotBefore']) - datetime.now(timezone.utc)).total_seconds()
    assert 12 <= left <= 15           # 15 minutes at 60 times real time


def test_terminate_notice_follows_the_scale_set_setting():
    with ImdsEmulator.from_scenario('terminate', terminate_notice=parse_terminate_notice('PT10M'), rate_limit=0) as s:
        event = get_document(s)['Events'][0]
    left = (parse_rfc1123(event['NotBefore']) - datetime.now(timezone.utc)).total_seconds()
    assert 597 <= left <= 600


@pytest.mark.parametrize('text', ['PT4M', 'PT16M', '5', 'P1D', '', 'PT'])
def test_terminate_notice_outside_pt5m_pt15m_is_refused(text):
    with pytest.raises(ScenarioError):
        parse_terminate_notice(text)


def test_unknown_scenario_is_a_clear_error():
    with pytest.raises(ScenarioError, match='no scenario'):
        ImdsEmulator.from_scenario('nonesuch')


def test_python_dash_m_runs_the_same_emulator():
    proc = subprocess.Popen([sys.executable, '-m', 'azext_scheduledevents.emulator', '--port', '0',
                             '--scenario', 'preempt'], stderr=subprocess.PIPE, text=True, env=python_child_env())
    try:
        url = re.search(r'listening on (\S+)', proc.stderr.readline()).group(1)
        host_port = type('Server', (), {'url': url})
        assert get_document(host_port)['Events'][0]['EventType'] == 'Preempt'
    finally:
        proc.terminate()
    assert proc.wait(timeout=10) == 0


def test_python_dash_m_refuses_a_bad_scenario():
    done = subprocess.run([sys.executable, '-m', 'azext_scheduledevents.emulator', '--scenario', 'nonesuch'],
                          capture_output=True, text=True, timeout=30, check=False, env=python_child_env())
    assert done.returncode == 2
    assert done.stderr.strip().startswith('error: no scenario') and 'Traceback' not in done.stderr
