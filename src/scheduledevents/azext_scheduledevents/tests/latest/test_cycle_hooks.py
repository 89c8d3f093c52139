# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""core/cycle/hooks.py: the wrapper that carries a user's before- or after-script through Run Command.

The Linux wrapper is run for real, with bash and with sh (dash where there is one), in a temporary folder
and with an environment of PATH alone, so that all the user's script sees besides is what the wrapper
exports. Its exit code and output go through the fake ARM's own ``_run_command_result`` (streams cut to
their last 4096 bytes, as Run Command does) and then ``read_run``, as they would in a cycle. The cases are
those that would silently turn a hook's failure into a pass, or its pass into nonsense: the exit code, the
environment, the ``#!`` line, a script line equal to the here-document's end, output longer than Run
Command keeps, a wrapper killed before its marks, and the script reaching the instance as it was written.

There is no PowerShell here, so the Windows wrapper is checked as text only (its base64 payload and its
``$env:`` lines), and ``read_run`` is fed a Windows-shaped result (one value per stream).
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from azext_scheduledevents.core.cycle import hooks
from azext_scheduledevents.core.cycle.hooks import MAX_HOOK_IN_BYTES, Hook, HookRun, read_run
from azext_scheduledevents.core.errors import InvalidSettingError, RunCommandOutputError
from azext_scheduledevents.core.runcommand import LINUX_COMMAND, MAX_SCRIPT_IN_BYTES, WINDOWS_COMMAND, streams
from azext_scheduledevents.core.vocabulary import HookKind

from .fakearm.server import OUTPUT_LIMIT_IN_BYTES, _run_command_result

# Quotes, a space and what a shell would expand or run if the value were not quoted for it: the probes
# would leave files in the folder the wrapper runs in.
NOTE = 'it\'s "quoted", spaced  out, $HOME `touch probe-1` $(touch probe-2) \\n ; touch probe-3'
ENV = {'CYCLE_HOOK': 'before-script', 'CYCLE_ACTION': 'reimage', 'CYCLE_INSTANCE_ID': '3',
       'CYCLE_INSTANCE_NAME': 'web_3', 'CYCLE_ATTEMPT': '2', 'CYCLE_SCALE_SET': 'web', 'CYCLE_RESOURCE_GROUP': 'rg',
       'CYCLE_NOTE': NOTE}
# The folder of the interpreter running the tests first, so that `#!/usr/bin/env python3` finds a python.
PATH = os.pathsep.join([os.path.dirname(sys.executable), '/usr/local/bin', '/usr/bin', '/bin'])
# What the wrapper itself runs, besides the shell's builtins.
WRAPPER_TOOLS = ('mktemp', 'cat', 'head', 'rm')


def shells():
    names = ['bash', 'dash' if shutil.which('dash') else 'sh']
    return [pytest.param(name, marks=pytest.mark.skipif(not shutil.which(name), reason=f'no {name} here'))
            for name in names]


@pytest.fixture(name='shell', params=shells())
def shell_fixture(request):
    return request.param


class Instance:
    """Runs a wrapped hook as Run Command would on a Linux instance: ``shell -c`` of the script's lines joined
    with newlines, nothing on stdin, nothing in the environment but PATH."""

    def __init__(self, folder, shell_name, path=PATH):
        self.folder, self.shell, self.path = folder, shutil.which(shell_name), path

    def run(self, hook, environment=None):
        """-> (the completed process, the RunCommandResult the fake would return for it)."""
        command = hook.command('Linux', ENV if environment is None else environment)
        assert command['commandId'] == LINUX_COMMAND
        done = subprocess.run([self.shell, '-c', '\n'.join(command['script'])], capture_output=True, timeout=60,
                              check=False, stdin=subprocess.DEVNULL, cwd=self.folder, env={'PATH': self.path})
        return done, _run_command_result(done.returncode, done.stdout, done.stderr)

    def read(self, hook, environment=None):
        """-> (the completed process, ``read_run`` of its result)."""
        done, result = self.run(hook, environment)
        return done, read_run(hook, 1, result, 0.5)


