# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The Blob Storage client against the real Azurite on loopback: SAS over http, managed identity over https
with the IMDS emulator's token, faults from a relay in between, and on the oldest Python the agent meets."""

import json
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from azext_scheduledevents._errors import az_error
from azext_scheduledevents.core.blob import BlobContainer, ManagedIdentityCredential, SasCredential
from azext_scheduledevents.core.config import RetryPolicy
from azext_scheduledevents.core.errors import BlobError, InvalidSettingError
from azext_scheduledevents.emulator.imds import ImdsEmulator

from .azurite import Azurite, FaultyProxy

FAST = RetryPolicy(first_delay_in_seconds=0.01, max_delay_in_seconds=0.05, deadline_in_seconds=5)
PACKAGE = Path(__file__).resolve().parents[2]
PYENV_VERSIONS = Path.home() / '.pyenv' / 'versions'


def new_name():
    return f'c{uuid.uuid4().hex[:16]}'


@pytest.fixture
def container_name(azurite_blob):
    name = new_name()
    azurite_blob.create_container(name)
    return name


@pytest.fixture
def container(azurite_blob, container_name):
    with BlobContainer(azurite_blob.container_url(container_name), retry=FAST,
                       credential=SasCredential(azurite_blob.container_sas(container_name))) as client:
        yield client


@pytest.fixture
def proxy(azurite_blob):
    with FaultyProxy(azurite_blob) as relay:
        yield relay


@pytest.fixture
def relayed(azurite_blob, container_name, proxy):
    """The container reached through the relay: ``(client, relay)``."""
    with BlobContainer(proxy.container_url(container_name), retry=FAST,
                       credential=SasCredential(azurite_blob.container_sas(container_name))) as client:
        yield client, proxy


@pytest.fixture(scope='module')
def tls_context(azurite_blob_https):
    return ssl.create_default_context(cafile=str(azurite_blob_https.certificates.ca))


@pytest.fixture
def identity_emulator():
    with ImdsEmulator(rate_limit=0) as server:
        yield server


def token_requests(emulator):
    return [r for r in emulator.requests() if r['path'] == '/metadata/identity/oauth2/token']


# Operations -------------------------------------------------------------------------------------------

def test_put_if_absent_writes_once(container):
    assert container.put('leader', b'{"vm": "web_0"}', if_none_match=True) is True
    assert container.put('leader', b'{"vm": "web_1"}', if_none_match=True) is False
    assert container.get('leader') == b'{"vm": "web_0"}'


def test_put_without_condition_overwrites(container):
    assert container.put('sink/a', b'1') is True
    assert container.put('sink/a', b'2') is True
    assert container.get('sink/a') == b'2'


def test_get_of_a_missing_blob_is_none(container):
    assert container.get('nothing-here') is None


def test_delete_says_whether_it_existed(container):
    container.put('gone', b'x')
    assert container.delete('gone') is True
    assert container.delete('gone') is False
    assert container.get('gone') is None


def test_list_follows_next_marker_across_pages(relayed):
    client, relay = relayed
    for index in range(7):
        client.put(f'web/{index}', b'x')
    client.put('db/0', b'x')
    assert client.list('web/', page_size=3) == [f'web/{index}' for index in range(7)]
    assert len([r for r in relay.requests if r[0] == 'GET']) == 3
    assert client.list() == ['db/0'] + [f'web/{index}' for index in range(7)]
    assert client.list('none/') == []


def test_names_are_url_quoted(container):
    name = 'vm ü/100% sure?#&x=1'
    container.put(name, b'odd')
    assert container.get(name) == b'odd'
    assert container.list('vm ') == [name]
    assert container.delete(name) is True


def test_create_container_tolerates_an_existing_one(azurite_blob):
    name = new_name()
    with BlobContainer(azurite_blob.container_url(name), credential=SasCredential(azurite_blob.account_sas())) as c:
        assert c.create_container() is True
        assert c.create_container() is False


