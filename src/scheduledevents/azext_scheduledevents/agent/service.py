# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The agent as a systemd service on the VM it runs on: put in place (``agent.pyz service install``),
asked how it runs (``service status``). Run Command and cloud-init call these; nothing here talks to Azure.

Install writes three files, each atomically and only when its bytes differ, so a second install with the
same agent and options changes nothing (``unchanged``) and a new version or new options replace them in
place and restart the service (``upgraded``), its state untouched::

    /opt/azure-scheduled-events/scheduled-events-agent.pyz      the agent (0755)
    /etc/systemd/system/azure-scheduled-events-agent.service    the unit: the agent's watch options (0644)
    /etc/default/azure-scheduled-events-agent                   secrets the options name (0600, root only)

Each answer is one marked line, as the Run Command scripts print them: ``@@se result@@ {...}``.
"""

import json
import os
import subprocess
import sys
import time

from ..core import status as status_file
from ..core.atomicfile import write_atomic
from ..core.systemd import render_unit
from ..core.times import parse_iso_utc
from ..core.vocabulary import AgentResult
from ..version import VERSION

AGENT_DIR = '/opt/azure-scheduled-events'
AGENT_PATH = f'{AGENT_DIR}/scheduled-events-agent.pyz'
UNIT_NAME = 'azure-scheduled-events-agent.service'
UNIT_PATH = f'/etc/systemd/system/{UNIT_NAME}'
ENV_FILE = '/etc/default/azure-scheduled-events-agent'
STATE_DIR = '/var/lib/azure-scheduled-events'
STATUS_FILE = f'{STATE_DIR}/{status_file.STATUS_FILE}'
# As the Run Command script prints it (platform.python_version() would cost an import).
PYTHON_VERSION = '.'.join(map(str, sys.version_info[:3]))


def say(step, body):
    """One marked answer line on stdout."""
    sys.stdout.write(f'@@se {step}@@ {json.dumps(body, separators=(",", ":"))}\n')
    sys.stdout.flush()


def install(agent_file, spec, *, python):
    """Install the agent in ``agent_file`` as the service that ``spec`` describes -> the result's dict.

    ``spec``: ``{"watch_argv": [...], "stop_timeout": seconds, "secrets": [environment variable names]}``;
    each secret's value is read from this process's environment (Run Command passes it as a parameter)
    and goes into the environment file only.
    """
    with open(agent_file, 'rb') as handle:
        agent = handle.read()
    argv = [python, '-I', '-S', AGENT_PATH, 'watch', *spec['watch_argv']]
    unit = render_unit(argv, stop_timeout_in_seconds=spec['stop_timeout'], description='scheduled-events agent',
                       state_dir=STATE_DIR, environment=(), environment_file=ENV_FILE)
    missing = [name for name in spec['secrets'] if name not in os.environ]
    if missing:
        return {'result': AgentResult.FAILED, 'error': f'no value came for {", ".join(missing)}'}
    files = [(AGENT_PATH, agent, 0o755), (UNIT_PATH, unit.encode(), 0o644)]
    if spec['secrets']:
        # Without secrets to send (cloud-init), an environment file the image brings is left as it is.
        secrets = ''.join(f'{name}="{_env_quote(os.environ[name])}"\n' for name in spec['secrets'])
        files.append((ENV_FILE, secrets.encode(), 0o600))
    existed = os.path.exists(UNIT_PATH)
    changed = [path for path, data, _ in files if _read(path) != data]
    for path, data, mode in files:
        if path in changed:
            write_atomic(path, data, mode=0o755, file_mode=mode)
    if not changed:
        result = AgentResult.UNCHANGED
    else:
        result = AgentResult.UPGRADED if existed else AgentResult.INSTALLED
    if changed:
        _systemctl('daemon-reload')
    if result == AgentResult.UPGRADED:
        _systemctl('enable', UNIT_NAME)
        _systemctl('restart', UNIT_NAME)
    else:
        _systemctl('enable', '--now', UNIT_NAME)     # unchanged: started again if it had been stopped
    return {'result': result, 'version': VERSION, 'python': PYTHON_VERSION,
            'active': _systemctl('is-active', UNIT_NAME, check=False)}


def status(*, wall=time.time):
    """How the service runs -> a dict: its version, systemd's view, and the watcher's status file with the
    age of its last poll by this VM's clock."""
    answer = {'version': VERSION, 'python': PYTHON_VERSION,
              'active': _systemctl('is-active', UNIT_NAME, check=False),
              'enabled': _systemctl('is-enabled', UNIT_NAME, check=False)}
    try:
        with open(STATUS_FILE, encoding='utf-8') as handle:
            answer['status'] = json.load(handle)
    except (OSError, ValueError) as ex:
        answer['status_error'] = f'{STATUS_FILE}: {getattr(ex, "strerror", None) or ex}'
    return _with_poll_age(answer, wall())


def _with_poll_age(answer, now):
    last = (answer.get('status') or {}).get('last_poll')
    if isinstance(last, str):
        try:
            answer['last_poll_age'] = round(now - parse_iso_utc(last), 1)
        except ValueError:
            pass
    return answer


def _systemctl(*args, check=True):
    done = subprocess.run(['systemctl', *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, check=False)
    text = done.stdout.decode('utf-8', 'replace').strip()
    if check and done.returncode != 0:
        raise OSError(f'systemctl {" ".join(args)} failed: {text or done.returncode}')
    return text


def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _env_quote(value):
    return value.replace('\\', '\\\\').replace('"', '\\"')


def main(args):
    """``service install --spec FILE --python PATH --agent FILE`` or ``service status`` -> exit code."""
    try:
        if args.action == 'install':
            with open(args.spec, encoding='utf-8') as handle:
                spec = json.load(handle)
            say('result', install(args.agent, spec, python=args.python))
        else:
            say('result', status())
    except (OSError, ValueError, KeyError) as ex:
        say('result', {'result': AgentResult.FAILED, 'error': str(ex)})
        return 1
    return 0
