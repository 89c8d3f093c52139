# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The scripts that Run Command executes on an instance to read or approve its Scheduled Events, and the
parsing of what Run Command returns.

Each script asks IMDS directly (never through a proxy) and prints one marked line per answer::

    @@se name 200@@ web_3
    @@se doc 200@@ {"DocumentIncarnation":3,"Events":[...]}
    @@se end@@

Run Command keeps only the last 4096 bytes of stdout. A document too large for that window is sent
gzipped and in base64 on one line (``@@se doc-gz 200@@ H4sI...``): the names in ``Resources`` and the
keys repeated in every event shrink it tenfold or more, so ten events naming the same 400 instances
(130 KB) still come back whole. Linux uses ``gzip`` and ``base64`` where the VM has them (plain text
when not), Windows the .NET GZipStream. The document is sent with every field, not trimmed: ``list``
shows each one (Description too), and no bare VM has a JSON tool (jq, python) to trim it safely with.

A document too large even so is not printed at all (``@@se doc-too-large@@ <bytes> <compressed
bytes>``, or only ``<bytes>`` where it could not be compressed), and output whose first marker was cut
off is reported as cut, never read as half a document.
"""

import base64
import binascii
import json
import re
import zlib

from .errors import RunCommandOutputError
from .events import validate_event_id
from .imds import DEFAULT_API_VERSION, INSTANCE_API_VERSION, INSTANCE_PATH, SCHEDULED_EVENTS_PATH

OUTPUT_WINDOW_IN_BYTES = 4096
# Room left in the window for the name line, the markers and Run Command's own framing: the most a
# document may take, as text or, when that is more, gzipped and in base64.
MAX_DOCUMENT_IN_BYTES = 3600
# A document decompresses to at most this much (IMDS documents are kilobytes; this stops a gzip bomb).
MAX_UNPACKED_DOCUMENT_IN_BYTES = 4 * 1024 * 1024
# Run Command takes scripts up to 256 KB.
MAX_SCRIPT_IN_BYTES = 256 * 1024
LINUX_COMMAND = 'RunShellScript'
WINDOWS_COMMAND = 'RunPowerShellScript'

_IMDS = 'http://169.254.169.254'
_NAME_URL = f'{_IMDS}{INSTANCE_PATH}/compute/name?api-version={INSTANCE_API_VERSION}&format=text'
_MARKER = re.compile(r'^@@se (?P<step>[\w-]+)(?: (?P<status>\d+))?@@ ?(?P<body>.*)$')

_LINUX = r'''# az scheduled-events: {purpose}, straight from IMDS (never through a proxy).
ask() {{
  if command -v curl >/dev/null 2>&1; then
    if [ -n "$2" ]; then
      curl -s --noproxy '*' -m 60 -H 'Metadata: true' -H 'Content-Type: application/json' -X POST -d "$2" \
        -w '\n%{{http_code}}' "$1"
    else
      curl -s --noproxy '*' -m 60 -H 'Metadata: true' -w '\n%{{http_code}}' "$1"
    fi
  elif [ -n "$2" ]; then
    body=$(wget -q -O - --no-proxy --timeout=60 --header='Metadata: true' \
      --header='Content-Type: application/json' --post-data="$2" "$1") && printf '%s\n200' "$body" || printf '\n000'
  else
    body=$(wget -q -O - --no-proxy --timeout=60 --header='Metadata: true' "$1") \
      && printf '%s\n200' "$body" || printf '\n000'
  fi
}}
# gzip, then base64 on one line; nothing where the VM lacks either (the caller then says it cannot).
pack() {{
  if command -v gzip >/dev/null 2>&1 && command -v base64 >/dev/null 2>&1; then
    printf '%s' "$1" | gzip -9 -c 2>/dev/null | base64 2>/dev/null | tr -d '\n'
  fi
}}
say() {{
  answer=$(ask "$2" "$3")
  status=$(printf '%s' "$answer" | tail -n 1)
  body=$(printf '%s' "$answer" | sed '$d' | tr -d '\r\n')
  # Bytes, not characters: Run Command's window is in bytes and ${{#body}} counts characters under UTF-8.
  size=$(printf '%s' "$body" | wc -c | tr -d ' ')
  packed=
  if [ "$1" = doc ] && [ "$size" -gt {limit} ]; then packed=$(pack "$body"); fi
  if [ "$1" != doc ] || [ "$size" -le {limit} ]; then
    # printf, not echo: dash's echo (Debian's /bin/sh) turns the \n and \\ of JSON strings into control bytes.
    printf '%s\n' "@@se $1 $status@@ $body"
  elif [ -z "$packed" ]; then
    echo "@@se doc-too-large@@ $size"
  elif [ ${{#packed}} -le {limit} ]; then
    echo "@@se doc-gz $status@@ $packed"
  else
    echo "@@se doc-too-large@@ $size ${{#packed}}"
  fi
}}
say name '{name_url}' ''
{steps}echo '@@se end@@'
'''

_WINDOWS = r'''# az scheduled-events: {purpose}, straight from IMDS (never through a proxy).
$ErrorActionPreference = 'Stop'
function Ask([string]$Uri, [string]$Body) {{
  $request = [System.Net.HttpWebRequest]::Create($Uri)
  $request.Proxy = [System.Net.GlobalProxySelection]::GetEmptyWebProxy()
  $request.Headers.Add('Metadata', 'true')
  $request.Timeout = 60000
  if ($Body) {{
    $request.Method = 'POST'
    $request.ContentType = 'application/json'
    $bytes = [System.Text.Encoding]::UTF8.GetBytes($Body)
    $stream = $request.GetRequestStream(); $stream.Write($bytes, 0, $bytes.Length); $stream.Close()
  }}
  try {{ $response = $request.GetResponse() }}
  catch [System.Net.WebException] {{
    $response = $_.Exception.Response
    if (-not $response) {{ return @(0, '') }}
  }}
  $text = (New-Object System.IO.StreamReader($response.GetResponseStream())).ReadToEnd()
  return @([int]$response.StatusCode, ($text -replace "`r?`n", ''))
}}
function Pack([string]$Text) {{
  $bytes = [System.Text.Encoding]::UTF8.GetBytes($Text)
  $buffer = New-Object System.IO.MemoryStream
  $gzip = New-Object System.IO.Compression.GZipStream($buffer, [System.IO.Compression.CompressionMode]::Compress)
  $gzip.Write($bytes, 0, $bytes.Length); $gzip.Close()
  return [Convert]::ToBase64String($buffer.ToArray())
}}
function Say([string]$Step, [string]$Uri, [string]$Body) {{
  $status, $text = Ask $Uri $Body
  $size = [System.Text.Encoding]::UTF8.GetByteCount([string]$text)
  if ($Step -ne 'doc' -or $size -le {limit}) {{ Write-Output "@@se $Step $status@@ $text" }}
  else {{
    $packed = Pack $text
    if ($packed.Length -le {limit}) {{ Write-Output "@@se doc-gz $status@@ $packed" }}
    else {{ Write-Output "@@se doc-too-large@@ $size $($packed.Length)" }}
  }}
}}
Say 'name' '{name_url}' ''
{steps}Write-Output '@@se end@@'
'''


def _document_url(api_version):
    return f'{_IMDS}{SCHEDULED_EVENTS_PATH}?api-version={api_version}'


def read_script(os_type, api_version=DEFAULT_API_VERSION):
    """(command id, script lines) that print this instance's name and Scheduled Events document."""
    return _script(os_type, 'read Scheduled Events', [('doc', _document_url(api_version), '')])