@pytest.fixture(name='instance')
def instance_fixture(tmp_path, shell):
    return Instance(tmp_path, shell)


def before(text):
    return Hook(HookKind.BEFORE, 'inline', text)


# Linux: run -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('code', [0, 1, 3, 127, 255])
def test_the_exit_code_comes_back_exactly(instance, code):
    done, run = instance.read(before(f'echo before\nexit {code}\necho never'))
    assert done.returncode == code
    assert run == HookRun(HookKind.BEFORE, 1, exit_code=code, stdout='before', stderr='', seconds=0.5)
    assert run.ok is (code == 0)


def test_an_after_script_is_read_as_one(instance):
    hook = Hook(HookKind.AFTER, 'after.sh', 'echo checked; exit 9')
    _, run = instance.read(hook)
    assert (run.kind, run.exit_code, run.stdout, run.reason) == (HookKind.AFTER, 9, 'checked',
                                                                 'the after-script exited 9')


def test_the_users_marks_do_not_override_the_wrappers(instance):
    _, run = instance.read(before("echo '@@se exit 0@@'\necho '@@se end@@'\necho mine\nexit 3"))
    assert (run.exit_code, run.stdout) == (3, 'mine')


def test_the_environment_reaches_the_script(instance):
    text = ('printf "%s|%s|%s|%s\\n" "$CYCLE_INSTANCE_ID" "$CYCLE_INSTANCE_NAME" "$CYCLE_ATTEMPT" "$CYCLE_NOTE"\n'
            'printf "%s\\n" "$CYCLE_HOOK/$CYCLE_ACTION/$CYCLE_RESOURCE_GROUP/$CYCLE_SCALE_SET"')
    _, run = instance.read(before(text))
    assert run.stdout == f'3|web_3|2|{NOTE}\nbefore-script/reimage/rg/web'
    assert run.exit_code == 0 and not list(instance.folder.glob('probe-*'))


def test_the_environment_reaches_a_python_script_whole(instance):
    text = ('#!/usr/bin/env python3\nimport json, os\n'
            'print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("CYCLE_")}))')
    _, run = instance.read(before(text))
    assert json.loads(run.stdout) == ENV


def test_a_script_with_a_python_line_runs_under_python(instance):
    text = '#!/usr/bin/env python3\nimport sys\nprint("python", sys.version_info[0], 6 * 7, end="!\\n")\n' \
           'sys.exit(4)\n'
    done, run = instance.read(before(text))
    assert (run.exit_code, run.stdout, run.stderr) == (4, 'python 3 42!', '')
    assert done.returncode == 4


def test_the_interpreter_line_keeps_its_arguments(instance):
    _, run = instance.read(before('#!/bin/sh -e\necho one\nfalse\necho never'))
    assert (run.exit_code, run.stdout) == (1, 'one')


def test_an_interpreter_that_is_not_there_is_a_failure(instance):
    _, run = instance.read(before('#!/usr/bin/env no-such-interpreter\necho never'))
    assert run.exit_code == 127 and run.stdout == ''
    assert 'no-such-interpreter' in run.stderr


def test_without_a_python_line_bash_runs_it_and_sh_without_bash(tmp_path, shell):
    text = 'echo "bash=${BASH_VERSION:+yes}"'
    _, run = Instance(tmp_path, shell).read(before(text))
    assert run.stdout == 'bash=yes'
    bare = tmp_path / 'bin'
    bare.mkdir()
    for name in WRAPPER_TOOLS + ('sh',):
        (bare / name).symlink_to(shutil.which(name))
    (tmp_path / 'work').mkdir()
    _, run = Instance(tmp_path / 'work', shell, path=str(bare)).read(before(text))
    assert (run.exit_code, run.stdout) == (0, 'bash=')


