# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The status file and the metrics file, written from each snapshot on a thread of their own.

A poll hands over its snapshot and goes on: it never waits on a disk. A snapshot that arrives while the
last one is still being written replaces any that waits, so the files are written at most once per
snapshot, and a slow disk only makes them skip one. Each file is replaced whole (``write_atomic``).
"""

import os
import threading

from . import metrics, status
from .atomicfile import write_atomic
from .log import get_logger

logger = get_logger(__name__)

# node_exporter runs as a user of its own: the metrics file must be readable by others.
METRICS_FILE_MODE = 0o644
METRICS_DIR_MODE = 0o755


class ReportWriter:
    """Writes the status file in ``state_dir`` and, when given, ``metrics_path`` from the newest snapshot
    ``publish`` got. ``write`` is ``write_atomic`` unless given (a test passes one that counts).

        writer = ReportWriter('/var/lib/scheduled-events', metrics_path='/var/lib/node_exporter/se.prom')
        writer.publish(stats.snapshot(events))
        writer.close()                        # what is waiting is written first
    """

    def __init__(self, state_dir, *, metrics_path=None, write=None):
        # Each file: (path, snapshot -> text, write_atomic's modes).
        self._files = [(os.path.join(state_dir, status.STATUS_FILE), status.render, {})]
        if metrics_path:
            self._files.append((metrics_path, metrics.render,
                                {'mode': METRICS_DIR_MODE, 'file_mode': METRICS_FILE_MODE}))
        self._write = write or write_atomic
        self._ready = threading.Condition()
        self._waiting = None
        self._closed = False
        self._failing = set()                   # paths whose last write failed (warned once)
        self._thread = threading.Thread(target=self._run, name='report-writer', daemon=True)
        self._thread.start()

    def publish(self, snapshot):
        """Have the files show ``snapshot``; returns at once."""
        with self._ready:
            self._waiting = snapshot
            self._ready.notify()

    def close(self, timeout=5.0):
        """Write what waits (waiting at most ``timeout`` for the disk), then stop."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout)

    def _run(self):
        while True:
            with self._ready:
                while self._waiting is None and not self._closed:
                    self._ready.wait()
                snapshot, self._waiting = self._waiting, None
            if snapshot is None:
                return
            for path, render, modes in self._files:
                self._put(path, render(snapshot).encode(), modes)

    def _put(self, path, data, modes):
        try:
            self._write(path, data, **modes)
        except OSError as ex:
            # The watcher goes on without its reports; one warning per failing stretch, not one per poll.
            (logger.info if path in self._failing else logger.warning)('Cannot write %s: %s', path, ex)
            self._failing.add(path)
            return
        self._failing.discard(path)
