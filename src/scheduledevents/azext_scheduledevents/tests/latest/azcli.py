# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The real az binary with this extension added from a freshly built wheel, isolated and offline-safe.

Used by the end-to-end tests and by the benchmarks, so both drive az the same way.
"""

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from . import netguard

EXTENSION_SRC = Path(__file__).resolve().parents[3]
AZ = Path(sys.executable).with_name('az')


class AzResult:
    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    @property
    def json(self):
        return json.loads(self.stdout)

    def __repr__(self):
        return f'<az exit {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}>'


class AzCli:
    """The real az binary, with the extension installed from its wheel into a throwaway directory."""

    def __init__(self, root, env):
        self.root = root
        self.env = env

    def environment(self, **overrides):
        env = dict(self.env)
        env.update({k: v for k, v in overrides.items() if v is not None})
        for name in [k for k, v in overrides.items() if v is None]:
            env.pop(name, None)
        return env

    def run(self, *args, timeout=120, cwd=None, **env):
        completed = subprocess.run([str(AZ), *args], env=self.environment(**env), capture_output=True, text=True,
                                   timeout=timeout, check=False, stdin=subprocess.DEVNULL, cwd=cwd)
        return AzResult(completed)

    def popen(self, *args, output=subprocess.PIPE, cwd=None, **env):
        """Start az; ``output`` is where its stdout and stderr go (a reader must keep up with a PIPE)."""
        return subprocess.Popen([str(AZ), *args], env=self.environment(**env), stdout=output, stderr=output,
                                text=True, stdin=subprocess.DEVNULL, cwd=cwd)

    def fresh_config_dir(self, name):
        """A copy of the logged-out config directory, for a test that changes az config."""
        target = self.root / name
        shutil.copytree(self.env['AZURE_CONFIG_DIR'], target)
        return str(target)


def quiet_az_environment(config_dir, extension_dir):
    """The environment every az child runs in: isolated, offline-safe, quiet, and network-guarded."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith('_PROXY') and not k.startswith(('AZURE_', 'IDENTITY_', 'MSI_'))}
    env.update({
        'AZURE_CONFIG_DIR': str(config_dir),
        'AZURE_EXTENSION_DIR': str(extension_dir),
        'AZURE_CORE_COLLECT_TELEMETRY': 'false',
        'AZURE_CORE_SURVEY_MESSAGE': 'false',
        'AZURE_CORE_NO_COLOR': 'true',
        'AZURE_EXTENSION_USE_DYNAMIC_INSTALL': 'no',
        'PYTHONPATH': netguard.SITE_DIR,
        netguard.HOST_NETNS_ENV: os.environ[netguard.HOST_NETNS_ENV],
    })
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / 'config').write_text('[core]\ncollect_telemetry = false\nsurvey_message = false\noutput = json\n'
                                       '[auto-upgrade]\nenable = no\n')
    version = subprocess.run([str(AZ), 'version', '--query', '"azure-cli"', '-o', 'tsv'], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
    # Pre-seeded so that az does not probe a blob host for newer versions.
    (config_dir / 'versionCheck.json').write_text(json.dumps({
        'versions': {'azure-cli': {'local': version}, 'core': {'local': version}, 'telemetry': {'local': '1.1.0'}},
        'update_time': datetime.now().strftime('%Y-%m-%d %H:%M:%S.%f')}))
    return env


def build_and_add_extension(root):
    """Build the wheel from this source tree into ``root/dist`` and add it to an az isolated under ``root``."""
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--disable-pip-version-check', '--no-deps',
                    '--no-build-isolation', '-w', str(root / 'dist'), str(EXTENSION_SRC)], check=True,
                   capture_output=True)
    cli = AzCli(root, quiet_az_environment(root / 'config', root / 'extensions'))
    wheel = next((root / 'dist').glob('scheduledevents-*.whl'))
    added = cli.run('extension', 'add', '--source', str(wheel), '--yes')
    if added.returncode != 0:
        raise RuntimeError(f'az extension add failed: {added}')
    return cli
