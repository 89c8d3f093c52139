# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The core and the emulator stand alone, and the on-VM path stays light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import python_child_env

PACKAGE = Path(__file__).resolve().parents[2]


def imported_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


@pytest.mark.parametrize('folder', ['core', 'emulator', 'agent'])
def test_core_emulator_and_agent_import_nothing_from_azure_cli(folder):
    offenders = [f'{path.name}: {module}' for path in sorted((PACKAGE / folder).rglob('*.py'))
                 for module in imported_modules(path) if module == 'azure.cli' or module.startswith('azure.cli.')]
    assert offenders == []


def test_on_vm_commands_do_not_import_azure_mgmt():
    code = ('import sys, azext_scheduledevents, azext_scheduledevents.commands, azext_scheduledevents._params, '
            'azext_scheduledevents.custom, azext_scheduledevents.core.approval; '
            'print(sorted(m for m in sys.modules if m.startswith(("azure.mgmt", "requests", "urllib3"))))')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                          env=python_child_env())
    assert done.stdout.strip() == '[]'
