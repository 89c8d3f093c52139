# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""What the watcher does with a transition: run commands, and notify webhooks, Event Grid and syslog.

Commands run without a shell: the event reaches them as JSON on stdin and as SCHEDULED_EVENT_* variables,
never on a command line. Each has a deadline; past it the command's whole process group is stopped.
Notifications carry the transition line; secrets (URL queries, user info, the Event Grid key) never
appear in logs.

    CommandHandler.parse('/usr/local/bin/drain --grace 20').run(line, timeout=25)
    WebhookSink('https://hooks.example/se', source='/scheduledevents/web_0').notify(line)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from .config import (HANDLER_KILL_GRACE_IN_SECONDS, HANDLER_OUTPUT_TAIL_IN_BYTES, SYSLOG_SOCKET, WEBHOOK_RETRIES,
                     WEBHOOK_TIMEOUT_IN_SECONDS)
from .errors import HandlerConfigError
from .httppost import JsonPoster, redact_url
from .log import get_logger
from .vocabulary import StepStatus

logger = get_logger(__name__)

CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8'
EVENT_TYPE_PREFIX = 'Microsoft.Compute.ScheduledEvents.'


@dataclass(frozen=True)
class HandlerResult:
    """How one command ended: ``status`` is ok, failed or timeout."""

    status: StepStatus
    exit_code: int | None
    seconds: float
    detail: str


def event_environment(line):
    """The SCHEDULED_EVENT_* variables for a transition line (with the run's ``attempt``: 2 and up after a
    crash cut an earlier run short)."""
    def text(value):
        return '' if value is None else str(value)
    return {
        'SCHEDULED_EVENT_TRANSITION': text(line['transition']),
        'SCHEDULED_EVENT_ATTEMPT': text(line.get('attempt', 1)),
        'SCHEDULED_EVENT_ID': line['EventId'],
        'SCHEDULED_EVENT_TYPE': text(line.get('EventType')),
        'SCHEDULED_EVENT_STATUS': text(line.get('EventStatus')),
        'SCHEDULED_EVENT_NOT_BEFORE': text(line.get('NotBefore')),
        'SCHEDULED_EVENT_RESOURCES': ','.join(line.get('Resources') or []),
        'SCHEDULED_EVENT_SOURCE': text(line.get('EventSource')),
        'SCHEDULED_EVENT_DURATION': text(line.get('DurationInSeconds')),
        'SCHEDULED_EVENT_DEADLINE_SECONDS': text(line.get('SecondsUntilNotBefore')),
    }