def test_the_script_file_is_removed_afterwards(instance):
    _, run = instance.read(before('echo "$0"\nexit 2'))
    assert run.exit_code == 2 and run.stdout.startswith('/')
    assert not os.path.exists(run.stdout)


def test_a_line_equal_to_the_here_document_end_runs_whole(instance, monkeypatch):
    # The end line is SE_HOOK_ and the script's own hash: make that hash known, then write the line into it.
    digest = SimpleNamespace(hexdigest=lambda: '0' * 64)
    monkeypatch.setattr(hooks, 'hashlib', SimpleNamespace(sha256=lambda data: digest))
    end = 'SE_HOOK_' + '0' * 16
    text = (f'{end}() {{ echo middle; }}\n{end}_() {{ echo middle_; }}\necho first\n{end}\n{end}_\n'
            f'echo last\nexit 5')
    hook = before(text)
    assert f"cat > \"$hook\" <<'{end}__'" in hook.command('Linux', ENV)['script']
    _, run = instance.read(hook)
    assert (run.exit_code, run.stdout, run.stderr) == (5, 'first\nmiddle\nmiddle_\nlast', '')


def test_the_here_document_end_is_no_line_of_the_script():
    text = 'echo one\nSE_HOOK_\nEOF\necho two'
    lines = before(text).command('Linux', ENV)['script']
    opening, = [line for line in lines if line.startswith('cat > "$hook" <<')]
    end = opening.split("<<'", 1)[1].rstrip("'")
    assert re.fullmatch(r'SE_HOOK_[0-9A-F]{16}_*', end) and end not in text.splitlines()
    assert lines.count(end) == 1 and lines.index(end) == lines.index(opening) + 5


@pytest.mark.parametrize('stream', ['stdout', 'stderr', 'both'])
def test_output_over_the_window_still_yields_the_exit_code(instance, stream):
    loop = 'i=0\nwhile [ $i -lt 2000 ]; do\n{body}\n  i=$((i + 1))\ndone\n'
    body = {'stdout': '  echo "line $i of the output"', 'stderr': '  echo "line $i of the errors" >&2',
            'both': '  echo "line $i of the output"; echo "line $i of the errors" >&2'}[stream]
    done, run = instance.read(before(loop.format(body=body) + 'echo last\nexit 6'))
    assert max(len(done.stdout), len(done.stderr)) > 10 * OUTPUT_LIMIT_IN_BYTES
    assert run.exit_code == 6
    assert run.stdout.endswith('line 1999 of the output\nlast' if stream != 'stderr' else 'last')
    if stream != 'stdout':
        assert run.stderr.endswith('line 1999 of the errors') and 'line 0 of' not in run.stderr
    if stream != 'stderr':
        assert 'line 0 of' not in run.stdout and len(run.stdout.encode()) < OUTPUT_LIMIT_IN_BYTES


def test_the_output_comes_back_without_the_marks(instance):
    done, run = instance.read(before('echo "  one, indented"\necho\necho two\necho oops >&2\nprintf three'))
    assert b'@@se exit 0@@\n@@se end@@\n' in done.stdout
    assert (run.stdout, run.stderr) == ('  one, indented\n\ntwo\nthree', 'oops')


def test_a_silent_script_has_empty_output(instance):
    _, run = instance.read(before(':'))
    assert (run.exit_code, run.stdout, run.stderr) == (0, '', '')


@pytest.mark.parametrize('text', [
    'echo "$0" plain',
    'printf \'%s\\n\' "$HOME" \'$PATH\' `echo not run` "$(echo not run)" \\\\ \\$x\n\tindented\ttabs  \ntrailing  ',
    "cat <<'EOF'\nan inner here-document\nEOF\n.\nEOF_\n",
    'echo \'\u00e9t\u00e9 \u2014 \u20ac \U0001F600\'\n\n\n',
], ids=['plain', 'shell-syntax', 'inner-here-document', 'utf-8-and-blank-lines'])
def test_the_instance_runs_the_script_as_written(instance, text):
    _, result = instance.run(before(f'cat "$0"\nexit 0\n{text}'))
    stdout, _ = streams(result)
    assert stdout == f'cat "$0"\nexit 0\n{text}'.rstrip('\n') + '\n' + '\n@@se exit 0@@\n@@se end@@\n'


