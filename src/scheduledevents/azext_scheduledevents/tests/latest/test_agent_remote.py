# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""agent/remote.py and agent/deploy.py: the scripts Run Command carries, what they print, and the rows.
The scripts themselves run on simulated VMs in test_az_agent.py (a damaged agent is refused here on one)."""

import base64
import gzip
import hashlib
import os
import subprocess

import pytest

from azext_scheduledevents.agent.build import build_zipapp
from azext_scheduledevents.agent.deploy import _verdict, failed
from azext_scheduledevents.agent.remote import (install_script, install_spec, read_answer,
                                                secret_names, status_script, uninstall_script, without_secret_urls)
from azext_scheduledevents.agent.service import AGENT_PATH, UNIT_PATH
from azext_scheduledevents.core.errors import RunCommandOutputError
from azext_scheduledevents.core.runcommand import MAX_SCRIPT_IN_BYTES
from azext_scheduledevents.core.watchoptions import WatchOptions
from azext_scheduledevents.version import VERSION

from .conftest import require_namespaces
from .fakearm.vm import SimulatedVm


def output(stdout, stderr=''):
    return {'value': [{'code': 'ProvisioningState/succeeded',
                       'message': f'Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n{stderr}'}]}


@pytest.mark.parametrize('stdout, expected', [
    ('@@se python@@ 3.8.18\n@@se result@@ {"result":"installed","version":"1"}\n@@se end@@ ',
     ('3.8.18', {'result': 'installed', 'version': '1'})),
    ('@@se python@@ 3.6.15\n@@se fail@@ python3 is 3.6.15: the agent needs 3.8 or newer\n@@se end@@ ',
     ('3.6.15', {'result': 'failed', 'error': 'python3 is 3.6.15: the agent needs 3.8 or newer'})),
    ('@@se python@@ 3.12.3\n@@se missing@@ {}\n@@se end@@ ', ('3.12.3', {'result': 'missing'})),
], ids=['result', 'fail', 'missing'])
def test_answers_are_read_from_the_marked_lines(stdout, expected):
    assert read_answer(output(stdout)) == expected


@pytest.mark.parametrize('stdout, message', [
    ('@@se python@@ 3.8.18\n@@se result@@ {"result":', 'did not finish'),
    ('@@se python@@ 3.8.18\n@@se end@@ ', 'no result'),
    ('@@se result@@ {not json\n@@se end@@ ', 'not JSON'),
], ids=['cut', 'no-result', 'not-json'])
def test_output_that_cannot_be_read_is_an_error(stdout, message):
    with pytest.raises(RunCommandOutputError, match=message):
        read_answer(output(stdout))


def test_the_install_script_carries_the_agent_compressed_with_its_hash_and_no_secret():
    agent = b'PK' + bytes(range(256)) * 40
    options = WatchOptions(event_grid_topic='https://t.example/api/events', event_grid_key_env='EG_KEY')
    spec = install_spec(options, stop_timeout_in_seconds=60)
    assert spec['secrets'] == ['EG_KEY'] and '--event-grid-key-env' in spec['watch_argv']
    command_id, lines = install_script(agent, spec)
    text = '\n'.join(lines)
    assert command_id == 'RunShellScript' and hashlib.sha256(agent).hexdigest() in text
    payload = text.split("<<'AGENT'\n", 1)[1].split('\nAGENT\n', 1)[0].replace('\n', '')
    assert gzip.decompress(base64.b64decode(payload)) == agent
    assert 'EG_KEY=' not in text


def test_an_agent_too_large_for_a_run_command_script_is_refused():
    with pytest.raises(ValueError, match='kept under'):
        install_script(os.urandom(MAX_SCRIPT_IN_BYTES), install_spec(
            WatchOptions(), stop_timeout_in_seconds=60))


def test_a_webhook_url_with_a_secret_moves_into_the_environment():
    environ = {}
    options = without_secret_urls(WatchOptions(webhook=('https://a.example/x?code=s3cret', 'https://b.example/y',
                                                        'https://user:pw@c.example/z')), environ)
    assert options.webhook == ('https://b.example/y',)
    assert options.webhook_env == ('SCHEDULED_EVENTS_WEBHOOK_1', 'SCHEDULED_EVENTS_WEBHOOK_3')
    assert environ == {'SCHEDULED_EVENTS_WEBHOOK_1': 'https://a.example/x?code=s3cret',
                       'SCHEDULED_EVENTS_WEBHOOK_3': 'https://user:pw@c.example/z'}
    assert secret_names(options) == set(options.webhook_env)
    assert 's3cret' not in ' '.join(install_spec(options, stop_timeout_in_seconds=9)['watch_argv'])


def test_secret_names_are_the_environment_variables_the_options_read():
    assert secret_names(WatchOptions()) == set()
    assert secret_names(WatchOptions(blob_url='https://a.blob.core.windows.net/c', blob_sas_env='SAS')) == {'SAS'}


@pytest.mark.parametrize('script', [status_script()[1], uninstall_script(purge=True)[1],
                                    install_script(b'x', install_spec(WatchOptions(), stop_timeout_in_seconds=9))[1]],
                         ids=['status', 'uninstall', 'install'])
def test_the_scripts_are_valid_posix_shell(script):
    done = subprocess.run(['sh', '-n'], input='\n'.join(script).encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize('damage', ['hash', 'payload'])
def test_an_agent_that_arrives_damaged_changes_nothing_on_the_vm(tmp_path, damage):
    require_namespaces()
    agent = build_zipapp()
    text = '\n'.join(install_script(agent, install_spec(WatchOptions(), stop_timeout_in_seconds=9))[1])
    if damage == 'hash':
        text = text.replace(hashlib.sha256(agent).hexdigest(), '0' * 64)
    else:                                   # one base64 character of the compressed agent changed
        at = text.index("<<'AGENT'\n") + 200
        text = text[:at] + ('A' if text[at] != 'A' else 'B') + text[at + 1:]
    vm = SimulatedVm('web_0', tmp_path).start().wait_ready()
    try:
        _, stdout, _ = vm.run_script(text, timeout=60)
    finally:
        vm.stop()
    assert read_answer(output(stdout.decode()))[1] == {
        'result': 'failed', 'error': 'the agent arrived damaged (its SHA-256 does not match): nothing was changed'}
    assert vm.read_file(AGENT_PATH) is None and vm.read_file(UNIT_PATH) is None


@pytest.mark.parametrize('answer, state', [
    ({'result': 'failed'}, 'failed'),
    ({'result': 'missing'}, 'missing'),
    ({'version': '0.9.0', 'active': 'active', 'last_poll_age': 1}, 'outdated'),
    ({'version': VERSION, 'active': 'inactive', 'last_poll_age': 1}, 'stopped'),
    ({'version': VERSION, 'active': 'active', 'last_poll_age': 61}, 'stale'),
    ({'version': VERSION, 'active': 'active'}, 'stale'),
    ({'version': VERSION, 'active': 'active', 'last_poll_age': 2.5}, 'running'),
], ids=['failed', 'missing', 'outdated', 'stopped', 'stale', 'never-polled', 'running'])
def test_status_verdicts(answer, state):
    assert _verdict(answer) == state


def test_failed_rows_are_the_ones_not_good():
    rows = [{'Instance': 'a', 'Result': 'installed'}, {'Instance': 'b', 'Result': 'failed'},
            {'Instance': 'c', 'Agent': 'running'}, {'Instance': 'd', 'Agent': 'stale'}]
    assert failed(rows) == ['b', 'd']
