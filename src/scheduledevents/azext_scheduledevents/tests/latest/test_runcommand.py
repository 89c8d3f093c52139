# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""core/runcommand.py: the scripts Run Command carries and the parsing of what it returns.

The Linux script is run for real, with sh and bash, against the IMDS emulator: a fake ``curl`` (or
``wget``) first on PATH sends the script's 169.254.169.254 requests to the emulator on loopback and
refuses any other URL; gzip or base64 can be left off PATH to run the plain-text fallback. There is no
PowerShell here, so the Windows script is checked as text only.
"""

import base64
import gzip
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import zlib

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


def packed(text, header=None):
    """``text`` gzipped and in base64, as the scripts send it; ``header`` replaces gzip's own 10 bytes."""
    if header is None:
        return base64.b64encode(gzip.compress(text.encode())).decode()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(text.encode()) + deflate.flush()
    trailer = struct.pack('<II', zlib.crc32(text.encode()), len(text.encode()) & 0xFFFFFFFF)
    return base64.b64encode(header + body + trailer).decode()


BIG_DOC = json.dumps({'DocumentIncarnation': 5, 'Events': [
    {'EventId': ID_A, 'EventType': 'Freeze', 'ResourceType': 'VirtualMachine', 'EventStatus': 'Scheduled',
     'Resources': [f'web_{i}' for i in range(400)], 'NotBefore': 'Mon, 19 Sep 2016 18:29:47 GMT'}]})


@pytest.mark.parametrize('header', [
    None,
    bytes.fromhex('1f8b0800000000000400'),                       # no mtime, no name: what GZipStream writes
    bytes.fromhex('1f8b0808') + struct.pack('<I', 1700000000) + b'\x00\x03doc.json\x00',   # a name, an mtime
], ids=['gzip', 'minimal-header', 'named'])
@pytest.mark.parametrize('newline', ['\n', '\r\n'], ids=['LF', 'CRLF'])
def test_parse_a_compressed_document(header, newline):
    stdout = newline.join(['@@se name 200@@ web_3', f'@@se doc-gz 200@@ {packed(BIG_DOC, header)}', '@@se end@@', ''])
    assert parse_output(result_with(stdout)) == {'name': (200, 'web_3'), 'doc': (200, BIG_DOC), 'end': (0, '')}


def test_parse_a_compressed_document_keeps_its_status_and_counts_as_required():
    stdout = f'@@se approve 200@@ \n@@se doc-gz 503@@ {packed(BIG_DOC)}\n@@se end@@'
    answers = parse_output(result_with(stdout), required=('approve', 'doc'))
    assert answers == {'approve': (200, ''), 'doc': (503, BIG_DOC), 'end': (0, '')}


@pytest.mark.parametrize('body, message', [
    ('not base64!', r'the compressed document cannot be read \('),
    (base64.b64encode(BIG_DOC.encode()).decode(), 'cannot be read'),                         # base64, not gzip
    (packed(BIG_DOC)[:-40], r'the compressed document was cut short'),
    (base64.b64encode(gzip.compress(b'\xff\xfe{}')).decode(), "cannot be read \\('utf-8' codec"),
    (base64.b64encode(gzip.compress(b' ' * (5 * 1024 * 1024))).decode(), 'is over 4194304 bytes'),
], ids=['not-base64', 'not-gzip', 'cut-short', 'not-utf-8', 'gzip-bomb'])
def test_parse_a_compressed_document_that_cannot_be_read(body, message):
    with pytest.raises(RunCommandOutputError, match=message):
        parse_output(result_with(f'@@se name 200@@ web_3\n@@se doc-gz 200@@ {body}\n@@se end@@'))


@pytest.mark.parametrize('stdout, stderr, message', [
    (f'"Events":[]}}\n@@se doc 200@@ {DOC}\n@@se end@@', '',
     r'the output cannot be read \(its beginning was cut off\)$'),
    (f'{packed(BIG_DOC)[-900:]}\n@@se end@@', '', r'\(its beginning was cut off\)$'),
    ('@@se name 200@@ web_0\n', '', r'\(the script did not finish\)$'),
    ('', '', r'\(the script did not finish\)$'),
    ('@@se name 200@@ web_0\n', 'sh: 2: curl: Permission denied', r'did not finish\): sh: 2: curl: Permission denied$'),
    ('@@se name 200@@ web_0\n', 'x' * 500 + 'LAST', r'did not finish\): x{196}LAST$'),
    ('@@se name 200@@ web_0\n@@se doc-too-large@@ 90000 5200\n@@se end@@', '',
     r"^the Scheduled Events document \(90000 bytes, 5200 gzipped and in base64\) does not fit in Run Command's "
     r"4096-byte output window even compressed; read it with --route control-plane$"),
    ('@@se name 200@@ web_0\n@@se doc-too-large@@ 9000\n@@se end@@', '',
     r"^the Scheduled Events document \(9000 bytes\) does not fit in Run Command's 4096-byte output window, and "
     r"the instance has no gzip and base64 to compress it; read it with --route control-plane$"),
    ('@@se name 200@@ web_0\n@@se doc-too-large@@ 3601\n', '', r'\(3601 bytes\)'),
], ids=['cut', 'cut-compressed', 'unfinished', 'empty', 'stderr-in-reason', 'stderr-tail-only', 'too-large',
        'too-large-uncompressed', 'too-large-unfinished'])
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
    assert '''size=$(printf '%s' "$body" | wc -c | tr -d ' ')''' in script
    assert 'if [ "$1" = doc ] && [ "$size" -gt 3600 ]; then packed=$(pack "$body"); fi' in script
    assert '[ ${#packed} -le 3600 ]' in script