def test_a_missing_container_is_an_error_not_an_empty_answer(azurite_blob):
    name = new_name()
    with BlobContainer(azurite_blob.container_url(name), retry=FAST,
                       credential=SasCredential(azurite_blob.account_sas())) as client:
        with pytest.raises(BlobError) as raised:
            client.get('x')
    assert (raised.value.status, raised.value.code) == (404, 'ContainerNotFound')
    assert 'az storage container create' in az_error(raised.value).recommendations[0]


# Retries ----------------------------------------------------------------------------------------------

def test_503_is_retried_after_the_retry_after_it_asks_for(relayed):
    client, relay = relayed
    relay.faults.append(('status', 503, 0.3))
    started = time.monotonic()
    assert client.put('busy', b'1') is True
    assert time.monotonic() - started >= 0.3
    assert [r[2] for r in relay.requests] == ['status', None]
    assert client.get('busy') == b'1'


@pytest.mark.parametrize('fault', [('reset',), ('status', 500, 0), ('status', 429, 0)], ids=['reset', '500', '429'])
def test_transient_failures_are_retried(relayed, fault):
    client, relay = relayed
    relay.faults.extend([fault, fault])
    assert client.get('absent') is None
    assert len(relay.requests) == 3


def test_a_put_if_absent_whose_answer_was_lost_is_still_ours(relayed):
    client, relay = relayed
    relay.faults.append(('lose-answer',))
    assert client.put('lock', b'{"vm": "web_0", "nonce": 1}', if_none_match=True) is True
    assert [r[2] for r in relay.requests][:2] == ['lose-answer', None]


def test_a_put_if_absent_that_lost_to_another_writer_is_false_even_after_a_retry(relayed):
    client, relay = relayed
    client.put('lock', b'theirs')
    relay.faults.append(('status', 500, 0))
    assert client.put('lock', b'mine', if_none_match=True) is False
    assert client.get('lock') == b'theirs'


def test_a_delete_whose_answer_was_lost_says_it_deleted(relayed):
    client, relay = relayed
    client.put('old', b'x')
    relay.faults.append(('lose-answer',))
    assert client.delete('old') is True
    assert client.get('old') is None


def test_gives_up_at_the_deadline_with_the_last_answer(relayed):
    client, relay = relayed
    relay.always = ('status', 503, 0.05)
    client.retry = RetryPolicy(first_delay_in_seconds=0.05, max_delay_in_seconds=0.1, deadline_in_seconds=0.6)
    started = time.monotonic()
    with pytest.raises(BlobError, match=r'within 0.6 s \(last: 503 ServerBusy\)') as raised:
        client.get('x')
    assert time.monotonic() - started < 4          # about 0.6 s: not FAST's 5 s, nor for ever
    assert (raised.value.status, raised.value.code) == (503, 'ServerBusy')
    assert len(relay.requests) > 2


def test_nothing_listening_ends_at_the_deadline():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    policy = RetryPolicy(first_delay_in_seconds=0.05, max_delay_in_seconds=0.1, deadline_in_seconds=0.5)
    with BlobContainer(f'http://127.0.0.1:{port}/devstoreaccount1/c', retry=policy,
                       credential=SasCredential('sv=x&sig=abc')) as client:
        with pytest.raises(BlobError, match='last: no connection') as raised:
            client.get('x')
    assert raised.value.status is None
    assert 'reaches the storage account' in az_error(raised.value).recommendations[0]


# SAS --------------------------------------------------------------------------------------------------

def test_a_forged_sas_is_refused_with_a_clear_message(azurite_blob, container_name):
    forged = re.sub(r'sig=[^&]+', 'sig=Zm9yZ2VkZm9yZ2VkZm9yZ2VkZm9yZ2Vk', azurite_blob.container_sas(container_name))
    with BlobContainer(azurite_blob.container_url(container_name), retry=FAST,
                       credential=SasCredential(forged)) as client:
        with pytest.raises(BlobError) as raised:
            client.get('x')
    assert raised.value.status == 403
    assert str(raised.value).startswith('Blob Storage answered 403 ')
    assert 'Zm9yZ2Vk' not in str(raised.value)
    assert az_error(raised.value).recommendations


