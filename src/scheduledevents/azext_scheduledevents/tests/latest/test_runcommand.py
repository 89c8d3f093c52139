# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""core/runcommand.py: the scripts Run Command carries and the parsing of what it returns.

The Linux script is run for real, with sh and bash, against the IMDS emulator: a fake ``curl`` (or
``wget``) first on PATH sends the script's 169.254.169.254 requests to the emulator on loopback and
refuses any other URL. There is no PowerShell here, so the Windows script is checked as text only.
"""

import json
import os
import shutil
import socket
import subprocess

import pytest

from azext_scheduledevents.core.errors import InvalidEventIdError
from azext_scheduledevents.core.runcommand import RunCommandOutputError, approve_script, parse_output, read_script

IMDS = 'http://169.254.169.254'
ID_A = 'C7061BAC-AFDC-4513-B24B-AA5F13A16123'
ID_B = '0B0A8E6C-2E1A-4C55-9C3B-1B7C2F5E8D41'
DOC = '{"DocumentIncarnation":3,"Events":[]}'
NAME_URL = f'{IMDS}/metadata/instance/compute/name?api-version=2021-02-01&format=text'
OUTPUT_WINDOW = 4096


def result_with(stdout, stderr=''):
    """A Linux RunCommandResult, as ARM returns it (and as ``as_dict()`` gives it)."""
    return {'value': [{'code': 'ProvisioningState/succeeded', 'level': 'Info',
                       'displayStatus': 'Provisioning succeeded',
                       'message': f'Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n{stderr}'}]}


# parse_output -------------------------------------------------------------------------------------------

def test_parse_marked_lines():
    stdout = f'@@se name 200@@ web_3\n@@se approve 200@@ \n@@se doc 200@@ {DOC}\n@@se end@@\n'
    assert parse_output(result_with(stdout)) == {
        'name': (200, 'web_3'), 'approve': (200, ''), 'doc': (200, DOC), 'end': (0, '')}


def test_parse_ignores_unmarked_and_misplaced_markers():
    stdout = ('motd: welcome\n  @@se name 500@@ indented is not ours\nnoise @@se doc 500@@ {}\n'
              f'@@se name 200@@ web_3\n@@se doc 200@@ {DOC}\n@@se end@@')
    answers = parse_output(result_with(stdout, stderr='bash: warning: setlocale'))
    assert answers['name'] == (200, 'web_3') and answers['doc'] == (200, DOC)


def test_parse_keeps_imds_error_statuses_and_bodies():
    stdout = '@@se name 200@@ web_3\n@@se doc 503@@ {"error":"Service unavailable"}\n@@se end@@'
    assert parse_output(result_with(stdout))['doc'] == (503, '{"error":"Service unavailable"}')


def test_parse_crlf_output():
    stdout = f'@@se name 200@@ web_2\r\n@@se doc 200@@ {DOC}\r\n@@se end@@\r\n'
    answers = parse_output(result_with(stdout))
    assert answers['name'] == (200, 'web_2') and answers['doc'] == (200, DOC)


def test_parse_windows_result_shape_one_value_per_stream():
    stdout = f'@@se name 200@@ web_2\r\n@@se doc 200@@ {DOC}\r\n@@se end@@\r\n'
    result = {'value': [{'code': 'ComponentStatus/StdOut/succeeded', 'message': stdout},
                        {'code': 'ComponentStatus/StdErr/succeeded', 'message': ''}]}
    assert parse_output(result)['doc'] == (200, DOC)


@pytest.mark.parametrize('stdout, stderr, message', [
    (f'"Events":[]}}\n@@se doc 200@@ {DOC}\n@@se end@@', '',
     r'the output cannot be read \(its beginning was cut off\)$'),
    ('@@se name 200@@ web_0\n', '', r'\(the script did not finish\)$'),
    ('', '', r'\(the script did not finish\)$'),
    ('@@se name 200@@ web_0\n', 'sh: 2: curl: Permission denied', r'did not finish\): sh: 2: curl: Permission denied$'),
    ('@@se name 200@@ web_0\n', 'x' * 500 + 'LAST', r'did not finish\): x{196}LAST$'),
    ('@@se name 200@@ web_0\n@@se doc-too-large@@ 9000\n@@se end@@', '',
     r"document \(9000 bytes\) does not fit in Run Command's 4096-byte output window"),
    ('@@se name 200@@ web_0\n@@se doc-too-large@@ 3601\n', '', r'\(3601 bytes\)'),
], ids=['cut', 'unfinished', 'empty', 'stderr-in-reason', 'stderr-tail-only', 'too-large', 'too-large-unfinished'])
def test_output_that_cannot_be_read(stdout, stderr, message):
    with pytest.raises(RunCommandOutputError, match=message):
        parse_output(result_with(stdout, stderr))


@pytest.mark.parametrize('result', [
    None, {}, {'value': None}, {'value': []}, [{'message': '@@se end@@'}], 'text',
], ids=['none', 'empty', 'value-none', 'value-empty', 'list', 'string'])
def test_no_output_at_all(result):
    with pytest.raises(RunCommandOutputError, match='returned no output'):
        parse_output(result)


def test_a_missing_message_is_an_unfinished_script():
    with pytest.raises(RunCommandOutputError, match='did not finish'):
        parse_output({'value': [{'code': 'ProvisioningState/succeeded', 'message': None}]})


# The scripts as text ------------------------------------------------------------------------------------

@pytest.mark.parametrize('os_type, command', [
    ('Linux', 'RunShellScript'), ('linux', 'RunShellScript'), ('Windows', 'RunPowerShellScript'),
    ('windows', 'RunPowerShellScript'), ('WINDOWS', 'RunPowerShellScript'),
], ids=['Linux', 'linux', 'Windows', 'windows', 'WINDOWS'])
def test_command_id_follows_the_os(os_type, command):
    assert read_script(os_type)[0] == command
    assert approve_script(os_type, [ID_A])[0] == command


@pytest.mark.parametrize('os_type', ['Linux', 'Windows'])
@pytest.mark.parametrize('api_version', [None, '2017-08-01', '2019-08-01', '2020-07-01'],
                         ids=['default', '2017-08-01', '2019-08-01', '2020-07-01'])
def test_api_version_in_the_document_url(os_type, api_version):
    version = api_version or '2020-07-01'
    kwargs = {} if api_version is None else {'api_version': api_version}
    for _, lines in (read_script(os_type, **kwargs), approve_script(os_type, [ID_A], **kwargs)):
        script = '\n'.join(lines)
        urls = [part for part in script.replace('"', "'").split("'") if part.startswith(f'{IMDS}/metadata/')]
        assert set(urls) == {NAME_URL, f'{IMDS}/metadata/scheduledevents?api-version={version}'}


@pytest.mark.parametrize('os_type', ['Linux', 'Windows'])
def test_scripts_are_lists_of_lines(os_type):
    for _, lines in (read_script(os_type), approve_script(os_type, [ID_A, ID_B])):
        assert isinstance(lines, list) and len(lines) > 5
        assert not any('\n' in line or '\r' in line for line in lines)


def test_linux_script_text_goes_straight_to_imds():
    script = '\n'.join(read_script('Linux')[1])
    assert script.count("--noproxy '*'") == 2 and script.count('--no-proxy') == 2
    assert script.count("-H 'Metadata: true'") == 2 and script.count("--header='Metadata: true'") == 2
    assert '[ ${#body} -gt 3600 ]' in script


@pytest.mark.parametrize('kind', ['read', 'approve'])
def test_windows_script_text_steps_in_order(kind):
    command, lines = read_script('Windows') if kind == 'read' else approve_script('Windows', [ID_A])
    url = f'{IMDS}/metadata/scheduledevents?api-version=2020-07-01'
    says = [line for line in lines if line.startswith(('Say ', "Write-Output '@@se end@@'"))]
    expected = [f"Say 'name' '{NAME_URL}' ''"]
    if kind == 'approve':
        expected.append(f"""Say 'approve' '{url}' '{{"StartRequests":[{{"EventId":"{ID_A}"}}]}}'""")
    expected += [f"Say 'doc' '{url}' ''", "Write-Output '@@se end@@'"]
    assert says == expected and lines[-1] == "Write-Output '@@se end@@'"


def test_windows_script_text_goes_straight_to_imds():
    script = '\n'.join(read_script('Windows')[1])
    assert '$request.Proxy = [System.Net.GlobalProxySelection]::GetEmptyWebProxy()' in script
    assert "$request.Headers.Add('Metadata', 'true')" in script
    assert "$Step -eq 'doc' -and $text.Length -gt 3600" in script
    assert 'Write-Output "@@se doc-too-large@@ $($text.Length)"' in script
    assert "$ErrorActionPreference = 'Stop'" in script


@pytest.mark.parametrize('os_type', ['Linux', 'Windows'])
def test_approve_body_carries_every_id_in_order(os_type):
    _, lines = approve_script(os_type, [ID_A, ID_B.lower()])
    body = '{"StartRequests":[{"EventId":"%s"},{"EventId":"%s"}]}' % (ID_A, ID_B.lower())
    assert sum(f"'{body}'" in line for line in lines) == 1


INJECTIONS = ["x'; reboot; '", "'$(reboot)'", '`reboot`', f"{ID_A}'; reboot; '", f'{ID_A}\nreboot', f'{ID_A} ',
              f'{{{ID_A}}}', ID_A.replace('-', ''), '', None, 7]
INJECTION_IDS = ['quote-semicolon', 'command-substitution', 'backticks', 'guid-then-quote', 'guid-then-newline',
                 'trailing-space', 'braces', 'no-dashes', 'empty', 'none', 'int']


@pytest.mark.parametrize('os_type', ['Linux', 'Windows'])
@pytest.mark.parametrize('event_id', INJECTIONS, ids=INJECTION_IDS)
def test_an_id_that_is_not_a_guid_never_reaches_a_script(os_type, event_id):
    with pytest.raises(InvalidEventIdError):
        approve_script(os_type, [event_id])
    with pytest.raises(InvalidEventIdError):
        approve_script(os_type, [ID_A, event_id])


# The Linux script, run -------------------------------------------------------------------------------------

SHIM = '''#!/bin/sh
# Test shim: send the script's IMDS requests to the emulator on loopback; refuse every other URL.
for arg do
  shift
  case $arg in
    {imds}/*) arg="{target}${{arg#{imds}}}" ;;
    *://*) echo "shim refused $arg" >&2; exit 97 ;;
  esac
  set -- "$@" "$arg"
done
exec {real} "$@"
'''


def shells():
    return [pytest.param(name, marks=pytest.mark.skipif(not shutil.which(name), reason=f'no {name} here'))
            for name in ('sh', 'bash')]


def tools():
    return [pytest.param(name, marks=pytest.mark.skipif(not shutil.which(name), reason=f'no {name} here'))
            for name in ('curl', 'wget')]


class Vm:
    """A folder of tools that make ``shell`` scripts reach ``target`` when they ask 169.254.169.254."""

    def __init__(self, folder, shell, tool, target):
        self.shell = shutil.which(shell)
        self.bin = folder / 'bin'
        self.bin.mkdir()
        fake = self.bin / tool
        fake.write_text(SHIM.format(imds=IMDS, target=target, real=shutil.which(tool)))
        fake.chmod(0o755)
        if tool == 'wget':
            # Only what the script needs, so that `command -v curl` fails and the wget branch runs.
            for name in ('sed', 'tr', 'tail'):
                (self.bin / name).symlink_to(shutil.which(name))
            self.path = str(self.bin)
        else:
            self.path = f'{self.bin}{os.pathsep}{os.environ["PATH"]}'
        self.home = folder

    def run(self, lines, env=None):
        """Run the script as Run Command would -> (exit code, stdout bytes, stderr text)."""
        done = subprocess.run([self.shell, '-c', '\n'.join(lines)], capture_output=True, timeout=60, check=False,
                              stdin=subprocess.DEVNULL, cwd=self.home,
                              env=dict({'PATH': self.path, 'HOME': str(self.home), 'LC_ALL': 'C'}, **(env or {})))
        assert 'shim refused' not in done.stderr.decode()
        return done.returncode, done.stdout, done.stderr.decode()

    def run_command(self, lines, env=None):
        """parse_output of the result Run Command would return: stdout and stderr cut to their last 4096 bytes."""
        code, stdout, stderr = self.run(lines, env)
        assert code == 0, stderr
        return parse_output(result_with(stdout[-OUTPUT_WINDOW:].decode(), stderr[-OUTPUT_WINDOW:]))


@pytest.fixture(params=shells())
def shell(request):
    return request.param


@pytest.fixture(params=tools())
def tool(request):
    return request.param


@pytest.fixture
def vm(tmp_path, emulator, shell, tool):
    return Vm(tmp_path, shell, tool, emulator.url)


def imds_requests(emulator):
    return [(r['method'], r['path'], r['query'].get('api-version'), r['body'], r['status'])
            for r in emulator.requests()]


def test_linux_script_run_reads_name_and_document(vm, emulator):
    emulator.add_events([{'EventType': 'Reboot', 'notice': 600}, {'EventType': 'Freeze', 'notice': 900}])
    answers = vm.run_command(read_script('Linux')[1])
    assert answers['name'] == (200, 'web_0')
    assert answers['doc'][0] == 200 and json.loads(answers['doc'][1]) == emulator.document('2020-07-01')
    assert imds_requests(emulator) == [('GET', '/metadata/instance/compute/name', '2021-02-01', None, 200),
                                       ('GET', '/metadata/scheduledevents', '2020-07-01', None, 200)]
    assert all(r['metadata_header'] == 'true' and r['x_forwarded_for'] is None for r in emulator.requests())


def test_linux_script_run_asks_the_given_api_version(vm, emulator):
    emulator.add_events([{'EventType': 'Reboot', 'notice': 600}])
    answers = vm.run_command(read_script('Linux', api_version='2017-08-01')[1])
    assert json.loads(answers['doc'][1]) == emulator.document('2017-08-01')
    assert 'DurationInSeconds' not in answers['doc'][1]
    assert imds_requests(emulator)[-1][2] == '2017-08-01'


def test_linux_script_run_approves_and_reads_the_document_after(vm, emulator):
    event_id, other = emulator.add_events([{'EventType': 'Reboot', 'notice': 600}, {'EventType': 'Freeze',
                                                                                    'notice': 900}])
    answers = vm.run_command(approve_script('Linux', [event_id])[1])
    assert answers['approve'] == (200, '')
    statuses = {e['EventId']: e['EventStatus'] for e in json.loads(answers['doc'][1])['Events']}
    assert statuses == {event_id: 'Started', other: 'Scheduled'}
    assert json.loads(answers['doc'][1]) == emulator.document('2020-07-01')
    posts = [r for r in imds_requests(emulator) if r[0] == 'POST']
    assert posts == [('POST', '/metadata/scheduledevents', '2020-07-01',
                      '{"StartRequests":[{"EventId":"%s"}]}' % event_id, 200)]


def test_linux_script_run_never_uses_a_proxy(vm, emulator, proxy_trap):
    variables, hits = proxy_trap
    emulator.add_events([{'EventType': 'Reboot', 'notice': 600}])
    env = {name: value for name, value in variables.items() if value is not None}
    answers = vm.run_command(approve_script('Linux', [emulator.document()['Events'][0]['EventId']])[1], env)
    assert answers['approve'][0] == 200 and answers['doc'][0] == 200
    assert hits == [] and len(emulator.requests()) == 3


def document_of_length(emulator, length):
    """Make the emulator serve a document of exactly ``length`` bytes (one event, its Description padded)."""
    emulator.add_events([{'EventType': 'Freeze', 'notice': 3600, 'Description': ''}])
    base = len(json.dumps(emulator.document('2020-07-01')))
    emulator.withdraw()
    emulator.add_events([{'EventType': 'Freeze', 'notice': 3600, 'Description': 'x' * (length - base)}])
    served = json.dumps(emulator.document('2020-07-01'))
    assert len(served) == length
    return served


@pytest.mark.parametrize('kind', ['read', 'approve'])
def test_linux_script_run_a_document_at_the_limit_fits_run_commands_window(vm, emulator, kind):
    served = document_of_length(emulator, 3600)
    if kind == 'read':
        lines = read_script('Linux')[1]
    else:
        lines = approve_script('Linux', [ID_A])[1]                     # not in the document: nothing changes
    code, stdout, _ = vm.run(lines)
    assert code == 0 and len(stdout) <= OUTPUT_WINDOW
    answers = vm.run_command(lines)
    assert answers['doc'] == (200, served) and answers['name'] == (200, 'web_0')


def test_linux_script_run_a_document_over_the_limit_is_not_printed(vm, emulator):
    served = document_of_length(emulator, 3601)
    code, stdout, _ = vm.run(read_script('Linux')[1])
    assert code == 0 and b'"Events"' not in stdout
    with pytest.raises(RunCommandOutputError, match=r'\(3601 bytes\) does not fit'):
        parse_output(result_with(stdout.decode()))
    assert len(served) == 3601


def test_linux_script_run_passes_imds_errors_on(vm, emulator, tool):
    emulator.add_fault({'kind': 'status', 'status': 503, 'count': 1, 'path': 'scheduledevents'})
    answers = vm.run_command(read_script('Linux')[1])
    assert answers['name'] == (200, 'web_0')
    if tool == 'curl':
        assert answers['doc'] == (503, '{"error": "Injected fault 503"}')
    else:
        assert answers['doc'] == (0, '')                               # wget cannot tell the status: 000


def test_linux_script_run_finishes_when_imds_does_not_answer(tmp_path, shell, tool):
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        closed = 'http://127.0.0.1:%d' % probe.getsockname()[1]
    answers = Vm(tmp_path, shell, tool, closed).run_command(approve_script('Linux', [ID_A])[1])
    assert answers == {'name': (0, ''), 'approve': (0, ''), 'doc': (0, ''), 'end': (0, '')}


def test_linux_script_run_keeps_json_escapes_in_the_document(vm, emulator, shell):
    emulator.add_events([{'EventType': 'Reboot', 'notice': 600,
                          'Description': 'line one\nline two\ttabbed "quoted" back\\slash'}])
    answers = vm.run_command(read_script('Linux')[1])
    assert json.loads(answers['doc'][1]) == emulator.document('2020-07-01')
