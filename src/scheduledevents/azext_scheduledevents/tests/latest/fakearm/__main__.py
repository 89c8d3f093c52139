# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``python -m azext_scheduledevents.tests.latest.fakearm``: the tests' fake Azure Resource Manager as a
process of its own, for the demo and for trying ``az scheduled-events cycle`` by hand. Not in the wheel:
run it from the source tree (PYTHONPATH=src/scheduledevents) with the venv's Python, whose az it logs in.

Its scale sets have no simulated VMs behind them (no root, no network namespace): instances move through
real states over time, so ``cycle`` works, while Run Command is refused. It serves HTTPS on loopback with
a throwaway CA, prints its URL, its CA and the environment az needs, and stays up until SIGINT or SIGTERM.

    python -m azext_scheduledevents.tests.latest.fakearm --scale-set rg/web=3 --reimage 4 \\
        --az-config-dir /tmp/fake-az --env-file /tmp/fake-az.env
    (. /tmp/fake-az.env && az scheduled-events cycle -g rg -n web --dry-run)
"""

import argparse
import dataclasses
import os
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .. import netguard
from ..azcli import AzCli, quiet_az_environment
from .lifecycle import Timings
from .server import FakeArm, az_login, login_environment

PROG = 'python -m azext_scheduledevents.tests.latest.fakearm'
DESCRIPTION = ("The tests' fake Azure Resource Manager as a process: scale sets without VMs behind them on "
               "https://127.0.0.1, its CA, and the environment the real az needs; up until SIGINT or SIGTERM.")


def scale_set_spec(text):
    """``RG/NAME=COUNT`` -> (rg, name, count)."""
    try:
        where, count = text.split('=')
        group, name = where.split('/')
        count = int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not RG/NAME=COUNT') from None
    if not group or not name or count < 1:
        raise argparse.ArgumentTypeError(f'{text!r}: a group, a name and at least one instance are needed')
    return group, name, count


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument('--scale-set', type=scale_set_spec, action='append', metavar='RG/NAME=COUNT',
                        help='a Uniform scale set of COUNT instances named NAME_<id>; repeat for several '
                             '(default rg/web=3)')
    parser.add_argument('--no-health-extension', action='store_true',
                        help='scale sets without the Application Health extension (no HealthState)')
    parser.add_argument('--port', type=int, default=0, help='port on 127.0.0.1 (default 0: any free)')
    parser.add_argument('--folder', type=Path, metavar='DIR',
                        help='where the CA and certificates go (default: a temporary directory, removed on exit)')
    parser.add_argument('--az-config-dir', type=Path, metavar='DIR',
                        help='prepare this AZURE_CONFIG_DIR (telemetry off, version check pre-seeded) and log the '
                             "venv's az in to the fake with managed identity")
    parser.add_argument('--az-extension-dir', type=Path, metavar='DIR',
                        help='AZURE_EXTENSION_DIR for that az (default: $AZURE_EXTENSION_DIR)')
    parser.add_argument('--env-file', type=Path, metavar='FILE',
                        help='once ready, write the environment az needs here as export/unset lines to source')
    for timing in dataclasses.fields(Timings):
        parser.add_argument('--' + timing.name.replace('_', '-'), type=float, default=timing.default,
                            metavar='SECONDS', help=f'simulated {timing.name.replace("_", " ")} in seconds '
                                                    f'(default {timing.default:g})')
    args = parser.parse_args(argv)
    if args.az_config_dir and not (args.az_extension_dir or os.environ.get('AZURE_EXTENSION_DIR')):
        parser.error('--az-config-dir needs --az-extension-dir or AZURE_EXTENSION_DIR (where the extension is)')
    if args.az_config_dir and args.az_config_dir.exists() and any(args.az_config_dir.iterdir()):
        # Never someone's real ~/.azure: the fake's cloud and login go into a directory of their own.
        parser.error(f'--az-config-dir {args.az_config_dir} is not empty: give a new or empty directory')
    return args


def shell_lines(env, base):
    """``env`` as the lines that turn the environment ``base`` into it; az's own settings (AZURE_*) in full."""
    lines = [f'unset {name}' for name in sorted(base) if name not in env]
    return lines + [f'export {name}={shlex.quote(value)}' for name, value in sorted(env.items())
                    if base.get(name) != value or name.startswith('AZURE_')]


def environment_for_az(arm, args):
    """The environment the real az needs for this fake; with --az-config-dir, az is logged in already."""
    if not args.az_config_dir:
        return dict(os.environ, **login_environment(arm))
    extension_dir = args.az_extension_dir or Path(os.environ['AZURE_EXTENSION_DIR'])
    az = AzCli(args.az_config_dir, quiet_az_environment(args.az_config_dir.resolve(), extension_dir.resolve()))
    return dict(az.env, **az_login(az, arm))


def serve(args, folder):
    timings = Timings(**{t.name: getattr(args, t.name) for t in dataclasses.fields(Timings)})
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with FakeArm(folder, timings=timings, port=args.port) as arm:
        specs = args.scale_set or [('rg', 'web', 3)]
        for group, name, count in specs:
            arm.add_scale_set(group, name, count=count, health_extension=not args.no_health_extension,
                              simulate_vms=False)
        scale_sets = ', '.join(f'{group}/{name} ({count} instance{"s" if count > 1 else ""})'
                               for group, name, count in specs)
        seconds = ', '.join(f'{t.name.replace("_", " ")} {getattr(timings, t.name):g} s'
                            for t in dataclasses.fields(Timings))
        print(f'Fake ARM listening on {arm.url}: scale sets {scale_sets}; {seconds}', flush=True)
        print(f'CA: {arm.certs.ca}', flush=True)
        lines = shell_lines(environment_for_az(arm, args), dict(os.environ))
        if args.az_config_dir:
            print(f'az is logged in to it with managed identity (AZURE_CONFIG_DIR={args.az_config_dir}). '
                  'Keep this environment for every az call:', flush=True)
        else:
            print(f'With this environment and a fresh AZURE_CONFIG_DIR (or use --az-config-dir, which also turns '
                  f'telemetry and the version check off), log az in: az cloud register -n FakeAzure '
                  f'--endpoint-resource-manager {arm.url}/ && az cloud set -n FakeAzure && az login --identity',
                  flush=True)
        print('\n'.join(f'  {line}' for line in lines), flush=True)
        if args.env_file:
            partial = args.env_file.with_name(args.env_file.name + '.partial')
            partial.write_text('\n'.join(lines) + '\n')
            partial.replace(args.env_file)      # whole or not at all: a reader may be waiting for it
        print('Ready; SIGINT or SIGTERM stops it.', flush=True)
        while not stopping.wait(0.5):
            pass
    return 0


def main(argv=None):
    args = parse_args(argv)
    netguard.install()          # the fake and every az it starts stay on loopback
    if args.folder:
        return serve(args, args.folder)
    with tempfile.TemporaryDirectory(prefix='fakearm-') as folder:
        return serve(args, Path(folder))


if __name__ == '__main__':
    sys.exit(main())