def approve_script(os_type, event_ids, api_version=DEFAULT_API_VERSION):
    """(command id, script lines) that approve ``event_ids`` and print the document afterwards.

    Every id is checked to be a GUID before it is written into the script.
    """
    ids = [validate_event_id(event_id) for event_id in event_ids]
    body = json.dumps({'StartRequests': [{'EventId': event_id} for event_id in ids]}, separators=(',', ':'))
    url = _document_url(api_version)
    return _script(os_type, 'approve Scheduled Events', [('approve', url, body), ('doc', url, '')])


def _script(os_type, purpose, steps):
    windows = os_type.lower() == 'windows'
    template = _WINDOWS if windows else _LINUX
    call = "Say '{0}' '{1}' '{2}'\n" if windows else "say {0} '{1}' '{2}'\n"
    text = template.format(purpose=purpose, limit=MAX_DOCUMENT_IN_BYTES, name_url=_NAME_URL,
                           steps=''.join(call.format(*step) for step in steps))
    return (WINDOWS_COMMAND if windows else LINUX_COMMAND), text.splitlines()


def parse_output(result, *, required=('name',)):
    """Run Command's RunCommandResult (a dict, as JSON) -> {step: (status, body)} from the marked lines; the
    ``end`` marker and the ``required`` ones must be there, or the output was cut. A compressed step
    (``doc-gz``) comes back decoded, under its own name (``doc``).

        parse_output({'value': [{'message': '[stdout]\\n@@se name 200@@ web_3\\n@@se end@@\\n'}]})
    """
    stdout, stderr = streams(result)
    answers = {}
    for line in stdout.splitlines():
        match = _MARKER.match(line.strip('\r'))
        if match:
            answers[match['step']] = (int(match['status'] or 0), match['body'])
    if 'doc-too-large' in answers:
        raise RunCommandOutputError(_too_large(answers['doc-too-large'][1]))
    if 'end' not in answers or any(step not in answers and f'{step}-gz' not in answers for step in required):
        reason = 'its beginning was cut off' if 'end' in answers else 'the script did not finish'
        stderr = stderr.strip()
        raise RunCommandOutputError(f'the output cannot be read ({reason})' + (f': {stderr[-200:]}' if stderr else ''))
    for step in [step for step in answers if step.endswith('-gz')]:
        status, body = answers.pop(step)
        answers[step[:-len('-gz')]] = (status, _unpack(body))
    return answers


