# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The cycle's before- and after-scripts: the user's script, wrapped to run on an instance through Run
Command with the instance id, action and attempt in its environment, ending with its exit code marked::

    @@se exit 3@@
    @@se end@@

Run Command keeps the last 4096 bytes of each stream, so the marks survive any amount of output; output
without them means the script was stopped (Run Command's own timeout) and is no exit code at all.

    hook = Hook(HookKind.BEFORE, 'drain.sh', text)
    command = hook.command('Linux', {'CYCLE_INSTANCE_ID': '3', ...})  # Run Command input
    run = read_run(hook, attempt, output, seconds)                    # HookRun(exit_code=0, stdout=...)
"""

import base64
import hashlib
import shlex
from dataclasses import dataclass

from ..errors import InvalidSettingError
from ..runcommand import LINUX_COMMAND, MAX_SCRIPT_IN_BYTES, WINDOWS_COMMAND, parse_output, streams
from ..vocabulary import HookKind

# The marks and the wrapper's own framing need room beside the user's script, which travels in base64 (a
# third larger) to Windows.
MAX_HOOK_IN_BYTES = (MAX_SCRIPT_IN_BYTES - 4096) * 3 // 4

_LINUX = '''# az scheduled-events cycle: {kind} of {name}.
{exports}
hook=$(mktemp) || {{ printf '\\n@@se exit 127@@\\n@@se end@@\\n'; exit 127; }}
cat > "$hook" <<'{delimiter}'
{script}
{delimiter}
# By its #! line where it has one (run through it, so a noexec /tmp does not matter), else bash or sh.
first=$(head -n 1 "$hook")
case "$first" in
  '#!'*) ${{first#\\#!}} "$hook" ;;
  *) if command -v bash >/dev/null 2>&1; then bash "$hook"; else sh "$hook"; fi ;;
esac
code=$?
rm -f "$hook"
printf '\\n@@se exit %s@@\\n@@se end@@\\n' "$code"
exit "$code"
'''

_WINDOWS = '''# az scheduled-events cycle: {kind} of {name}.
{exports}
$hook = Join-Path $env:TEMP ('se-hook-' + [guid]::NewGuid() + '.ps1')
[IO.File]::WriteAllBytes($hook, [Convert]::FromBase64String('{payload}'))
$global:LASTEXITCODE = 0
try {{ & $hook; $code = if ($?) {{ $LASTEXITCODE }} else {{ if ($LASTEXITCODE) {{ $LASTEXITCODE }} else {{ 1 }} }} }}
catch {{ Write-Error $_; $code = 1 }}
finally {{ Remove-Item -Force $hook -ErrorAction SilentlyContinue }}
Write-Output ''
Write-Output "@@se exit $code@@"
Write-Output '@@se end@@'
exit $code
'''


@dataclass(frozen=True)
class Hook:
    """A user's script, ``source`` saying where it came from (its file, or ``inline``)."""

    kind: HookKind
    source: str
    text: str

    def __post_init__(self):
        if not self.text.strip():
            raise InvalidSettingError(f'the {self.kind} ({self.source}) is empty')
        if len(self.text.encode()) > MAX_HOOK_IN_BYTES:
            raise InvalidSettingError(f'the {self.kind} ({self.source}) is {len(self.text.encode())} bytes; '
                                      f'Run Command takes at most {MAX_HOOK_IN_BYTES} for it')

    def command(self, os_type, environment):
        """Run Command's input (commandId, script lines) for an instance of ``os_type``. ``environment``'s
        values are set in the script itself, quoted for its shell (Run Command passes parameters to a
        PowerShell script as arguments, not as variables)."""
        name = environment.get('CYCLE_INSTANCE_NAME', '')
        if os_type.lower() == 'windows':
            exports = '\n'.join(f"$env:{key} = '{value.replace(chr(39), chr(39) * 2)}'"
                                for key, value in environment.items())
            text = _WINDOWS.format(kind=self.kind, name=name, exports=exports,
                                   payload=base64.b64encode(self.text.encode('utf-8-sig')).decode())
            return {'commandId': WINDOWS_COMMAND, 'script': text.split('\n')}
        exports = 'export ' + ' '.join(f'{key}={shlex.quote(value)}' for key, value in environment.items())
        text = _LINUX.format(kind=self.kind, name=name, exports=exports, delimiter=self._delimiter(),
                             script=self.text.rstrip('\n'))
        # Lines end at \n alone: splitlines() would also cut at form feeds and the like, changing the script.
        return {'commandId': LINUX_COMMAND, 'script': text.split('\n')}

    def _delimiter(self):
        """A here-document end line that no line of the script is."""
        delimiter = 'SE_HOOK_' + hashlib.sha256(self.text.encode()).hexdigest()[:16].upper()
        lines = set(self.text.split('\n'))
        while delimiter in lines:
            delimiter += '_'
        return delimiter


@dataclass(frozen=True)
class HookRun:  # pylint: disable=too-many-instance-attributes
    """One run of a hook on one instance: its exit code and output, or why there is neither."""

    kind: HookKind
    attempt: int
    exit_code: int | None = None
    stdout: str = ''
    stderr: str = ''
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self):
        return self.error is None and self.exit_code == 0

    @property
    def reason(self):
        """Why it did not pass, in words for the report and the log."""
        if self.error is not None:
            return f'the {self.kind} did not run to its end: {self.error}'
        return f'the {self.kind} exited {self.exit_code}'

    def to_view(self):
        return {'attempt': self.attempt, 'exitCode': self.exit_code, 'stdout': self.stdout, 'stderr': self.stderr,
                'error': self.error, 'seconds': round(self.seconds, 1)}


def read_run(hook, attempt, output, seconds):
    """A hook's RunCommandResult -> its ``HookRun``; RunCommandOutputError when the marks are missing."""
    code = parse_output(output, required=('exit',))['exit'][0]
    stdout, stderr = (_lines(text) for text in streams(output))
    kept = [line for line in stdout if not line.startswith('@@se ')]
    return HookRun(hook.kind, attempt, code, '\n'.join(kept).strip('\n'), '\n'.join(stderr).strip('\n'),
                   seconds=seconds)


def _lines(text):
    """Lines as the script wrote them, whether they end in \\n (Linux) or \\r\\n (Windows)."""
    return [line[:-1] if line.endswith('\r') else line for line in text.split('\n')]
