# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""A simulated VM: a network namespace of its own in which its IMDS emulator listens on the real
address, 169.254.169.254:80, and in which Run Command scripts really run (``nsenter``). The emulator's
control API is also on a Unix socket, so the tests reach it from outside the namespace.

Its disk persists between Run Commands until a reimage wipes it: each script runs in a mount namespace
of its own in which ``/opt``, ``/var/lib``, ``/etc/default`` and ``/etc/systemd/system`` are the VM's own
folders, with the VM's ``python3`` (any interpreter, or none) and its systemd stand-in (``systemctl.py``)
first on PATH. Run Command's named parameters reach the script as environment variables."""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..azcli import EXTENSION_SRC
from ..netguard import SITE_DIR

IMDS_ADDRESS = '169.254.169.254'
# The folders of the VM's own disk, bound over the host's in each script's mount namespace.
DISK_FOLDERS = ('/opt', '/var/lib', '/etc/default', '/etc/systemd/system')
SCRIPT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__('localhost', timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class SimulatedVm:
    """``SimulatedVm('web_0', folder).start()``; ``run_script(text, timeout)`` runs a script inside it."""

    def __init__(self, name, folder, *, os_type='Linux', python=sys.executable):
        self.name = name
        self.os_type = os_type
        self.folder = Path(folder)
        self.socket_path = str(self.folder / f'{name}.sock')
        self.disk = self.folder / name / 'disk'
        self.bin = self.folder / name / 'bin'
        self.runtime = self.folder / name / 'run'
        self.python = python
        self._proc = None

    def _prepare_disk(self):
        for path in DISK_FOLDERS:
            (self.disk / path.lstrip('/')).mkdir(parents=True, exist_ok=True)
        self.bin.mkdir(parents=True, exist_ok=True)
        python3 = self.bin / 'python3'
        if python3.is_symlink():
            python3.unlink()
        if self.python:
            python3.symlink_to(self.python)
        systemctl = self.bin / 'systemctl'
        # The stand-in needs the standard library only: run as a file, it starts in milliseconds.
        systemctl.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S {Path(__file__).with_name("systemctl.py")} '
                             f'--runtime {self.runtime} "$@"\n')
        systemctl.chmod(0o755)

    def units(self):
        from .systemctl import Units
        return Units(str(self.runtime))

    def reimage(self):
        """A new OS disk: every unit stops and the VM's folders are empty again."""
        self.units().stop_all()
        shutil.rmtree(self.disk, ignore_errors=True)
        self._prepare_disk()

    def read_file(self, path):
        """A file of the VM's disk (an absolute path as the VM sees it), or None."""
        target = self.disk / path.lstrip('/')
        return target.read_bytes() if target.exists() else None

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self._prepare_disk()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([SITE_DIR, str(EXTENSION_SRC)]))
        setup = (f'ip link set lo up && ip addr add {IMDS_ADDRESS}/32 dev lo && exec {sys.executable} -m '
                 f'azext_scheduledevents.emulator --host {IMDS_ADDRESS} --port 80 --vm-name {self.name} '
                 f'--rate-limit 0 --control-socket {self.socket_path}')
        self._proc = subprocess.Popen(  # pylint: disable=consider-using-with
            ['unshare', '-n', 'sh', '-c', setup], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f'the emulator of {self.name} exited with {self._proc.returncode}')
            try:
                self.control('GET', '/_emulator/state')
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f'the emulator of {self.name} did not start')

    def stop(self):
        if self.runtime.exists():
            self.units().stop_all()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def control(self, method, path, body=None):
        """Call the emulator's control API; returns the decoded JSON answer."""
        conn = _UnixConnection(self.socket_path)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                         headers={'Content-Type': 'application/json'})
            response = conn.getresponse()
            data = json.loads(response.read() or b'null')
        finally:
            conn.close()
        if response.status >= 300:
            raise RuntimeError(f'{method} {path} on {self.name}: {response.status} {data}')
        return data

    def add_events(self, plans):
        return self.control('POST', '/_emulator/events', {'events': plans})['EventIds']

    def start_events(self, event_ids):
        """Start events here as the platform does when another VM they name approved them."""
        return self.control('POST', '/_emulator/start', {'EventIds': list(event_ids)})

    def document(self):
        return self.control('GET', '/_emulator/state')

    def requests(self):
        return self.control('GET', '/_emulator/requests')['requests']

    def run_script(self, script, timeout, parameters=None):
        """Run ``script`` with sh inside this VM's network namespace, on its disk, with ``parameters``
        (name -> value) in its environment -> (exit code, stdout, stderr)."""
        binds = ' && '.join(f'mount --bind {self.disk}{path} {path}' for path in DISK_FOLDERS)
        env = dict(parameters or {}, PATH=f'{self.bin}:{SCRIPT_PATH}', HOME='/root', LANG='C.UTF-8')
        try:
            done = subprocess.run(['nsenter', f'--net=/proc/{self._proc.pid}/ns/net', '--', 'unshare', '-m', 'sh',
                                   '-c', f'{binds} && exec sh -c "$0"', script],
                                  capture_output=True, timeout=timeout, check=False, cwd=self.folder,
                                  stdin=subprocess.DEVNULL, env=env)
        except subprocess.TimeoutExpired as ex:
            return None, ex.stdout or b'', ex.stderr or b''
        return done.returncode, done.stdout, done.stderr