@dataclass(frozen=True)
class CommandHandler:
    """A command run for a transition: ``argv`` as split from the option's text, no shell."""

    argv: tuple

    @classmethod
    def parse(cls, text):
        try:
            argv = tuple(shlex.split(text))
        except ValueError as ex:
            raise HandlerConfigError(f'handler {text!r} cannot be split into arguments: {ex}') from None
        if not argv:
            raise HandlerConfigError('a handler command is empty')
        if shutil.which(argv[0]) is None:
            raise HandlerConfigError(f'handler program {argv[0]!r} is not found or not executable')
        return cls(argv)

    @property
    def name(self):
        return os.path.basename(self.argv[0])

    def resolved(self):
        """``argv`` with the program as the absolute path PATH finds now."""
        return (os.path.abspath(shutil.which(self.argv[0])),) + self.argv[1:]

    def run(self, line, *, timeout, clock=time.monotonic):
        """Run with the transition ``line`` on stdin; stop the process group when ``timeout`` passes."""
        started = clock()
        env = dict(os.environ, **event_environment(line))
        try:
            # A session of its own: a Ctrl-C meant for the watcher must not cut a drain short. A crashed
            # service's handlers die with it all the same: systemd stops the unit's whole cgroup.
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        except OSError as ex:
            return HandlerResult(StepStatus.FAILED, None, 0.0, f'could not start: {ex.strerror or ex}')
        try:
            output, _ = proc.communicate(json.dumps(line).encode(), timeout=max(timeout, 0.001))
            # Killed by a signal it was not sent by us (the watcher's own stop, the OOM killer): it did not
            # finish, so the step is cut off and runs again, as after a crash.
            status = (StepStatus.OK if proc.returncode == 0 else
                      StepStatus.INTERRUPTED if proc.returncode < 0 else StepStatus.FAILED)
        except subprocess.TimeoutExpired:
            output = self._stop(proc)
            status = StepStatus.TIMEOUT
        seconds = clock() - started
        tail = (output or b'')[-HANDLER_OUTPUT_TAIL_IN_BYTES:].decode('utf-8', 'replace').rstrip()
        if tail:
            logger.info('Handler %s output:\n%s', self.name, tail)
        detail = {StepStatus.OK: 'exited 0', StepStatus.FAILED: f'exited {proc.returncode}',
                  StepStatus.INTERRUPTED: f'was killed by signal {-(proc.returncode or 0)}',
                  StepStatus.TIMEOUT: f'did not finish within {timeout:.1f} s'}[status]
        return HandlerResult(status, proc.returncode, seconds, detail)

    @staticmethod
    def _stop(proc):
        for signum, grace in ((signal.SIGTERM, HANDLER_KILL_GRACE_IN_SECONDS), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                pass
            try:
                output, _ = proc.communicate(timeout=grace)
                return output
            except subprocess.TimeoutExpired:
                continue
        return b''


class WebhookSink:  # pylint: disable=too-few-public-methods
    """POSTs each transition as a CloudEvents 1.0 structured-mode event, with timeout, retries and backoff
    (``httppost.JsonPoster``, which ``poster_options`` reach: ``sleep=``, ``ssl_context=`` ...)."""

    step = 'webhook'

    def __init__(self, url, *, source, timeout=WEBHOOK_TIMEOUT_IN_SECONDS, retries=WEBHOOK_RETRIES,
                 **poster_options):
        self.url = url
        self.source = source
        self._poster = JsonPoster(url, timeout_in_seconds=timeout, retries=retries, **poster_options)

    def notify(self, line):
        body = {
            'specversion': '1.0',
            'id': line['key'],
            'source': self.source,
            'type': EVENT_TYPE_PREFIX + line['transition'].capitalize(),
            'subject': line['EventId'],
            'time': line['time'],
            'datacontenttype': 'application/json',
            'data': line,
        }
        return self._poster.post(body, {'Content-Type': CLOUDEVENTS_CONTENT_TYPE})


class EventGridSink:  # pylint: disable=too-few-public-methods
    """Publishes each transition to a custom Event Grid topic (Event Grid schema, ``aeg-sas-key``)."""

    step = 'event-grid'

    def __init__(self, url, *, key, vm_name, timeout=WEBHOOK_TIMEOUT_IN_SECONDS, retries=WEBHOOK_RETRIES,
                 **poster_options):
        self.url = url
        self.vm_name = vm_name
        self._key = key
        self._poster = JsonPoster(url, timeout_in_seconds=timeout, retries=retries, **poster_options)

    def __repr__(self):
        return f'EventGridSink({redact_url(self.url)!r}, key=********)'

    def notify(self, line):
        body = [{
            'id': line['key'],
            'subject': f'{self.vm_name}/{line["EventId"]}',
            'eventType': EVENT_TYPE_PREFIX + line['transition'].capitalize(),
            'eventTime': line['time'],
            'data': line,
            'dataVersion': '1.0',
        }]
        return self._poster.post(body, {'aeg-sas-key': self._key, 'Content-Type': 'application/json'})


class BlobSink:  # pylint: disable=too-few-public-methods
    """Writes each transition as one JSON blob named by VM, EventId and transition, so that a step run
    again after a crash overwrites its blob rather than adding one. ``container_factory`` makes a
    ``blob.BlobContainer`` (which retries, like the webhook)."""

    step = 'blob'

    def __init__(self, container_factory, *, vm_name):
        self._container_factory = container_factory
        self.vm_name = vm_name

    def notify(self, line):
        from .errors import BlobError
        name = f'{self.vm_name}/{line["key"]}.json'
        try:
            with self._container_factory() as container:
                container.put(name, json.dumps(line, separators=(',', ':')).encode())
        except BlobError as ex:
            logger.warning('Notification to Blob Storage failed: %s', ex)
            return False
        return True


class SyslogSink:  # pylint: disable=too-few-public-methods
    """Writes each transition to the local syslog socket (the journal reads it too)."""

    step = 'syslog'

    def __init__(self, address=SYSLOG_SOCKET):
        import logging.handlers     # syslog is opt-in: a watcher without it need not load this (and pickle)
        self._logger = logging.getLogger('scheduled-events-syslog')
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._handler = logging.handlers.SysLogHandler(address=address,
                                                       facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        self._handler.setFormatter(logging.Formatter('scheduled-events: %(message)s'))
        self._logger.addHandler(self._handler)

    def notify(self, line):
        self._logger.info(json.dumps(line, separators=(',', ':')))
        return True