def test_linux_script_text_compresses_only_with_gzip_and_base64_there():
    script = '\n'.join(read_script('Linux')[1])
    assert 'if command -v gzip >/dev/null 2>&1 && command -v base64 >/dev/null 2>&1; then' in script
    assert "printf '%s' \"$1\" | gzip -9 -c 2>/dev/null | base64 2>/dev/null | tr -d '\\n'" in script
    assert 'echo "@@se doc-gz $status@@ $packed"' in script
    assert 'echo "@@se doc-too-large@@ $size ${#packed}"' in script and 'echo "@@se doc-too-large@@ $size"' in script


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
    assert "$ErrorActionPreference = 'Stop'" in script


def test_windows_script_text_compresses_what_does_not_fit():
    script = '\n'.join(read_script('Windows')[1])
    assert '$size = [System.Text.Encoding]::UTF8.GetByteCount([string]$text)' in script
    assert """if ($Step -ne 'doc' -or $size -le 3600) { Write-Output "@@se $Step $status@@ $text" }""" in script
    pack = ['$bytes = [System.Text.Encoding]::UTF8.GetBytes($Text)',
            '$buffer = New-Object System.IO.MemoryStream',
            '$gzip = New-Object System.IO.Compression.GZipStream($buffer, '
            '[System.IO.Compression.CompressionMode]::Compress)',
            '$gzip.Write($bytes, 0, $bytes.Length); $gzip.Close()',          # closed first: it writes the trailer
            'return [Convert]::ToBase64String($buffer.ToArray())']
    lines = [line.strip() for line in script.splitlines()]
    start = lines.index(pack[0])
    assert lines[start - 1] == 'function Pack([string]$Text) {' and lines[start:start + len(pack)] == pack
    assert 'if ($packed.Length -le 3600) { Write-Output "@@se doc-gz $status@@ $packed" }' in script
    assert 'else { Write-Output "@@se doc-too-large@@ $size $($packed.Length)" }' in script


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


# Every program the Linux script runs, besides curl or wget.
SCRIPT_TOOLS = ('sed', 'tr', 'tail', 'wc', 'gzip', 'base64')


class Vm:
    """A folder of tools that make ``shell`` scripts reach ``target`` when they ask 169.254.169.254; the
    programs named in ``without`` are not on its PATH."""

    def __init__(self, folder, shell, tool, target, without=()):
        self.shell = shutil.which(shell)
        self.bin = folder / 'bin'
        self.bin.mkdir()
        fake = self.bin / tool
        fake.write_text(SHIM.format(imds=IMDS, target=target, real=shutil.which(tool)))
        fake.chmod(0o755)
        if tool == 'wget' or without:
            # Only what the script needs, so that `command -v curl` fails and the wget branch runs, and
            # `command -v gzip` (or base64) fails for the plain-text fallback.
            for name in SCRIPT_TOOLS:
                if name not in without:
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


def same_document(answer, served):
    """``answer`` (status, body) is ``served``, but for NotBefore, which the emulator renders afresh from two
    clocks on every request (the same second, or the next)."""
    def without_not_before(text):
        document = json.loads(text)
        for event in document['Events']:
            event.pop('NotBefore')
        return document
    return answer[0] == 200 and len(answer[1]) == len(served) and without_not_before(answer[1]) == \
        without_not_before(served)


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
    assert code == 0 and len(stdout) <= OUTPUT_WINDOW and b'@@se doc 200@@ {' in stdout     # as it is
    answers = vm.run_command(lines)
    assert same_document(answers['doc'], served) and answers['name'] == (200, 'web_0')


