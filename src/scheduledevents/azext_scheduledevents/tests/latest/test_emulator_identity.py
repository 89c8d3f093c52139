# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The emulator's managed-identity token route, over bare HTTP and through ``ImdsClient.get_token``."""

import base64
import json
import time

import pytest

from azext_scheduledevents.core.config import RetryPolicy
from azext_scheduledevents.core.errors import ImdsProtocolError, ImdsRejectedError
from azext_scheduledevents.core.imds import ImdsClient
from azext_scheduledevents.emulator.imds import ImdsEmulator

from .conftest import http_call

TOKEN = '/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F'
META = {'Metadata': 'true'}
FAST = RetryPolicy(first_delay_in_seconds=0.01, max_delay_in_seconds=0.05, deadline_in_seconds=5)


def get_token(server, path=TOKEN, headers=None):
    status, _, body = http_call(server.url, 'GET', path, headers=META if headers is None else headers)
    return status, json.loads(body)


def claims(jwt):
    payload = jwt.split('.')[1]
    return json.loads(base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)))


def test_the_default_token_is_a_jwt_for_the_resource_asked_for(emulator):
    status, answer = get_token(emulator)
    assert status == 200
    now = time.time()
    assert answer['token_type'] == 'Bearer' and answer['resource'] == 'https://storage.azure.com/'
    assert all(isinstance(answer[field], str) for field in ('expires_in', 'expires_on', 'not_before'))
    assert abs(int(answer['expires_on']) - (now + 3600)) < 5 and answer['expires_in'] == '3600'
    body = claims(answer['access_token'])
    assert body['aud'] == 'https://storage.azure.com/'
    assert body['iss'].startswith('https://sts.windows.net/') and body['iss'].endswith('/')
    assert body['nbf'] <= now + 1 < body['exp'] == int(answer['expires_on'])
    assert len(answer['access_token'].split('.')) == 3


@pytest.mark.parametrize('headers, path, error', [
    ({}, TOKEN, 'Required metadata header not specified'),
    (META, '/metadata/identity/oauth2/token?api-version=2018-02-01', 'Required audience parameter not specified'),
], ids=['no-metadata-header', 'no-resource'])
def test_bad_token_requests_are_400_with_an_oauth_error(emulator, headers, path, error):
    status, answer = get_token(emulator, path, headers)
    assert status == 400
    assert answer == {'error': 'invalid_request', 'error_description': error}


def test_the_api_version_is_checked(emulator):
    status, answer = get_token(emulator, TOKEN.replace('2018-02-01', '2017-01-01'))
    assert status == 400 and answer['newest-versions'][-1] == '2018-02-01'


def test_the_token_is_set_through_the_control_api(emulator):
    status, _, _ = http_call(emulator.url, 'POST', '/_emulator/identity', {'access_token': 'given', 'expires_in': 90})
    assert status == 200
    _, answer = get_token(emulator)
    assert (answer['access_token'], answer['expires_in']) == ('given', '90')
    http_call(emulator.url, 'POST', '/_emulator/identity', {'access_token': None})
    assert get_token(emulator)[1]['access_token'].count('.') == 2


def test_a_vm_without_identity_answers_identity_not_found(emulator):
    http_call(emulator.url, 'POST', '/_emulator/identity', {'enabled': False})
    assert get_token(emulator) == (400, {'error': 'invalid_request', 'error_description': 'Identity not found'})


def test_unknown_identity_fields_are_refused(emulator):
    status, _, body = http_call(emulator.url, 'POST', '/_emulator/identity', {'token': 'x'})
    assert status == 400 and 'unknown identity fields: token' in json.loads(body)['error']


def test_the_token_given_to_the_constructor_is_served():
    with ImdsEmulator(rate_limit=0, identity_token='fixed', identity_expires_in=600) as server:
        _, answer = get_token(server)
    assert (answer['access_token'], answer['expires_in']) == ('fixed', '600')


def test_token_requests_are_logged_like_the_others(emulator):
    get_token(emulator, TOKEN + '&client_id=abc')
    entry = emulator.requests()[-1]
    assert entry['path'] == '/metadata/identity/oauth2/token' and entry['status'] == 200
    assert entry['query'] == {'api-version': '2018-02-01', 'resource': 'https://storage.azure.com/',
                              'client_id': 'abc'}
    assert entry['metadata_header'] == 'true'


# The client side: ImdsClient.get_token -------------------------------------------------------------

@pytest.mark.parametrize('status', [404, 503, 429], ids=['404-updating', '503', '429'])
def test_get_token_retries_what_the_documentation_says_to(emulator, status):
    emulator.add_fault({'kind': 'status', 'status': status, 'count': 2, 'path': 'identity'})
    with ImdsClient(emulator.url, retry=FAST) as client:
        answer = client.get_token('https://storage.azure.com/')
    assert answer['access_token'] and float(answer['expires_on']) > time.time()
    assert [r['status'] for r in emulator.requests()] == [status, status, 200]


def test_get_token_names_what_imds_refused(emulator):
    emulator.set_identity(enabled=False)
    with ImdsClient(emulator.url, retry=FAST) as client:
        with pytest.raises(ImdsRejectedError, match='invalid_request: Identity not found'):
            client.get_token('https://storage.azure.com/')


def test_a_token_answer_that_is_not_one_is_a_protocol_error(emulator):
    emulator.add_fault({'kind': 'garbage', 'count': 1, 'path': 'identity'})
    with ImdsClient(emulator.url, retry=FAST) as client, pytest.raises(ImdsProtocolError) as raised:
        client.get_token('https://storage.azure.com/')
    assert 'html' not in str(raised.value), 'the body is never quoted: it could hold a token'
