# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The agent as one zipapp, made from this package's own sources: the modules ``agent/main.py`` imports,
found by reading their imports (those inside functions too), and nothing else.

The package's own ``__init__`` (the az command loader, which imports ``azure.cli``) is replaced by a
docstring. The zip is reproducible: sorted entries, fixed times and permissions, so one version's agent
is the same bytes wherever and whenever it is built.

    write_zipapp('/tmp/scheduled-events-agent.pyz')       # then: python3 /tmp/scheduled-events-agent.pyz list
"""

import ast
import io
import os
import zipfile

PACKAGE = 'azext_scheduledevents'
ENTRY_MODULE = f'{PACKAGE}.agent.main'
SHEBANG = b'#!/usr/bin/env python3\n'
MAIN = f'''"""The agent's entry point, written by {PACKAGE}/agent/build.py."""
import sys

from {ENTRY_MODULE} import main

sys.exit(main())
'''.encode()
PACKAGE_INIT = b'"""Azure Scheduled Events: the standalone agent\'s copy of the package (no az command loader)."""\n'
# Zip's epoch, and the permissions of a plain file: the same bytes whatever the clock or umask says.
ENTRY_TIME = (1980, 1, 1, 0, 0, 0)
ENTRY_ATTRIBUTES = 0o100644 << 16
_UNIX = 3
_SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_zipapp():
    """The agent's zipapp, as bytes.

        data = build_zipapp()          # starts with b'#!/usr/bin/env python3'
    """
    entries = {f'{PACKAGE}/__init__.py': PACKAGE_INIT, '__main__.py': MAIN}
    for name in carried_modules():
        path = _source_path(name)
        if path != os.path.join(_SOURCE_DIR, '__init__.py'):
            with open(path, 'rb') as handle:
                entries[os.path.relpath(path, os.path.dirname(_SOURCE_DIR)).replace(os.sep, '/')] = handle.read()
    buffer = io.BytesIO()
    buffer.write(SHEBANG)
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ENTRY_TIME)
            info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, _UNIX, ENTRY_ATTRIBUTES
            archive.writestr(info, entries[name], compresslevel=9)
    return buffer.getvalue()


def write_zipapp(path):
    """Write the agent to ``path`` (atomically, executable) and return ``path``.

        write_zipapp('dist/scheduled-events-agent.pyz')
    """
    from ..core.atomicfile import write_atomic
    write_atomic(path, build_zipapp(), mode=0o755, file_mode=0o755)
    return path


def carried_modules():
    """The dotted names of every module of this package that ``agent.main`` imports, directly or through
    others, with the packages that hold them: sorted.

        carried_modules()      # ['azext_scheduledevents', 'azext_scheduledevents._format', ...]
    """
    found, pending = set(), [ENTRY_MODULE]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        parts = name.split('.')
        pending.extend('.'.join(parts[:i]) for i in range(1, len(parts)))
        if name != PACKAGE:
            pending.extend(_imports(name))
    return sorted(found)


def _imports(name):
    """This package's modules that module ``name`` imports anywhere in its body."""
    path = _source_path(name)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    with open(path, 'rb') as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            # ``from .core import daemon`` names a module; ``from .core.errors import X`` a class.
            targets = [base] + [f'{base}.{alias.name}' for alias in node.names
                                if _is_module(f'{base}.{alias.name}')]
        else:
            continue
        yield from (target for target in targets if target == PACKAGE or target.startswith(PACKAGE + '.'))


def _is_module(name):
    return name.startswith(PACKAGE + '.') and os.path.exists(_source_path(name))


def _source_path(name):
    relative = os.path.join(_SOURCE_DIR, *name.split('.')[1:])
    package_init = os.path.join(relative, '__init__.py')
    return package_init if os.path.isdir(relative) else relative + '.py'
