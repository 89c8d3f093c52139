# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""End to end: the real az binary, the extension installed from its wheel, the emulator on loopback."""

import re
import signal
import socket
import time

import pytest

from .conftest import http_call

UNKNOWN = '00000000-0000-0000-0000-000000000000'
ENDPOINT = 'AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT'


def run(az, emulator, *args, **env):
    env.setdefault(ENDPOINT, emulator.url)
    return az.run('scheduled-events', *args, '--only-show-errors', **env)


def assert_clean_failure(result, message, code=None):
    assert result.returncode != 0, result
    if code is not None:
        assert result.returncode == code, result
    assert 'Traceback' not in result.stderr, result
    assert result.stderr.startswith('ERROR: '), result
    assert message in result.stderr.splitlines()[0], result


def imds_requests(emulator):
    return [r for r in emulator.requests() if r['path'].startswith('/metadata')]


def test_list_gives_every_field_and_the_derived_ones(az, emulator):
    emulator.add_events([{'EventType': 'Reboot', 'EventSource': 'User', 'Description': 'restart', 'notice': 900,
                          'DurationInSeconds': 7, 'Resources': ['web_0', 'web_3']}])
    result = run(az, emulator, 'list')
    assert result.returncode == 0, result
    event, = result.json
    assert set(event) == {'EventId', 'EventType', 'ResourceType', 'Resources', 'EventStatus', 'NotBefore',
                          'Description', 'EventSource', 'DurationInSeconds', 'AffectsThisVm', 'SecondsUntilNotBefore'}
    assert (event['EventType'], event['Resources'], event['AffectsThisVm']) == ('Reboot', ['web_0', 'web_3'], True)
    assert 880 <= event['SecondsUntilNotBefore'] <= 900


def test_empty_document_is_an_empty_list(az, emulator):
    result = run(az, emulator, 'list')
    assert (result.returncode, result.json) == (0, [])


def test_list_as_table_and_with_query(az, emulator):
    reboot, _ = emulator.add_events([{'EventType': 'Reboot'}, {'EventType': 'Freeze', 'Resources': ['web_1']}])
    table = run(az, emulator, 'list', '-o', 'table')
    assert table.returncode == 0, table
    header, rule, *rows = table.stdout.splitlines()
    assert header.split() == ['EventId', 'Type', 'Status', 'NotBefore', 'SecondsLeft', 'ThisVm', 'Source', 'Resources']
    assert len(rows) == 2 and 'yes' in rows[0] and 'no' in rows[1]
    query = run(az, emulator, 'list', '--query', "[?EventType=='Reboot'].EventId", '-o', 'tsv')
    assert query.stdout.strip() == reboot


def test_this_vm_keeps_only_this_vms_events(az, emulator):
    mine, _ = emulator.add_events([{'EventType': 'Reboot', 'Resources': ['web_3', 'web_0']},
                                   {'EventType': 'Freeze', 'Resources': ['web_1']}])
    result = run(az, emulator, 'list', '--this-vm')
    assert [e['EventId'] for e in result.json] == [mine]


def test_document_is_the_raw_document(az, emulator):
    emulator.add_events([{'EventType': 'Preempt'}])
    document = run(az, emulator, 'list', '--document').json
    assert set(document) == {'DocumentIncarnation', 'Events'}
    assert 'AffectsThisVm' not in document['Events'][0]


def test_show_one_event_and_a_missing_one(az, emulator):
    event_id, = emulator.add_events([{'EventType': 'Redeploy'}])
    shown = run(az, emulator, 'show', '--event-id', event_id.lower())
    assert shown.json['EventId'] == event_id
    missing = run(az, emulator, 'show', '--event-id', UNKNOWN)
    assert_clean_failure(missing, f'Event {UNKNOWN} is not in the Scheduled Events document', code=3)


def test_approve_starts_the_event_and_reports_it(az, emulator):
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'notice': 900}])
    result = run(az, emulator, 'approve', '--event-id', event_id)
    assert result.returncode == 0, result
    assert result.json == [{'EventId': event_id, 'EventType': 'Reboot', 'StatusBefore': 'Scheduled',
                            'EventStatus': 'Started', 'ApprovalSent': True}]
    assert [r['method'] for r in imds_requests(emulator)] == ['GET', 'POST', 'GET']


@pytest.mark.parametrize('bad_id', ['nope', f'{UNKNOWN}"}}]}}', '../../metadata'],
                         ids=['word', 'json-injection', 'path'])
def test_malformed_ids_are_refused_before_anything_is_sent(az, emulator, bad_id):
    result = run(az, emulator, 'approve', '--event-id', bad_id)
    assert_clean_failure(result, 'is not an event id')
    assert emulator.requests() == []


