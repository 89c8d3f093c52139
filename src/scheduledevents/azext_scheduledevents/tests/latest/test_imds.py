# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The IMDS client against the emulator, a real server on loopback."""

import socket
import time

import pytest

from azext_scheduledevents.core.config import RetryPolicy
from azext_scheduledevents.core.errors import (ImdsProtocolError, ImdsRejectedError, ImdsResponseError,
                                               ImdsTimeoutError, ImdsUnreachableError, InvalidEndpointError,
                                               InvalidEventIdError)
from azext_scheduledevents.core.imds import ImdsClient, parse_endpoint

FAST = RetryPolicy(first_delay_in_seconds=0.01, max_delay_in_seconds=0.05, deadline_in_seconds=5)


def client_for(server, **kwargs):
    kwargs.setdefault('retry', FAST)
    return ImdsClient(server.url, **kwargs)


def imds_requests(server):
    return [r for r in server.requests() if r['path'].startswith('/metadata')]


def test_reads_the_document_and_sends_only_the_right_headers(emulator):
    emulator.add_events([{'EventType': 'Reboot', 'notice': 900}])
    with client_for(emulator) as client:
        document = client.get_document()
    assert [e.event_type for e in document.events] == ['Reboot']
    request = imds_requests(emulator)[-1]
    assert request['metadata_header'] == 'true'
    assert request['x_forwarded_for'] is None
    assert request['query'] == {'api-version': '2020-07-01'}


def test_vm_name_comes_from_instance_metadata(emulator):
    with client_for(emulator) as client:
        assert client.vm_name() == 'web_0'
    assert imds_requests(emulator)[-1]['query'] == {'api-version': '2021-02-01', 'format': 'text'}


def test_approve_posts_start_requests(emulator):
    event_id, = emulator.add_events([{'EventType': 'Freeze', 'notice': 900}])
    with client_for(emulator) as client:
        client.approve([event_id])
        assert client.get_document().get(event_id).event_status == 'Started'
    post = [r for r in imds_requests(emulator) if r['method'] == 'POST'][0]
    assert post['body'] == '{"StartRequests": [{"EventId": "%s"}]}' % event_id


def test_approve_refuses_malformed_ids_before_sending(emulator):
    with client_for(emulator) as client, pytest.raises(InvalidEventIdError):
        client.approve(['not-a-guid'])
    assert imds_requests(emulator) == []


@pytest.mark.parametrize('fault', [
    {'kind': 'status', 'status': 503, 'count': 2},
    {'kind': 'status', 'status': 500, 'count': 1},
    {'kind': 'status', 'status': 410, 'count': 3},
    {'kind': 'status', 'status': 429, 'retry_after': 0.05, 'count': 2},
    {'kind': 'reset', 'count': 2},
], ids=['503', '500', '410', '429-retry-after', 'reset'])
def test_transient_failures_are_retried(emulator, fault):
    emulator.add_fault(fault)
    with client_for(emulator) as client:
        assert client.get_document().incarnation >= 1
    statuses = [r['status'] for r in imds_requests(emulator)]
    assert statuses[-1] == 200
    assert len(statuses) == fault['count'] + 1


def test_retry_after_is_honoured(emulator):
    emulator.add_fault({'kind': 'status', 'status': 429, 'retry_after': 0.4, 'count': 1})
    started = time.monotonic()
    with client_for(emulator) as client:
        client.get_document()
    assert time.monotonic() - started >= 0.4


def test_approval_is_not_lost_when_the_connection_resets(emulator):
    event_id, = emulator.add_events([{'EventType': 'Reboot', 'notice': 900}])
    emulator.add_fault({'kind': 'reset', 'method': 'POST', 'count': 1})
    with client_for(emulator) as client:
        client.approve([event_id])
        assert client.get_document().get(event_id).event_status == 'Started'


def test_gives_up_at_the_deadline(emulator):
    emulator.add_fault({'kind': 'status', 'status': 503, 'count': None})
    policy = RetryPolicy(first_delay_in_seconds=0.05, max_delay_in_seconds=0.1, deadline_in_seconds=0.5)
    started = time.monotonic()
    with client_for(emulator, retry=policy) as client, pytest.raises(ImdsTimeoutError, match='503'):
        client.get_document()
    assert time.monotonic() - started < 4          # about 0.5 s: not FAST's 5 s, nor for ever
    assert len(imds_requests(emulator)) > 2


