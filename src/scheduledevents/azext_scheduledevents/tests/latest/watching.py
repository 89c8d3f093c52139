# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Helpers for the watcher's tests and benchmark: recording handlers, and a watcher run in a thread."""

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from azext_scheduledevents.core import daemon
from azext_scheduledevents.core.approval import ApprovalPolicy
from azext_scheduledevents.core.config import WatchSettings
from azext_scheduledevents.core.handlers import CommandHandler

RECORDER = '''
import json, os, sys, time
started = time.time()
record = {"pid": os.getpid(), "argv": sys.argv[1:], "started": started,
          "env": {k: v for k, v in os.environ.items() if k.startswith("SCHEDULED_EVENT_")},
          "stdin": json.loads(sys.stdin.read() or "null")}
with open(os.environ["RECORDER_LOG"], "a") as log:
    log.write(json.dumps(dict(record, phase="start")) + "\\n")
time.sleep(float(os.environ.get("RECORDER_SLEEP", "0")))
with open(os.environ["RECORDER_LOG"], "a") as log:
    log.write(json.dumps({"pid": os.getpid(), "phase": "end", "ended": time.time(),
                          "id": record["env"].get("SCHEDULED_EVENT_ID"),
                          "transition": record["env"].get("SCHEDULED_EVENT_TRANSITION")}) + "\\n")
sys.exit(int(os.environ.get("RECORDER_EXIT", "0")))
'''


@dataclass
class Recorder:
    """A handler program that logs every run (its event, variables and timing) to a JSONL file."""

    script: Path
    log: Path

    @classmethod
    def create(cls, folder, name='recorder'):
        folder = Path(folder)
        script = folder / f'{name}.py'
        script.write_text(RECORDER)
        log = folder / f'{name}.jsonl'
        log.touch()
        return cls(script, log)

    def command(self, label, *, exit_code=0, sleep=0.0):
        """A handler command line: ``env`` sets the recorder's behaviour, ``label`` tells runs apart."""
        return (f'env RECORDER_LOG={self.log} RECORDER_EXIT={exit_code} RECORDER_SLEEP={sleep} '
                f'{sys.executable} {self.script} {label}')

    def handler(self, label, **kwargs):
        return CommandHandler.parse(self.command(label, **kwargs))

    def runs(self, phase='start'):
        text = self.log.read_text()
        # A handler may be writing its line at this moment: only lines that end with a newline are whole.
        lines = [json.loads(line) for line in text[:text.rfind('\n') + 1].splitlines() if line.strip()]
        return [line for line in lines if line['phase'] == phase]

    def labels(self):
        return [(run['argv'][0], run['env']['SCHEDULED_EVENT_TRANSITION'], run['env']['SCHEDULED_EVENT_ID'])
                for run in self.runs()]


class WatcherThread:
    """``daemon.run`` on a thread, the way ``az scheduled-events watch`` runs it, with lines kept in a list."""

    def __init__(self, endpoint, state_dir, *, commands=None, policy=None, sinks=None, coordination=None,
                 metrics_file=None, report_write=None, **settings):
        settings.setdefault('interval_in_seconds', 0.05)
        self.lines = []
        self.stop = threading.Event()
        self.result = None
        self._kwargs = dict(endpoint=endpoint, api_version='2020-07-01', state_dir=str(state_dir),
                            settings=WatchSettings(**settings), policy=policy or ApprovalPolicy(),
                            commands=commands or {}, sink_options=sinks or daemon.SinkOptions(),
                            emit=self.lines.append, stop=self.stop, coordination_container=coordination,
                            metrics_file=metrics_file and str(metrics_file), report_write=report_write)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.result = daemon.run(**self._kwargs)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), 'the watcher did not stop'

    def transitions(self, event_id=None):
        return [line['transition'] for line in list(self.lines) if event_id in (None, line['EventId'])]

    def wait_for(self, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f'timed out; lines so far: {self.lines}')


def read_state(state_dir):
    """The state directory as one dict: ``{'vm_name': ..., 'events': {EventId: record}}``."""
    with open(os.path.join(state_dir, 'meta.json'), encoding='utf-8') as handle:
        state = {'vm_name': json.load(handle)['vm_name'], 'events': {}}
    for path in Path(state_dir, 'events').glob('[!.]*.json'):
        record = json.loads(path.read_text())
        state['events'][record['event_id']] = record
    return state