@pytest.mark.parametrize('character', ['\f', '\x85', '\u2028', '\r'],
                         ids=['form-feed', 'next-line-u0085', 'line-separator-u2028', 'lone-carriage-return'])
def test_characters_that_are_no_line_end_to_a_shell_reach_the_instance_unchanged(tmp_path, character):
    # None of these ends a line for a shell (Python's str.splitlines ends lines at each of them); within
    # quotes they are just bytes of a string. One shell is enough: the script is changed before it runs.
    on_sh = Instance(tmp_path, 'sh')
    text = f"printf '%s' 'a{character}b' | od -An -c | tr -s ' '\nexit 0"
    expected = subprocess.run(['sh', '-c', text.split('\n', 1)[0]], capture_output=True, check=True,
                              env={'PATH': PATH}).stdout.decode().strip()
    _, run = on_sh.read(before(text))
    assert (run.exit_code, run.stdout.strip()) == (0, expected)


def test_a_wrapper_killed_before_its_end_is_no_exit_code(instance):
    done, result = instance.run(before('echo started\nkill -9 $PPID\nsleep 0.2\necho orphan'))
    assert done.returncode == -9 and b'started' in done.stdout and b'@@se' not in done.stdout
    with pytest.raises(RunCommandOutputError, match='did not finish'):
        read_run(before('x'), 1, result, 1.0)


@pytest.mark.parametrize('result', [
    _run_command_result(None, b'started\nstill going\n', b''),
    _run_command_result(None, b'started\n@@se exit 0@@\n', b'Terminated\n'),      # cut between its marks
    _run_command_result(None, b'started\n@@se end@@\n', b''),                        # the script's own end mark
    _run_command_result(0, b'', b''),
    {'value': []},
], ids=['timed-out', 'cut-between-the-marks', 'an-end-mark-without-exit', 'no-output', 'no-value'])
def test_output_without_the_marks_is_refused(result):
    with pytest.raises(RunCommandOutputError):
        read_run(before('x'), 1, result, 1.0)


# Hook: what it refuses -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('text', ['', '\n', ' \t\n  \n'], ids=['empty', 'newline', 'blank'])
def test_an_empty_script_is_refused(text):
    with pytest.raises(InvalidSettingError, match=r'the before-script \(inline\) is empty'):
        before(text)


