# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""A systemd service unit for ``watch``: a long-running service restarted on any exit.

A one-minute timer would miss a 30-second Preempt notice; a service polling every second does not.
``KillMode=mixed`` sends SIGTERM to the watcher alone, so a running handler can finish before the
watcher saves its state and exits; stragglers get SIGKILL when ``TimeoutStopSec`` runs out.
"""

import os


def az_environment(state_dir):
    """What az needs under systemd: a config folder of its own in ``state_dir``, and no telemetry or notices."""
    return (('AZURE_CONFIG_DIR', f'{state_dir}/azure'), ('AZURE_CORE_COLLECT_TELEMETRY', 'false'),
            ('AZURE_CORE_ONLY_SHOW_ERRORS', 'true'))


def systemd_quote(arg):
    """Quote one ExecStart argument as systemd parses it (``%`` and ``$`` are special to systemd too)."""
    escaped = arg.replace('\\', '\\\\').replace('"', '\\"').replace('%', '%%').replace('$', '$$')
    if escaped and all(c not in escaped for c in ' \t\'";\n'):
        return escaped
    return f'"{escaped}"'


def render_unit(argv, *, stop_timeout_in_seconds, description, state_dir, environment, environment_file):
    """The unit text for the command ``argv`` (an absolute program path first), its state in ``state_dir``
    and ``environment`` (``(name, value)`` pairs) set; secrets such as an Event Grid key go in ``environment_file``,
    never on the command line."""
    if not argv or not argv[0].startswith('/'):
        raise ValueError('the unit needs the absolute path of the program')
    exec_start = ' '.join(systemd_quote(arg) for arg in argv)
    settings = ''.join(f'Environment={name}={value}\n' for name, value in environment)
    return f"""[Unit]
Description=Azure Scheduled Events watcher ({description})
Documentation=https://github.com/Azure/azure-cli-extensions/tree/main/src/scheduledevents
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
Restart=always
RestartSec=2
StateDirectory={os.path.basename(state_dir)}
StateDirectoryMode=0700
{settings}EnvironmentFile=-{environment_file}
KillMode=mixed
TimeoutStopSec={int(stop_timeout_in_seconds)}

[Install]
WantedBy=multi-user.target
"""
