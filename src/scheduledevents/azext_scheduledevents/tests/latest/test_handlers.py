# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Commands, webhooks, Event Grid and syslog, each against a real peer: a process, an HTTP receiver,
a Unix datagram socket."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from azext_scheduledevents.core.daemon import SinkOptions
from azext_scheduledevents.core.lines import format_text
from azext_scheduledevents.core.errors import HandlerConfigError
from azext_scheduledevents.core.handlers import CommandHandler, EventGridSink, SyslogSink, WebhookSink, redact_url

from .watching import Recorder

LINE = {'time': '2026-11-24T10:00:00.000Z', 'transition': 'scheduled',
        'key': 'C7061BAC-AFDC-4513-B24B-AA5F13A16123/scheduled', 'vm': 'web_0',
        'EventId': 'C7061BAC-AFDC-4513-B24B-AA5F13A16123', 'EventType': 'Reboot',
        'ResourceType': 'VirtualMachine', 'Resources': ['web_0', 'web_3'], 'EventStatus': 'Scheduled',
        'NotBefore': 'Tue, 24 Nov 2026 10:15:00 GMT', 'EventSource': 'Platform', 'DurationInSeconds': -1,
        'AffectsThisVm': True, 'SecondsUntilNotBefore': 900}


class Receiver:
    """A local HTTP endpoint that records what it is sent; it answers 503 to the first ``fail_first``."""

    def __init__(self, fail_first=0):
        self.requests = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length']))
                receiver.requests.append({'path': self.path, 'headers': dict(self.headers), 'body': json.loads(body)})
                status = 503 if receiver.fail_first else 200
                receiver.fail_first = max(0, receiver.fail_first - 1)
                self.send_response(status)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def test_command_gets_the_event_on_stdin_and_in_variables(tmp_path):
    recorder = Recorder.create(tmp_path)
    result = recorder.handler('x').run(LINE, timeout=10)
    assert (result.status, result.exit_code) == ('ok', 0)
    run, = recorder.runs()
    assert run['stdin'] == LINE
    assert run['env']['SCHEDULED_EVENT_RESOURCES'] == 'web_0,web_3'
    assert run['env']['SCHEDULED_EVENT_DEADLINE_SECONDS'] == '900'


def test_event_data_never_reaches_a_command_line(tmp_path):
    recorder = Recorder.create(tmp_path)
    hostile = dict(LINE, Description='$(touch pwned); `touch pwned`', Resources=['a;touch pwned'])
    recorder.handler('x').run(hostile, timeout=10)
    run, = recorder.runs()
    assert run['argv'] == ['x'] and not (tmp_path / 'pwned').exists()


def test_failing_and_timed_out_commands(tmp_path):
    recorder = Recorder.create(tmp_path)
    assert recorder.handler('x', exit_code=4).run(LINE, timeout=10).status == 'failed'
    started = time.monotonic()
    result = recorder.handler('x', sleep=30).run(LINE, timeout=0.5)
    assert result.status == 'timeout' and time.monotonic() - started < 5
    assert len(recorder.runs('end')) == 1          # the slow one was stopped, its end never written


@pytest.mark.parametrize('text, message', [('', 'empty'), ('/no/such/program', 'not found'), ('"unclosed', 'split')],
                         ids=['empty', 'missing', 'bad-quotes'])
def test_commands_that_can_never_run_are_refused_at_start(text, message):
    with pytest.raises(HandlerConfigError, match=message):
        CommandHandler.parse(text)


def test_webhook_is_a_cloudevent(receiver):
    assert WebhookSink(receiver.url + '/hook?code=secret', source='/scheduledevents/web_0').notify(LINE)
    request, = receiver.requests
    assert request['headers']['Content-Type'] == 'application/cloudevents+json; charset=utf-8'
    event = request['body']
    assert {'specversion', 'id', 'source', 'type', 'time', 'datacontenttype', 'data', 'subject'} <= set(event)
    assert (event['specversion'], event['id'], event['source']) == ('1.0', LINE['key'], '/scheduledevents/web_0')
    assert event['type'] == 'Microsoft.Compute.ScheduledEvents.Scheduled' and event['data'] == LINE


def test_webhook_retries_with_backoff():
    server = Receiver(fail_first=2)
    try:
        assert WebhookSink(server.url, source='/x').notify(LINE)
        assert len(server.requests) == 3
    finally:
        server.close()


def test_webhook_failure_is_reported_without_secrets(caplog):
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        url = 'http://user:pw@127.0.0.1:%d/hook?sig=SECRET' % probe.getsockname()[1]
    assert not WebhookSink(url, source='/x', retries=0).notify(LINE)
    assert 'SECRET' not in caplog.text and 'pw' not in caplog.text
    assert '127.0.0.1' in caplog.text


def test_event_grid_schema_and_key(receiver):
    sink = EventGridSink(receiver.url + '/api/events', key='k3y', vm_name='web_0')
    assert sink.notify(LINE)
    request, = receiver.requests
    assert request['headers']['aeg-sas-key'] == 'k3y'
    event, = request['body']
    assert {'id', 'subject', 'eventType', 'eventTime', 'data', 'dataVersion'} == set(event)
    assert event['subject'] == 'web_0/' + LINE['EventId']
    assert 'k3y' not in repr(sink)
    assert 'k3y' not in repr(SinkOptions(event_grid_topic=receiver.url, event_grid_key='k3y'))


def test_syslog_gets_the_line(tmp_path):
    path = str(tmp_path / 'log.sock')
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as log:
        log.bind(path)
        log.settimeout(5)
        SyslogSink(path).notify(LINE)
        message = log.recv(65536).decode()
    assert message.startswith('<30>scheduled-events: ')          # daemon.info
    assert json.loads(message.split(': ', 1)[1].rstrip('\x00')) == LINE


def test_redact_url():
    assert redact_url('https://u:p@h.example:8443/a/b?code=x#f') == 'https://h.example:8443/a/b'


def test_text_lines():
    assert format_text(LINE).split()[:4] == ['2026-11-24T10:00:00.000Z', 'scheduled', 'Reboot', LINE['EventId']]
    assert '(in 900 s)' in format_text(LINE)