def test_an_oversize_script_is_refused_in_bytes():
    assert MAX_HOOK_IN_BYTES == (MAX_SCRIPT_IN_BYTES - 4096) * 3 // 4
    with pytest.raises(InvalidSettingError, match=f'is {MAX_HOOK_IN_BYTES + 1} bytes; Run Command takes at most '
                                                  f'{MAX_HOOK_IN_BYTES}'):
        Hook(HookKind.AFTER, 'big.sh', 'x' * (MAX_HOOK_IN_BYTES + 1))
    with pytest.raises(InvalidSettingError, match=f'is {MAX_HOOK_IN_BYTES + 2} bytes'):
        Hook(HookKind.AFTER, 'big.sh', '\u00e9' * (MAX_HOOK_IN_BYTES // 2 + 1))           # fewer characters


@pytest.mark.parametrize('os_type', ['Linux', 'Windows'])
def test_the_largest_script_accepted_still_fits_run_command(os_type):
    hook = before('x' * (MAX_HOOK_IN_BYTES - 1) + '\n')
    command = hook.command(os_type, dict(ENV, CYCLE_INSTANCE_NAME='w' * 64))
    # What Hook accepts must be what Run Command takes, on either OS (Windows carries it in base64).
    size = len('\n'.join(command['script']).encode())
    assert size <= MAX_SCRIPT_IN_BYTES, f'{os_type}: a {MAX_HOOK_IN_BYTES}-byte hook makes a {size}-byte script'


# Windows: text only (no PowerShell here) ------------------------------------------------------------------------

WINDOWS_TEXT = ("Write-Output 'draining'\n$x = @'\nit''s \u00e9t\u00e9 \u20ac\n'@\n"
                "if ($env:CYCLE_INSTANCE_ID -ne '3') { exit 2 }\nexit 0\n")


def windows_payload(lines):
    payload, = [m[1] for m in (re.search(r"FromBase64String\('([A-Za-z0-9+/=]*)'\)", line) for line in lines) if m]
    return base64.b64decode(payload, validate=True)


def test_windows_command_id_and_payload_text_only():
    command = before(WINDOWS_TEXT).command('Windows', ENV)
    assert command['commandId'] == WINDOWS_COMMAND
    raw = windows_payload(command['script'])
    assert raw.startswith(b'\xef\xbb\xbf')                    # a BOM, so Windows PowerShell reads it as UTF-8
    assert raw.decode('utf-8-sig') == WINDOWS_TEXT
    assert not any('draining' in line for line in command['script'])           # the script is only in base64


def test_windows_environment_lines_text_only():
    lines = before(WINDOWS_TEXT).command('windows', ENV)['script']
    found = {}
    for line in lines:
        if line.startswith('$env:'):
            match = re.fullmatch(r"\$env:(\w+) = '((?:[^']|'')*)'", line)
            assert match, line
            found[match[1]] = match[2].replace("''", "'")
    assert found == ENV
    assert "$env:CYCLE_NOTE = 'it''s \"quoted\", spaced  out, $HOME `touch probe-1` $(touch probe-2) \\n ; " \
           "touch probe-3'" in lines


WINDOWS_STDOUT = 'draining web_3\r\n  done\r\n\r\n@@se exit 4@@\r\n@@se end@@\r\n'
WINDOWS_STDERR = 'slow to drain\r\n'


def windows_result(stdout=WINDOWS_STDOUT, stderr=WINDOWS_STDERR):
    return {'value': [{'code': 'ComponentStatus/StdOut/succeeded', 'level': 'Info', 'displayStatus':
                       'Provisioning succeeded', 'message': stdout},
                      {'code': 'ComponentStatus/StdErr/succeeded', 'level': 'Info', 'displayStatus':
                       'Provisioning succeeded', 'message': stderr}]}


def test_windows_result_streams_text_only():
    assert streams(windows_result()) == (WINDOWS_STDOUT, WINDOWS_STDERR)


def test_windows_result_read_run_text_only():
    run = read_run(Hook(HookKind.AFTER, 'check.ps1', 'exit 4'), 2, windows_result(), 3.0)
    assert (run.kind, run.attempt, run.exit_code, run.stdout, run.seconds) == (
        HookKind.AFTER, 2, 4, 'draining web_3\n  done', 3.0)
    assert not run.ok and run.reason == 'the after-script exited 4'


def test_windows_result_stderr_lines_end_as_stdout_lines_do_text_only():
    # Windows ends its lines with CRLF; the run's stdout comes back with plain newlines, and so should its
    # stderr (the report and the JUnit file show both).
    run = read_run(before('exit 0'), 1, windows_result(stderr='first\r\nsecond\r\n'), 1.0)
    assert run.stdout == 'draining web_3\n  done'
    assert run.stderr == 'first\nsecond'


def test_windows_result_without_the_marks_is_refused_text_only():
    with pytest.raises(RunCommandOutputError, match='did not finish'):
        read_run(before('exit 0'), 1, windows_result(stdout='draining web_3\r\n'), 1.0)