def test_linux_script_run_a_document_over_the_limit_comes_back_compressed(vm, emulator):
    served = document_of_length(emulator, 3601)
    code, stdout, _ = vm.run(read_script('Linux')[1])
    assert code == 0 and b'"Events"' not in stdout and b'@@se doc-gz 200@@ H4sI' in stdout
    assert same_document(vm.run_command(read_script('Linux')[1])['doc'], served)


SCALE_SET = [f'production-frontend-vmss_{i}' for i in range(400)]
PROSE = 'The host is being updated; memory-preserving maintenance pauses the VM for up to 30 seconds. '
LARGE_DOCUMENTS = {
    # Every event of a large scale set names the same instances; gzip says each name again in a few bytes.
    'three-events-naming-400': [{'EventType': 'Freeze', 'Resources': SCALE_SET} for _ in range(3)],
    'twenty-long-descriptions': [{'EventType': 'Freeze', 'Description': f'{i}: {PROSE * 12}'} for i in range(20)],
    'ten-events-naming-400': [{'EventType': 'Freeze', 'Resources': SCALE_SET} for _ in range(10)],
}


@pytest.mark.parametrize('events, size', [
    (LARGE_DOCUMENTS['three-events-naming-400'], 25_000),
    (LARGE_DOCUMENTS['twenty-long-descriptions'], 25_000),
    (LARGE_DOCUMENTS['ten-events-naming-400'], 125_000),           # about 3,300 bytes gzipped and in base64
], ids=['three-events-naming-400', 'twenty-long-descriptions', 'ten-events-naming-400'])
def test_linux_script_run_a_large_document_comes_back_whole(vm, emulator, events, size):
    emulator.add_events(events)
    served = json.dumps(emulator.document('2020-07-01'))
    assert len(served) > size
    code, stdout, _ = vm.run(read_script('Linux')[1])
    assert code == 0 and len(stdout) <= OUTPUT_WINDOW and b'@@se doc-gz 200@@ H4sI' in stdout
    answers = vm.run_command(read_script('Linux')[1])
    assert answers.keys() == {'name', 'doc', 'end'} and answers['name'] == (200, 'web_0')
    assert same_document(answers['doc'], served)


def test_linux_script_run_approves_and_reads_a_large_document_after(vm, emulator):
    first, *others = emulator.add_events(LARGE_DOCUMENTS['three-events-naming-400'])
    answers = vm.run_command(approve_script('Linux', [first])[1])
    assert answers['approve'] == (200, '')
    assert answers['doc'] == (200, json.dumps(emulator.document('2020-07-01')))
    statuses = {e['EventId']: e['EventStatus'] for e in json.loads(answers['doc'][1])['Events']}
    assert statuses == {first: 'Started', **{other: 'Scheduled' for other in others}}


def random_document(emulator):
    """Three events whose Descriptions are 6 KB of random hex: too large for the window even compressed."""
    emulator.add_events([{'EventType': 'Freeze', 'Description': os.urandom(3072).hex()} for _ in range(3)])
    return json.dumps(emulator.document('2020-07-01'))


def test_linux_script_run_a_document_too_large_even_compressed_is_not_printed(vm, emulator):
    served = random_document(emulator)
    code, stdout, _ = vm.run(read_script('Linux')[1])
    assert code == 0 and b'"Events"' not in stdout and b'H4sI' not in stdout
    with pytest.raises(RunCommandOutputError) as raised:
        vm.run_command(read_script('Linux')[1])
    message = str(raised.value)
    size, compressed = re.fullmatch(
        r"the Scheduled Events document \((\d+) bytes, (\d+) gzipped and in base64\) does not fit in Run Command's "
        r"4096-byte output window even compressed; read it with --route control-plane", message).groups()
    assert int(size) == len(served) and int(compressed) > 3600


@pytest.mark.parametrize('without', [('gzip',), ('base64',), ('gzip', 'base64')],
                         ids=['no-gzip', 'no-base64', 'neither'])
def test_linux_script_run_without_gzip_or_base64_sends_plain_text(tmp_path, emulator, shell, without):
    if not shutil.which('curl'):
        pytest.skip('no curl here')
    vm = Vm(tmp_path, shell, 'curl', emulator.url, without=without)
    served = document_of_length(emulator, 3600)
    assert same_document(vm.run_command(read_script('Linux')[1])['doc'], served)
    emulator.withdraw()
    served = document_of_length(emulator, 3601)
    code, stdout, _ = vm.run(read_script('Linux')[1])
    assert code == 0 and b'"Events"' not in stdout and b'@@se doc-too-large@@ 3601\n' in stdout
    with pytest.raises(RunCommandOutputError, match=r"\(3601 bytes\) does not fit in Run Command's 4096-byte output "
                                                    r"window, and the instance has no gzip and base64 to compress it; "
                                                    r"read it with --route control-plane$"):
        vm.run_command(read_script('Linux')[1])
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
