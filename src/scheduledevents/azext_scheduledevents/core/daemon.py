# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``watch`` as a process: the state lock, signals, output lines, then the watcher until told to stop.

SIGTERM and SIGINT stop polling; running handlers finish (or reach their deadline), the state is saved,
and the process exits 0.
"""

from __future__ import annotations

import functools
import json
import queue
import signal
import sys
import threading
from dataclasses import dataclass

from .config import FROZEN_BY_KEYWORD
from .coordination import Coordinator
from .handlers import BlobSink, EventGridSink, SyslogSink, WebhookSink, redact_url
from .imds import ImdsClient
from .log import get_logger
from .state import StateStore
from .lines import format_text
from .vocabulary import LineStyle
from .watch import Watcher, wait_for_vm_name

logger = get_logger(__name__)


class LinePrinter:
    """Writes lines to ``stream`` (stdout) on a thread of its own: JSON lines, or text.

    A reader that falls behind (a full pipe) must never hold up polling or handlers; lines wait in memory.
    """

    def __init__(self, style, stream=None):
        self._style = style
        self._stream = stream
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name='line-printer', daemon=True)
        self._thread.start()

    def __call__(self, line):
        self._queue.put(line)

    def close(self, timeout=5.0):
        """Write what is queued (waiting at most ``timeout``), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _write(self):
        while (line := self._queue.get()) is not None:
            out = self._stream or sys.stdout
            try:
                out.write((json.dumps(line) if self._style == LineStyle.JSON else format_text(line)) + '\n')
                out.flush()
            except (OSError, ValueError) as ex:
                # stdout went away (a closed pipe): the lines are lost, the watcher goes on.
                logger.warning('Cannot write to stdout: %s', ex)


@dataclass(**FROZEN_BY_KEYWORD)
class SinkOptions:
    """Where transitions are sent besides stdout. The Event Grid key is never shown in a repr or log."""

    webhooks: tuple = ()
    event_grid_topic: str | None = None
    event_grid_key: str | None = None
    syslog_socket: str | None = None
    blob_container: object = None        # a zero-argument factory of a blob.BlobContainer

    def __repr__(self):
        return (f'SinkOptions(webhooks={[redact_url(u) for u in self.webhooks]}, '
                f'event_grid_topic={self.event_grid_topic and redact_url(self.event_grid_topic)!r}, '
                f'syslog_socket={self.syslog_socket!r}, blob={self.blob_container is not None})')

    def build(self, vm_name):
        sinks = [WebhookSink(url, source=f'/scheduledevents/{vm_name}') for url in self.webhooks]
        if self.event_grid_topic:
            sinks.append(EventGridSink(self.event_grid_topic, key=self.event_grid_key, vm_name=vm_name))
        if self.blob_container is not None:
            sinks.append(BlobSink(self.blob_container, vm_name=vm_name))
        if self.syslog_socket:
            sinks.append(SyslogSink(self.syslog_socket))
        for sink in sinks:
            logger.info('Notifying %s%s', sink.step, f' at {redact_url(sink.url)}' if hasattr(sink, 'url') else '')
        return sinks


def run_watch(options, *, endpoint, state_dir, emit, stop=None):
    """Run ``watch`` as a ``WatchOptions`` describes it: what ``az scheduled-events watch`` and the agent
    both call. ``state_dir`` is used when the options name none."""
    return run(endpoint=endpoint, api_version=options.api_version, state_dir=options.state_dir or state_dir,
               settings=options.settings(), policy=options.policy(), commands=options.commands(),
               sink_options=options.sink_options(imds_endpoint=endpoint), emit=emit, stop=stop,
               coordination_container=options.coordination_container(imds_endpoint=endpoint),
               metrics_file=options.metrics_file)


def run(*, endpoint, api_version, state_dir, settings, policy, commands, sink_options, emit, stop=None,
        coordination_container=None, metrics_file=None, report_write=None):
    """Run the watcher until SIGTERM/SIGINT (or ``stop``), or for one poll with ``settings.once``.
    ``coordination_container`` makes the ``blob.BlobContainer`` of ``--approver all``. After each poll the
    status file in ``state_dir`` and the Prometheus ``metrics_file`` (if any) are rewritten with
    ``report_write`` (``write_atomic``; a test passes one that counts).

    Returns False when, in ``once`` mode, IMDS did not answer. Raises ``StateLockedError`` when another
    watcher uses ``state_dir``.
    """
    from .reportwriter import ReportWriter
    from .watchstats import WatchStats
    if stop is None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    client_factory = functools.partial(ImdsClient, endpoint, api_version=api_version)
    store = StateStore(state_dir)
    store.lock()
    try:
        with client_factory(retry=settings.poll_retry) as client:
            vm_name = wait_for_vm_name(client, stop, interval_in_seconds=settings.interval_in_seconds,
                                       once=settings.once)
            if vm_name is None:
                return True
            store.load(vm_name=vm_name)
            logger.info('Watching Scheduled Events at %s for VM %s every %g s; state in %s', endpoint, vm_name,
                        settings.interval_in_seconds, store.directory)
            coordinator = None if coordination_container is None else Coordinator(
                coordination_container, vm_name=vm_name, interval_in_seconds=settings.interval_in_seconds)
            reports = ReportWriter(store.directory, metrics_path=metrics_file, write=report_write)
            watcher = Watcher(client, store, vm_name=vm_name, client_factory=client_factory, settings=settings,
                              policy=policy, commands=commands, sinks=sink_options.build(vm_name), emit=emit,
                              coordinator=coordinator, stats=WatchStats(), publish=reports.publish)
            try:
                return watcher.run(stop)
            finally:
                reports.close()
    finally:
        store.unlock()
