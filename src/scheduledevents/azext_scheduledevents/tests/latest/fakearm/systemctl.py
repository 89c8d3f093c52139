# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The systemd of a simulated VM, as much of it as the agent's scripts use: ``daemon-reload``, ``enable``
(``--now``), ``disable`` (``--now``), ``start``, ``stop``, ``restart``, ``is-active``, ``is-enabled``.

It runs where the Run Command script runs, inside the VM's network and mount namespaces, so a unit it
starts (its ``ExecStart``, with its ``EnvironmentFile``) runs there too, against the VM's own IMDS. Enabled
units are the ``multi-user.target.wants`` links, as systemd keeps them; a unit's main process is kept in
``<runtime>/<unit>.pid`` and its output in ``<runtime>/<unit>.log`` (the journal's stand-in).

    python3 -I -S fakearm/systemctl.py --runtime DIR enable --now NAME.service     # the standard library only
"""

import os
import signal
import sys
import time

# shlex and subprocess (and the re they need) are imported by the verbs that start a unit: each call of the
# stand-in is a process of its own, and most only read or link a file.

UNIT_DIR = '/etc/systemd/system'
WANTS_DIR = f'{UNIT_DIR}/multi-user.target.wants'
STOP_TIMEOUT_IN_SECONDS = 10.0


def service_section(text):
    """``{key: value}`` of a unit's ``[Service]`` section."""
    section, found = None, {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('[') and line.endswith(']'):
            section = line[1:-1]
        elif section == 'Service' and '=' in line and not line.startswith('#'):
            key, value = line.split('=', 1)
            found[key] = value
    return found


def exec_argv(value):
    """ExecStart's words as systemd splits them (``$$`` and ``%%`` are its escapes of ``$`` and ``%``)."""
    import shlex
    return [word.replace('$$', '$').replace('%%', '%') for word in shlex.split(value)]


def environment_file(path):
    import shlex
    values = {}
    try:
        with open(path, encoding='utf-8') as handle:
            for line in handle:
                name, sep, value = line.strip().partition('=')
                if sep and not name.startswith('#'):
                    values[name] = shlex.split(value)[0] if value else ''
    except FileNotFoundError:
        pass
    return values


class Units:
    """The units of one VM; ``runtime`` is where it keeps pids and logs (outside the VM's wiped disk)."""

    def __init__(self, runtime):
        self.runtime = runtime
        os.makedirs(runtime, exist_ok=True)

    def pid(self, name):
        try:
            with open(self._file(name, 'pid'), encoding='utf-8') as handle:
                pid = int(handle.read().strip())
            return pid if _alive(pid) else None
        except (OSError, ValueError):
            return None

    def start(self, name):
        if self.pid(name):
            return 0
        with open(os.path.join(UNIT_DIR, name), encoding='utf-8') as handle:
            service = service_section(handle.read())
        env = dict(os.environ)
        env_file = service.get('EnvironmentFile', '')
        if env_file:
            env.update(environment_file(env_file.lstrip('-')))
        import subprocess
        with open(self._file(name, 'log'), 'ab') as log:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                exec_argv(service['ExecStart']), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        with open(self._file(name, 'pid'), 'w', encoding='utf-8') as handle:
            handle.write(str(proc.pid))
        return 0

    def stop(self, name):
        pid = self.pid(name)
        if pid is None:
            return 0
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_IN_SECONDS
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        os.unlink(self._file(name, 'pid'))
        return 0

    def stop_all(self):
        for entry in os.listdir(self.runtime):
            if entry.endswith('.pid'):
                self.stop(entry[:-len('.pid')])

    def enable(self, name):
        os.makedirs(WANTS_DIR, exist_ok=True)
        link = os.path.join(WANTS_DIR, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(UNIT_DIR, name), link)
        return 0

    def disable(self, name):
        link = os.path.join(WANTS_DIR, name)
        if os.path.lexists(link):
            os.unlink(link)
        return 0

    def is_active(self, name):
        print('active' if self.pid(name) else 'inactive')
        return 0 if self.pid(name) else 3

    def is_enabled(self, name):
        if os.path.lexists(os.path.join(WANTS_DIR, name)):
            print('enabled')
            return 0
        print('disabled' if os.path.exists(os.path.join(UNIT_DIR, name)) else 'not-found')
        return 1

    def _file(self, name, kind):
        return os.path.join(self.runtime, f'{name}.{kind}')


def _alive(pid):
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'     # a zombie has exited
    except FileNotFoundError:
        return False


def parse(argv):
    """``--runtime DIR VERB [--now] UNIT...``, the options anywhere -> (runtime, verb, now, units); by hand,
    since argparse would double what a call costs."""
    argv, runtime = list(argv), None
    if '--runtime' in argv:
        at = argv.index('--runtime')
        runtime = argv[at + 1] if at + 1 < len(argv) else None
        del argv[at:at + 2]
    now = '--now' in argv
    words = [arg for arg in argv if arg != '--now']
    if runtime is None or not words:
        raise SystemExit('usage: systemctl --runtime DIR VERB [--now] [UNIT...]')
    return runtime, words[0], now, words[1:]


def main(argv=None):
    runtime, verb, now, names = parse(sys.argv[1:] if argv is None else argv)
    units = Units(runtime)
    if verb == 'daemon-reload':
        return 0
    code = 0
    for name in names:
        if verb in ('enable', 'disable'):
            getattr(units, verb)(name)
            if now:
                (units.start if verb == 'enable' else units.stop)(name)
        elif verb == 'restart':
            units.stop(name)
            units.start(name)
        elif verb in ('start', 'stop', 'is-active', 'is-enabled'):
            code = max(code, getattr(units, verb.replace('-', '_'))(name))
        else:
            print(f'Unknown command verb {verb}.', file=sys.stderr)
            return 1
    return code


if __name__ == '__main__':
    sys.exit(main())
