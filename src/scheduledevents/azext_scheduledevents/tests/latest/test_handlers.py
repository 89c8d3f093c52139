# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Commands, webhooks, Event Grid and syslog, each against a real peer: a process, an HTTP receiver,
a Unix datagram socket."""

import json
import logging
import socket
import ssl
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
    """A loopback HTTP endpoint (HTTPS with ``tls``, a ``fakearm.tls.Certificates``) that records what it is
    sent. Each request gets the next of ``answers``: a status, ``(status, retry_after)``, ``'drop'`` (the
    connection is closed unanswered) or ``'hang'`` (no answer until the receiver closes); then 200.
    ``fail_first`` is that many 503s first."""

    def __init__(self, fail_first=0, *, answers=(), tls=None):
        self.requests = []
        self.answers = [503] * fail_first + list(answers)
        self.closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length']))
                receiver.requests.append({'path': self.path, 'headers': dict(self.headers), 'body': json.loads(body)})
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if answer == 'drop':
                    self.close_connection = True
                    return
                if answer == 'hang':
                    receiver.closing.wait(30)
                    answer = 200
                status, retry_after = answer if isinstance(answer, tuple) else (answer, None)
                self.send_response(status)
                if retry_after is not None:
                    self.send_header('Retry-After', retry_after)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        scheme = 'http'
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls.cert), str(tls.key))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = 'https'
        self.url = '%s://127.0.0.1:%d' % (scheme, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.closing.set()
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
    assert result.status == 'timeout' and time.monotonic() - started < 10  # not the 30 s it sleeps
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


def quick(sink_class, url, **kwargs):
    """A sink whose waits are recorded instead of slept (``.sleeps``), with the jitter at its lowest."""
    sleeps = []
    sink = sink_class(url, sleep=sleeps.append, rng=lambda: 0.0, **kwargs)
    sink.sleeps = sleeps
    return sink


def test_webhook_retries_transient_answers_with_backoff():
    server = Receiver(answers=[503, 502])
    try:
        sink = quick(WebhookSink, server.url, source='/x')
        assert sink.notify(LINE)
        assert len(server.requests) == 3
        assert sink.sleeps == [0.25, 0.5]         # 0.5 s doubling, drawn from its upper half
    finally:
        server.close()


def test_webhook_waits_as_long_as_retry_after_asks():
    server = Receiver(answers=[(429, '2')])
    try:
        sink = quick(WebhookSink, server.url, source='/x')
        assert sink.notify(LINE) and sink.sleeps == [2.0]
    finally:
        server.close()


def test_webhook_gives_up_after_its_retries(caplog):
    server = Receiver(answers=[500] * 10)
    try:
        sink = quick(WebhookSink, server.url + '/hook', source='/x', retries=2)
        assert not sink.notify(LINE)
        assert len(server.requests) == 3
        assert f'Notification to {server.url}/hook failed: 500 Internal Server Error' in caplog.text
    finally:
        server.close()


def test_webhook_does_not_retry_what_the_receiver_refuses(caplog):
    server = Receiver(answers=[400])
    try:
        sink = quick(WebhookSink, server.url, source='/x')
        assert not sink.notify(LINE)
        assert (len(server.requests), sink.sleeps) == (1, [])
        assert 'answered 400' in caplog.text
    finally:
        server.close()


def test_webhook_sends_again_over_a_dropped_connection():
    server = Receiver(answers=['drop'])
    try:
        sink = quick(WebhookSink, server.url, source='/x')
        assert sink.notify(LINE) and len(server.requests) == 2
    finally:
        server.close()


def test_each_webhook_attempt_has_a_timeout(caplog):
    server = Receiver(answers=['hang'])
    try:
        started = time.monotonic()
        assert not WebhookSink(server.url, source='/x', timeout=0.3, retries=0).notify(LINE)
        assert time.monotonic() - started < 3
        assert 'no answer in time' in caplog.text
    finally:
        server.close()


def test_webhook_user_info_is_basic_auth_and_never_logged(caplog):
    caplog.set_level(logging.INFO)
    server = Receiver(answers=[503, 500])
    try:
        url = server.url.replace('//', '//hook%20user:pw@') + '/hook?sig=SECRET'
        assert quick(WebhookSink, url, source='/x').notify(LINE)
        assert server.requests[0]['headers']['Authorization'] == 'Basic aG9vayB1c2VyOnB3'     # "hook user:pw"
        assert server.requests[0]['path'] == '/hook?sig=SECRET'
        assert 'retrying' in caplog.text and 'SECRET' not in caplog.text and 'pw' not in caplog.text
    finally:
        server.close()


@pytest.fixture(scope='module')
def certificates(tmp_path_factory):
    from .fakearm.tls import make_certificates
    return make_certificates(tmp_path_factory.mktemp('tls'))


def test_webhook_over_https(certificates):
    server = Receiver(tls=certificates)
    try:
        context = ssl.create_default_context(cafile=str(certificates.ca))
        assert WebhookSink(server.url + '/hook', source='/x', ssl_context=context).notify(LINE)
        assert server.requests[0]['body']['subject'] == LINE['EventId']
    finally:
        server.close()


def test_an_untrusted_certificate_is_not_retried(certificates, caplog):
    server = Receiver(tls=certificates)
    try:
        sink = quick(WebhookSink, server.url, source='/x')      # the system's trust store knows no test CA
        assert not sink.notify(LINE)
        assert (server.requests, sink.sleeps) == ([], [])
        assert 'certificate not trusted' in caplog.text
    finally:
        server.close()


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