def test_a_request_without_credential_is_refused(azurite_blob, container_name):
    with BlobContainer(azurite_blob.container_url(container_name), credential=None, retry=FAST) as client:
        with pytest.raises(BlobError) as raised:
            client.put('x', b'1')
    assert raised.value.status in (401, 403)
    assert f'to PUT {azurite_blob.container_url(container_name)}/x' in str(raised.value)


def test_a_read_only_sas_cannot_write(azurite_blob, container_name):
    with BlobContainer(azurite_blob.container_url(container_name), retry=FAST,
                       credential=SasCredential('?' + azurite_blob.container_sas(container_name, permissions='rl'))) \
            as client:
        assert client.list() == []
        with pytest.raises(BlobError) as raised:
            client.put('x', b'1')
    assert raised.value.status == 403


@pytest.mark.parametrize('url', ['http://127.0.0.1:1/devstoreaccount1/c?sv=1&sig=SECRET', 'ftp://host/c',
                                 'http://127.0.0.1:1', 'http://user@host/c', 'host/c'],
                         ids=['query', 'scheme', 'no-container', 'userinfo', 'no-scheme'])
def test_bad_container_urls_are_refused_without_echoing_a_query(url):
    with pytest.raises(InvalidSettingError) as raised:
        BlobContainer(url, credential=None)
    assert 'SECRET' not in str(raised.value)


def test_a_sas_needs_a_signature():
    with pytest.raises(InvalidSettingError, match='sig='):
        SasCredential('sv=2023-11-03&sr=c')


# Managed identity -------------------------------------------------------------------------------------

def test_managed_identity_over_https_with_the_emulators_token(azurite_blob_https, tls_context, identity_emulator):
    url = azurite_blob_https.create_container(new_name(), ssl_context=tls_context)
    credential = ManagedIdentityCredential(identity_emulator.url)
    with BlobContainer(url, credential=credential, ssl_context=tls_context, retry=FAST) as client:
        assert client.put('a', b'1', if_none_match=True) is True
        assert client.put('a', b'2', if_none_match=True) is False
        assert client.get('a') == b'1' and client.list() == ['a'] and client.delete('a') is True
    requests = token_requests(identity_emulator)
    assert len(requests) == 1, 'the token is kept, not fetched for each request'
    assert requests[0]['query'] == {'api-version': '2018-02-01', 'resource': 'https://storage.azure.com/'}
    assert requests[0]['metadata_header'] == 'true'


def test_the_token_is_renewed_before_it_expires(azurite_blob_https, tls_context, identity_emulator):
    url = azurite_blob_https.create_container(new_name(), ssl_context=tls_context)
    now = [time.time()]
    identity_emulator.set_identity(expires_in=3600)
    credential = ManagedIdentityCredential(identity_emulator.url, wall=lambda: now[0])
    with BlobContainer(url, credential=credential, ssl_context=tls_context, retry=FAST) as client:
        client.list()
        now[0] += 3600 - 301          # more than 5 minutes left: kept
        client.list()
        assert len(token_requests(identity_emulator)) == 1
        now[0] += 2                   # within 5 minutes of expiry: renewed
        client.list()
    assert len(token_requests(identity_emulator)) == 2


def test_a_user_assigned_identity_is_asked_for_by_client_id(azurite_blob_https, tls_context, identity_emulator):
    url = azurite_blob_https.create_container(new_name(), ssl_context=tls_context)
    client_id = str(uuid.uuid4())
    with BlobContainer(url, credential=ManagedIdentityCredential(identity_emulator.url, client_id=client_id),
                       ssl_context=tls_context) as client:
        client.list()
    assert token_requests(identity_emulator)[0]['query']['client_id'] == client_id


