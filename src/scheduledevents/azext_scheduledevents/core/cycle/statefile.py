# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The cycle's ``--state-file``: the instances finished and each hook's attempts, rewritten whole
(``atomicfile``) at every change, so a cycle killed at any moment resumes where it was.

    {"scaleSet": ["rg", "web"], "action": "update", "finished": ["0", "1"],
     "attempts": {"2": {"before-script": 2}}}
"""

import json
import os
import threading

from ..atomicfile import write_atomic
from ..errors import PreflightError
from .readings import numeric


class CycleStateFile:
    """One cycle's record; with ``path`` None it is kept in memory only (attempts still count)."""

    def __init__(self, path, resource_group, vmss_name, action):
        self.path = path
        self._owner = [resource_group, vmss_name]
        self._action = str(action)
        self._finished, self._attempts = set(), {}
        self._lock = threading.Lock()

    def load(self):
        """Read what an earlier run of the same cycle recorded; PreflightError for another cycle's file."""
        if not self.path or not os.path.exists(self.path):
            return self
        try:
            with open(self.path, encoding='utf-8') as handle:
                state = json.load(handle)
        except (OSError, ValueError) as ex:
            raise PreflightError(f'state file {self.path} cannot be read: {ex}') from None
        if state.get('scaleSet') != self._owner or state.get('action') != self._action:
            raise PreflightError(f'state file {self.path} belongs to another cycle '
                                 f'({state.get("scaleSet")}, {state.get("action")})')
        self._finished = set(state.get('finished', []))
        self._attempts = {i: dict(kinds) for i, kinds in (state.get('attempts') or {}).items()}
        return self

    @property
    def finished(self):
        return set(self._finished)

    def record_finished(self, instance_id):
        with self._lock:
            self._finished.add(instance_id)
            self._write()

    def next_attempt(self, instance_id, kind):
        """The number of the run about to start (1, 2, ...), recorded before it starts."""
        with self._lock:
            kinds = self._attempts.setdefault(instance_id, {})
            kinds[str(kind)] = kinds.get(str(kind), 0) + 1
            self._write()
            return kinds[str(kind)]

    def _write(self):
        if self.path:
            write_atomic(self.path, json.dumps({
                'scaleSet': self._owner, 'action': self._action,
                'finished': sorted(self._finished, key=numeric), 'attempts': self._attempts}).encode())