def test_a_slow_answer_within_the_deadline_is_waited_for(emulator):
    # The first call on a VM can take minutes to answer: the read timeout is the deadline, not a few seconds.
    emulator.add_fault({'kind': 'delay', 'seconds': 2.5, 'count': 1})
    with client_for(emulator) as client:
        assert client.get_document().events == ()


def test_a_hung_answer_ends_at_the_deadline(emulator):
    emulator.add_fault({'kind': 'delay', 'seconds': 3, 'count': 1})
    with client_for(emulator, retry=RetryPolicy(deadline_in_seconds=0.5)) as client:
        with pytest.raises(ImdsTimeoutError):
            client.get_document()


def test_rejected_api_version_names_the_newest_versions(emulator):
    with client_for(emulator, api_version='2001-01-01') as client:
        with pytest.raises(ImdsRejectedError, match=r'newest api-versions: 2020-07-01') as raised:
            client.get_document()
    assert raised.value.status == 400
    assert len(imds_requests(emulator)) == 1


def test_garbage_body_is_a_protocol_error(emulator):
    emulator.add_fault({'kind': 'garbage', 'count': 1})
    with client_for(emulator) as client, pytest.raises(ImdsProtocolError, match='not JSON'):
        client.get_document()


def test_unexpected_status_is_a_response_error(emulator):
    emulator.add_fault({'kind': 'status', 'status': 403, 'count': 1})
    with client_for(emulator) as client, pytest.raises(ImdsResponseError, match='403'):
        client.get_document()


def test_refused_connection_ends_at_once():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ImdsUnreachableError, match='is this an Azure VM'):
        ImdsClient(f'http://127.0.0.1:{port}').get_document()
    assert time.monotonic() - started < 5          # retried, it would go on for the 120 s deadline


def test_connect_timeout_ends_quickly():
    # A listener whose backlog is full never completes another handshake: a connect timeout on loopback.
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(0)
        fillers = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        policy = RetryPolicy(connect_timeout_in_seconds=0.3)
        started = time.monotonic()
        try:
            with pytest.raises(ImdsUnreachableError, match='timed out'):
                ImdsClient('http://%s:%d' % listener.getsockname(), retry=policy).get_document()
        finally:
            for filler in fillers:
                filler.close()
    assert time.monotonic() - started < 2


def test_proxy_variables_are_ignored(emulator, monkeypatch, proxy_trap):
    proxies, hits = proxy_trap
    for name, value in proxies.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with client_for(emulator) as client:
        client.get_document()
    assert hits == []
    assert imds_requests(emulator)[-1]['status'] == 200


def test_connection_is_kept_alive(emulator):
    ports = set()
    with client_for(emulator) as client:
        for _ in range(3):
            client.get_document()
            ports.add(client._conn.sock.getsockname()[1])
    assert len(ports) == 1


@pytest.mark.parametrize('endpoint', ['https://169.254.169.254', '169.254.169.254', 'http://', 'http://host:99999',
                                      'http://host/metadata', 'http://user@host', ''],
                         ids=['https', 'no-scheme', 'no-host', 'bad-port', 'path', 'userinfo', 'empty'])
def test_bad_endpoints_are_refused(endpoint):
    with pytest.raises(InvalidEndpointError):
        parse_endpoint(endpoint)


@pytest.mark.parametrize('endpoint, expected', [
    ('http://169.254.169.254', ('169.254.169.254', 80)),
    ('http://127.0.0.1:8169/', ('127.0.0.1', 8169)),
    ('http://[::1]:8169', ('::1', 8169)),
], ids=['default', 'port', 'ipv6'])
def test_good_endpoints(endpoint, expected):
    assert parse_endpoint(endpoint) == expected


def test_retry_delays_grow_and_are_capped():
    policy = RetryPolicy(first_delay_in_seconds=0.5, max_delay_in_seconds=8)
    assert [policy.delay(n, rng=lambda: 1.0) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert [policy.delay(n, rng=lambda: 0.0) for n in range(2)] == [0.25, 0.5]


def test_an_error_page_is_not_taken_for_the_vm_name(emulator):
    emulator.add_fault({'kind': 'garbage', 'count': 1, 'path': 'instance'})
    with client_for(emulator) as client, pytest.raises(ImdsProtocolError, match='not a VM name'):
        client.vm_name()