def test_a_token_storage_does_not_accept_is_refused(azurite_blob_https, tls_context, identity_emulator):
    url = azurite_blob_https.create_container(new_name(), ssl_context=tls_context)
    identity_emulator.set_identity(access_token='opaque-token-that-is-no-jwt-0123456789')
    with BlobContainer(url, credential=ManagedIdentityCredential(identity_emulator.url), ssl_context=tls_context,
                       retry=FAST) as client:
        with pytest.raises(BlobError) as raised:
            client.get('a')
    assert (raised.value.status, raised.value.code) == (403, 'AuthenticationFailed')
    assert 'opaque-token' not in str(raised.value)
    assert 'make a new SAS' in az_error(raised.value).recommendations[0]


def test_a_vm_without_identity_says_so(azurite_blob_https, tls_context, identity_emulator):
    identity_emulator.set_identity(enabled=False)
    with BlobContainer(azurite_blob_https.container_url('any'), ssl_context=tls_context, retry=FAST,
                       credential=ManagedIdentityCredential(identity_emulator.url)) as client:
        with pytest.raises(BlobError, match='Identity not found') as raised:
            client.get('a')
    assert raised.value.code == BlobError.NO_MANAGED_IDENTITY
    assert 'az vm identity assign' in az_error(raised.value).recommendations[0]


def test_a_bearer_token_never_travels_over_http(identity_emulator):
    with pytest.raises(InvalidSettingError, match='https only'):
        BlobContainer('http://127.0.0.1:10000/devstoreaccount1/c',
                      credential=ManagedIdentityCredential(identity_emulator.url))
    assert token_requests(identity_emulator) == []


def test_an_untrusted_certificate_fails_at_once(azurite_blob_https, identity_emulator):
    started = time.monotonic()
    with BlobContainer(azurite_blob_https.container_url('any'), retry=FAST,
                       credential=ManagedIdentityCredential(identity_emulator.url)) as client:
        with pytest.raises(BlobError, match='certificate not trusted'):
            client.get('a')
    assert time.monotonic() - started < 2


# Secrets ----------------------------------------------------------------------------------------------

def test_no_token_or_signature_in_any_message_or_log(azurite_blob, azurite_blob_https, tls_context, proxy,
                                                     identity_emulator, caplog):
    caplog.set_level(logging.DEBUG)
    name = new_name()
    azurite_blob.create_container(name)
    sas = azurite_blob.container_sas(name)
    token = 'eyJhbGciOiJub25lIn0.c2VjcmV0LXRva2VuLWJvZHk.c2lnbmF0dXJl'
    identity_emulator.set_identity(access_token=token)
    signature = re.search(r'sig=([^&]+)', sas).group(1)
    raised = []
    sas_credential = SasCredential(sas)
    with BlobContainer(proxy.container_url(name), credential=sas_credential, retry=FAST) as client:
        proxy.faults.extend([('status', 503, 0), ('reset',)])
        client.put('x', b'1')
        client.retry = RetryPolicy(first_delay_in_seconds=0.01, max_delay_in_seconds=0.02, deadline_in_seconds=0.3)
        proxy.always = ('status', 503, 0.01)
        with pytest.raises(BlobError) as timed_out:
            client.get('x')
        raised.append(timed_out.value)
    with BlobContainer(azurite_blob.container_url(name), retry=FAST,
                       credential=SasCredential(sas.replace(signature, signature[:-6] + 'AAAAA='))) as client:
        with pytest.raises(BlobError) as refused:
            client.get('x')
        raised.append(refused.value)
    mi_credential = ManagedIdentityCredential(identity_emulator.url)
    with BlobContainer(azurite_blob_https.create_container(new_name(), ssl_context=tls_context), retry=FAST,
                       credential=mi_credential, ssl_context=tls_context) as client:
        with pytest.raises(BlobError) as rejected:
            client.get('x')
        raised.append(rejected.value)
    texts = [str(ex) for ex in raised] + [repr(sas_credential), repr(mi_credential)]
    texts += [record.getMessage() for record in caplog.records]
    assert any('retrying' in text for text in texts), 'the retries were logged'
    secrets = [signature, signature[:-6], token, 'c2VjcmV0LXRva2VuLWJvZHk']
    leaks = [text for text in texts for secret in secrets if secret in text]
    assert leaks == []