def test_unknown_id_is_refused_unless_forced(az, emulator):
    emulator.add_events([{'EventType': 'Reboot'}])
    refused = run(az, emulator, 'approve', '--event-id', UNKNOWN)
    assert_clean_failure(refused, UNKNOWN, code=3)
    assert [r['method'] for r in imds_requests(emulator)] == ['GET']
    forced = run(az, emulator, 'approve', '--event-id', UNKNOWN, '--force')
    assert forced.json[0]['EventStatus'] == 'NotInDocument' and forced.json[0]['ApprovalSent'] is True


def test_imds_down_is_one_clear_line(az, emulator):
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        closed = 'http://127.0.0.1:%d' % probe.getsockname()[1]
    started = time.monotonic()
    result = run(az, emulator, 'list', **{ENDPOINT: closed})
    assert_clean_failure(result, f'IMDS is not reachable at {closed}')
    assert 'is this an Azure VM?' in result.stderr
    assert time.monotonic() - started < 10


def test_400_body_is_explained(az, emulator):
    result = run(az, emulator, 'list', '--api-version', '2001-01-01')
    assert_clean_failure(result, 'api-version is invalid')
    assert 'newest api-versions: 2020-07-01' in result.stderr


@pytest.mark.parametrize('args, message', [
    (('--api-version', 'latest'), '--api-version'),
    (('--timeout', '0'), '--timeout'),
], ids=['api-version', 'timeout'])
def test_bad_options_are_refused_before_anything_is_sent(az, emulator, args, message):
    result = run(az, emulator, 'list', *args)
    assert_clean_failure(result, message)
    assert emulator.requests() == []


def test_garbage_json_is_a_clear_error(az, emulator):
    emulator.add_fault({'kind': 'garbage', 'count': 1})
    assert_clean_failure(run(az, emulator, 'list'), 'not JSON')


def test_transient_faults_are_ridden_out(az, emulator):
    emulator.add_fault({'kind': 'status', 'status': 503, 'count': 2})
    emulator.add_fault({'kind': 'reset', 'count': 1})
    emulator.add_events([{'EventType': 'Freeze'}])
    result = run(az, emulator, 'list')
    assert result.returncode == 0, result
    assert [r['status'] for r in imds_requests(emulator)][:4] == [503, 503, 0, 200]


def test_proxy_variables_do_not_divert_imds(az, emulator, proxy_trap):
    proxies, hits = proxy_trap
    emulator.add_events([{'EventType': 'Reboot'}])
    result = run(az, emulator, 'list', **proxies)
    assert result.returncode == 0, result
    assert len(result.json) == 1
    assert hits == []


def test_endpoint_from_az_config(az, emulator):
    config_dir = az.fresh_config_dir('config-endpoint')
    emulator.add_events([{'EventType': 'Terminate'}])
    assert az.run('config', 'set', f'scheduled_events.imds_endpoint={emulator.url}',
                  AZURE_CONFIG_DIR=config_dir).returncode == 0
    result = az.run('scheduled-events', 'list', '--only-show-errors', AZURE_CONFIG_DIR=config_dir)
    assert [e['EventType'] for e in result.json] == ['Terminate']


@pytest.mark.parametrize('endpoint', ['https://127.0.0.1:1', 'not a url'], ids=['https', 'garbage'])
def test_bad_endpoint_setting_is_explained(az, emulator, endpoint):
    assert_clean_failure(run(az, emulator, 'list', **{ENDPOINT: endpoint}), 'is not a plain http://host[:port] URL')


@pytest.mark.parametrize('command', ['list', 'show', 'approve', 'emulator'])
def test_every_command_has_help_with_examples(az, command):
    result = az.run('scheduled-events', command, '--help')
    assert result.returncode == 0, result
    assert 'Examples' in result.stdout
    for line in re.findall(r'^    --[\w-]+.*$', result.stdout, re.M):
        assert ':' in line, f'option without help: {line}'


def test_emulator_command_serves_until_sigterm(az):
    proc = az.popen('scheduled-events', 'emulator', '--port', '0', '--scenario', 'vmss', '--vm-name', 'web_3',
                    '--speed', '60', '--only-show-errors')
    try:
        banner = proc.stderr.readline()
        url = re.search(r'listening on (\S+)', banner).group(1)
        events = az.run('scheduled-events', 'list', '--this-vm', '--only-show-errors', **{ENDPOINT: url}).json
        assert [(e['EventType'], e['Resources']) for e in events] == [('Reboot', ['web_0', 'web_3'])]
        assert http_call(url, 'GET', '/_emulator/state')[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize('args, message', [
    (('--scenario', 'nonesuch'), 'no scenario'),
    (('--terminate-notice', 'PT1M'), 'PT5M to PT15M'),
    (('--speed', '0'), '--speed'),
], ids=['scenario', 'terminate-notice', 'speed'])
def test_emulator_command_refuses_bad_input(az, args, message):
    result = az.run('scheduled-events', 'emulator', '--port', '0', *args, '--only-show-errors', timeout=30)
    assert_clean_failure(result, message)
