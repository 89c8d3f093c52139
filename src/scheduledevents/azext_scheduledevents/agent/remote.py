# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The scripts that carry the agent to an instance (Run Command, or cloud-init for new instances), ask how
it runs there and take it off; and the reading of what they print into one row per instance.

The install script holds the agent gzip-compressed and base64-encoded, checks its SHA-256 with the VM's
own Python before anything is written, then lets that agent install itself (``agent/service.py``), so the
files are written by the same code whichever way the agent arrives. Secrets never appear in the script:
Run Command passes them as parameters (environment variables of the script), which the agent writes into
a root-only environment file.

Run Command's documented limits: output is the last 4,096 bytes (the answers here are one short line
each), a script runs at most 90 minutes (these take seconds), one at a time per VM. The script itself
stays under ``MAX_SCRIPT_IN_BYTES``.
"""

import base64
import dataclasses
import gzip
import hashlib
import json
from urllib.parse import urlsplit

from ..core.errors import RunCommandOutputError
from ..core.runcommand import LINUX_COMMAND, MAX_SCRIPT_IN_BYTES, parse_output
from ..core.vocabulary import AgentResult, AgentState
from .service import AGENT_DIR, AGENT_PATH, ENV_FILE, STATE_DIR, UNIT_NAME, UNIT_PATH

# The size the agent's script is kept under: the inline script size the Custom Script extension takes,
# far below ARM's 4 MB request limit (the agent itself is well under a tenth of it).
MIN_PYTHON = (3, 8)
# Where install puts a webhook URL that carries a secret: SCHEDULED_EVENTS_WEBHOOK_1, _2...
SECRET_WEBHOOK_ENV = 'SCHEDULED_EVENTS_WEBHOOK'
BASE64_LINE = 76

_PREAMBLE = r'''# az scheduled-events agent: {purpose}.
say() {{ printf '@@se %s@@ %s\n' "$1" "$2"; }}
stop() {{ say fail "$1"; say end ''; exit 0; }}
command -v systemctl >/dev/null 2>&1 \
  || stop 'no systemd here (systemctl not found): the agent runs as a systemd service'
py=$(command -v python3) || stop 'no python3 here: the agent needs Python {minimum} or newer'
ver=$("$py" -I -S 2>/dev/null -c \
  'import sys; print("%d.%d.%d" % sys.version_info[:3]); sys.exit(sys.version_info < {minimum_tuple})')
recent=$?
[ -n "$ver" ] || stop "python3 ($py) does not run"
say python "$ver"
[ "$recent" = 0 ] || stop "python3 is $ver: the agent needs {minimum} or newer"
'''

# binascii and zlib read base64 and gzip (wbits 31) without the imports of the base64 and gzip modules.
_UNPACK = ('import binascii,hashlib,sys,zlib; '
           'd=zlib.decompress(binascii.a2b_base64(open(sys.argv[1],"rb").read()),31); '
           'sys.exit(3) if hashlib.sha256(d).hexdigest()!=sys.argv[2] else open(sys.argv[3],"wb").write(d)')

_INSTALL = r'''tmp=$(mktemp -d) || stop 'cannot make a temporary folder'
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/agent.b64" <<'AGENT'
{payload}
AGENT
cat > "$tmp/spec.json" <<'SPEC'
{spec}
SPEC
"$py" -I -S -c '{unpack}' "$tmp/agent.b64" {sha256} "$tmp/agent.pyz" \
  || stop 'the agent arrived damaged (its SHA-256 does not match): nothing was changed'
"$py" -I -S "$tmp/agent.pyz" service install --agent "$tmp/agent.pyz" --spec "$tmp/spec.json" --python "$py"
say end ''
'''

_STATUS = r'''if [ -f {agent} ]; then "$py" -I -S {agent} service status; else say missing '{{}}'; fi
say end ''
'''

_UNINSTALL = r'''# az scheduled-events agent: take the agent off this VM.
say() {{ printf '@@se %s@@ %s\n' "$1" "$2"; }}
if [ -f {unit} ]; then found=removed; else found=absent; fi
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now {unit_name} >/dev/null 2>&1; fi
rm -f {agent} {unit} {env}
rmdir {agent_dir} 2>/dev/null
{purge}if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload >/dev/null 2>&1; fi
say result "{{\"result\":\"$found\"}}"
say end ''
'''


def _preamble(purpose):
    return _PREAMBLE.format(purpose=purpose, minimum='.'.join(map(str, MIN_PYTHON)), minimum_tuple=MIN_PYTHON)


def install_spec(options, *, stop_timeout_in_seconds):
    """What the agent's ``service install`` needs: the watch options as arguments (the state under
    ``STATE_DIR``), the stop timeout, and the names of the secrets the options read from the environment."""
    return {'watch_argv': list(options.to_argv(state_dir=STATE_DIR)), 'stop_timeout': int(stop_timeout_in_seconds),
            'secrets': sorted(secret_names(options))}


def install_inputs(options, environ, *, stop_timeout_in_seconds):
    """``(spec, secrets)`` for installing with ``options``: webhook URLs that carry a secret moved out of
    the options (``without_secret_urls``), and the value in ``environ`` of each secret the spec names
    (a name missing from ``environ`` is missing from ``secrets``)."""
    environ = dict(environ)
    options = without_secret_urls(options, environ)
    spec = install_spec(options, stop_timeout_in_seconds=stop_timeout_in_seconds)
    return spec, {name: environ[name] for name in spec['secrets'] if name in environ}


def without_secret_urls(options, environ):
    """``options`` with each ``--webhook`` URL that carries a secret (a query or a user part) moved into a
    ``--webhook-env`` variable set in ``environ``, so that no unit or script shows it."""
    kept, moved = [], list(options.webhook_env)
    for index, url in enumerate(options.webhook):
        parts = urlsplit(url)
        if parts.query or parts.username or parts.password:
            name = f'{SECRET_WEBHOOK_ENV}_{index + 1}'
            environ[name] = url
            moved.append(name)
        else:
            kept.append(url)
    return dataclasses.replace(options, webhook=tuple(kept), webhook_env=tuple(moved))


def secret_names(options):
    """The environment variables whose values the watch options need (an Event Grid key, a SAS, a URL)."""
    names = {options.blob_sas_env, options.coordination_sas_env, *options.webhook_env}
    if options.event_grid_topic:
        names.add(options.event_grid_key_env)
    return {name for name in names if name}


def install_script(agent, spec):
    """(command id, script lines) that install ``agent`` (the zipapp's bytes) as ``spec`` says."""
    payload = base64.b64encode(gzip.compress(agent, mtime=0)).decode()
    lines = '\n'.join(payload[i:i + BASE64_LINE] for i in range(0, len(payload), BASE64_LINE))
    text = _preamble('install the agent as a systemd service') + _INSTALL.format(
        payload=lines, spec=json.dumps(spec, separators=(',', ':')), unpack=_UNPACK,
        sha256=hashlib.sha256(agent).hexdigest())
    if len(text.encode()) > MAX_SCRIPT_IN_BYTES:
        raise ValueError(f'the install script is {len(text.encode())} bytes; Run Command scripts are kept under '
                         f'{MAX_SCRIPT_IN_BYTES}')
    return LINUX_COMMAND, text.splitlines()


def status_script():
    return LINUX_COMMAND, (_preamble('say how the agent runs') + _STATUS.format(agent=AGENT_PATH)).splitlines()


def uninstall_script(*, purge):
    text = _UNINSTALL.format(unit=UNIT_PATH, unit_name=UNIT_NAME, agent=AGENT_PATH, env=ENV_FILE,
                             agent_dir=AGENT_DIR, purge=f'rm -rf {STATE_DIR}\n' if purge else '')
    return LINUX_COMMAND, text.splitlines()


def read_answer(output):
    """A script's RunCommandResult -> (python version or None, the result dict). A ``fail`` line becomes
    ``{"result": "failed", "error": ...}``; a ``missing`` one ``{"result": "missing"}``."""
    answers = parse_output(output, required=())
    python = answers.get('python', (0, None))[1]
    if 'fail' in answers:
        return python, {'result': AgentResult.FAILED, 'error': answers['fail'][1].strip()}
    if 'missing' in answers:
        return python, {'result': AgentState.MISSING}
    if 'result' not in answers:
        raise RunCommandOutputError('the script printed no result')
    try:
        return python, json.loads(answers['result'][1])
    except ValueError:
        raise RunCommandOutputError('the result line is not JSON') from None


_CLOUD_INIT = '''#cloud-config
# az scheduled-events agent {version}: installs the agent as a systemd service on first boot.
write_files:
  - path: {folder}/scheduled-events-agent.pyz
    encoding: gz+b64
    permissions: '0644'
    content: {payload}
  - path: {folder}/spec.json
    permissions: '0644'
    content: '{spec}'
runcmd:
  - [sh, -c, '{install}; rm -rf {folder}']
'''


def cloud_init(agent, spec):
    """cloud-init user data (custom data) that installs ``agent`` as ``spec`` says on a VM's first boot: the
    way new and reimaged instances get it from the scale set's model, beside any Custom Script extension."""
    from ..version import VERSION
    folder = '/run/azure-scheduled-events-install'
    install = (f'py=$(command -v python3) && "$py" -I -S {folder}/scheduled-events-agent.pyz service install '
               f'--agent {folder}/scheduled-events-agent.pyz --spec {folder}/spec.json --python "$py"')
    return _CLOUD_INIT.format(version=VERSION, folder=folder, install=install,
                              payload=base64.b64encode(gzip.compress(agent, mtime=0)).decode(),
                              spec=json.dumps(spec, separators=(',', ':')).replace("'", "''"))