# Azurite itself, and the oldest Python --------------------------------------------------------------------

def test_azurite_reaches_nothing_but_loopback(tmp_path):
    """Azurite sends telemetry to Application Insights unless told not to: run it under strace and look."""
    if not shutil.which('strace'):
        reason = 'needs strace to watch Azurite\'s connections: run scripts/bootstrap'
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)
    trace = tmp_path / 'connect.trace'
    strace = ['strace', '-f', '-qq', '--seccomp-bpf', '-e', 'trace=bind,connect,sendto,sendmsg', '-o', str(trace)]
    with Azurite(tmp_path, wrapper=strace) as server:
        name = new_name()
        server.create_container(name)
        with BlobContainer(server.container_url(name), credential=SasCredential(server.container_sas(name))) as c:
            c.put('x', b'1')
            c.get('x')
        time.sleep(2)       # Azurite's telemetry, when on, goes out within a second of the first request
    addresses = re.findall(r'inet_(?:addr\(|pton\(AF_INET6?, )"([^"]+)"', trace.read_text())
    assert '127.0.0.1' in addresses, 'the trace sees Azurite bind its port'
    assert [a for a in addresses if a not in ('127.0.0.1', '::1', '::ffff:127.0.0.1')] == []


def oldest_python():
    versions = sorted((tuple(int(p) for p in path.name.split('.')), path) for path in PYENV_VERSIONS.glob('3.*.*')
                      if re.fullmatch(r'3\.\d+\.\d+', path.name) and (path / 'bin' / 'python').exists())
    at_least_38 = [path for version, path in versions if version >= (3, 8)]
    return at_least_38[0] / 'bin' / 'python' if at_least_38 else None


STDLIB_ONLY = r'''
import json, sys, sysconfig, types
package, url, sas = sys.argv[1:4]
# The extension's own __init__ imports azure.cli: stand in for the package and load core/ alone.
stand_in = types.ModuleType('azext_scheduledevents')
stand_in.__path__ = [package]
sys.modules['azext_scheduledevents'] = stand_in
from azext_scheduledevents.core.blob import BlobContainer, SasCredential
with BlobContainer(url, credential=SasCredential(sas)) as container:
    assert container.put('py38', b'stdlib only', if_none_match=True) is True
    assert container.put('py38', b'again', if_none_match=True) is False
    body = container.get('py38')
    names = container.list('py')
stdlib = sysconfig.get_paths()['stdlib']
foreign = sorted(name for name, module in sys.modules.items()
                 if getattr(module, '__file__', None) and not module.__file__.startswith((stdlib, package)))
print(json.dumps({'version': list(sys.version_info[:2]), 'body': body.decode(), 'names': names,
                  'foreign': foreign, 'site': 'site' in sys.modules}))
'''


def test_core_blob_runs_on_the_oldest_python_with_the_standard_library_alone(azurite_blob, container_name):
    """``-I -S``: no site-packages, no user site, no PYTHONPATH; what the agent finds on a bare VM."""
    python = oldest_python()
    if python is None:
        pytest.skip(f'needs a Python 3.8 or later under {PYENV_VERSIONS}')
    done = subprocess.run([str(python), '-I', '-S', '-c', STDLIB_ONLY, str(PACKAGE),
                           azurite_blob.container_url(container_name), azurite_blob.container_sas(container_name)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result['version'] >= [3, 8]
    assert (result['body'], result['names']) == ('stdlib only', ['py38'])
    assert result['foreign'] == [] and result['site'] is False
