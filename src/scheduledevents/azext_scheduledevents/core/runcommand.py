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

Run Command keeps only the last 4096 bytes of stdout, so a document too large for that window is not
printed at all (``@@se doc-too-large <bytes>@@``), and output whose first marker was cut off is
reported as cut, never read as half a document.
"""

import json
import re

from .errors import RunCommandOutputError
from .events import validate_event_id
from .imds import DEFAULT_API_VERSION, INSTANCE_API_VERSION, INSTANCE_PATH, SCHEDULED_EVENTS_PATH

OUTPUT_WINDOW_IN_BYTES = 4096
# Room left in the window for the name line, the markers and Run Command's own framing.
MAX_DOCUMENT_IN_BYTES = 3600
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
say() {{
  answer=$(ask "$2" "$3")
  status=$(printf '%s' "$answer" | tail -n 1)
  body=$(printf '%s' "$answer" | sed '$d' | tr -d '\r\n')
  if [ "$1" = doc ] && [ ${{#body}} -gt {limit} ]; then
    echo "@@se doc-too-large@@ ${{#body}}"
  else
    # printf, not echo: dash's echo (Debian's /bin/sh) turns the \n and \\ of JSON strings into control bytes.
    printf '%s\n' "@@se $1 $status@@ $body"
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
function Say([string]$Step, [string]$Uri, [string]$Body) {{
  $status, $text = Ask $Uri $Body
  if ($Step -eq 'doc' -and $text.Length -gt {limit}) {{ Write-Output "@@se doc-too-large@@ $($text.Length)" }}
  else {{ Write-Output "@@se $Step $status@@ $text" }}
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
    ``end`` marker and the ``required`` ones must be there, or the output was cut."""
    values = result.get('value') if isinstance(result, dict) else None
    if not values:
        raise RunCommandOutputError('Run Command returned no output')
    message = values[0].get('message') or ''
    stdout = message.split('[stdout]\n', 1)[-1].split('\n[stderr]\n', 1)[0]
    answers = {}
    for line in stdout.splitlines():
        match = _MARKER.match(line.strip('\r'))
        if match:
            answers[match['step']] = (int(match['status'] or 0), match['body'])
    if 'doc-too-large' in answers:
        raise RunCommandOutputError(f'the Scheduled Events document ({answers["doc-too-large"][1].strip()} bytes) '
                                    f'does not fit in Run Command\'s {OUTPUT_WINDOW_IN_BYTES}-byte output window')
    if 'end' not in answers or any(step not in answers for step in required):
        reason = 'its beginning was cut off' if 'end' in answers else 'the script did not finish'
        stderr = message.split('\n[stderr]\n', 1)[1].strip() if '\n[stderr]\n' in message else ''
        raise RunCommandOutputError(f'the output cannot be read ({reason})' + (f': {stderr[-200:]}' if stderr else ''))
    return answers