def streams(result):
    """Run Command's RunCommandResult (a dict) -> (stdout, stderr): on Linux both are in one message
    (``[stdout]`` and ``[stderr]`` sections), on Windows each has a status of its own."""
    values = result.get('value') if isinstance(result, dict) else None
    if not values:
        raise RunCommandOutputError('Run Command returned no output')
    sections = {}
    for value in values:
        parts = (value.get('code') or '').split('/')       # ComponentStatus/StdOut/succeeded
        if len(parts) > 1 and parts[0] == 'ComponentStatus':
            sections[parts[1].lower()] = value.get('message') or ''
    if 'stdout' in sections:
        return sections['stdout'], sections.get('stderr', '')
    message = values[0].get('message') or ''
    stdout, _, stderr = message.split('[stdout]\n', 1)[-1].partition('\n[stderr]\n')
    return stdout, stderr


def _too_large(sizes):
    """The message for ``@@se doc-too-large@@ <bytes> [<bytes gzipped and in base64>]``."""
    size, _, packed = sizes.strip().partition(' ')
    if packed:
        return (f'the Scheduled Events document ({size} bytes, {packed} gzipped and in base64) does not fit in '
                f'Run Command\'s {OUTPUT_WINDOW_IN_BYTES}-byte output window even compressed; '
                'read it with --route control-plane')
    return (f'the Scheduled Events document ({size} bytes) does not fit in Run Command\'s '
            f'{OUTPUT_WINDOW_IN_BYTES}-byte output window, and the instance has no gzip and base64 to compress '
            'it; read it with --route control-plane')


def _unpack(text):
    """base64 -> gunzip -> UTF-8 text; raise ``RunCommandOutputError`` when it is not that."""
    try:
        packed = base64.b64decode(text.strip(), validate=True)
        unzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)            # gzip framing, as gzip -c writes
        unpacked = unzip.decompress(packed, MAX_UNPACKED_DOCUMENT_IN_BYTES)
        if unzip.unconsumed_tail:
            raise RunCommandOutputError(f'the compressed document is over {MAX_UNPACKED_DOCUMENT_IN_BYTES} bytes')
        if not unzip.eof:
            raise RunCommandOutputError('the compressed document was cut short')
        return unpacked.decode('utf-8')
    except (binascii.Error, zlib.error, UnicodeDecodeError) as ex:
        raise RunCommandOutputError(f'the compressed document cannot be read ({ex})') from None
