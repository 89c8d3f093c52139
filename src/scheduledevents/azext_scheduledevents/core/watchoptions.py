# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``watch``'s options, described once: each field of ``WatchOptions`` carries its flag, help and kind.

From that one description ``_params.py`` registers the az arguments, the standalone agent builds its
parser, ``WatchOptions`` builds the watcher's settings, policy, commands and sinks, and ``to_argv()``
renders the options back as a command line (for a systemd unit, or the agent's unit).

    options = WatchOptions(on_scheduled=('drain --grace 20',), approve=ApproveMode.AFTER_HANDLERS)
    options.to_argv()        # ['--on-scheduled', 'drain --grace 20', '--approve', 'after-handlers']
"""

import os
from dataclasses import dataclass, field, fields, replace
from typing import Optional, Tuple
from urllib.parse import urlsplit

from .approval import ApprovalPolicy
from .config import (DEADLINE_MARGIN_IN_SECONDS, EVENT_GRID_KEY_ENV, HANDLER_TIMEOUT_IN_SECONDS, SYSLOG_SOCKET,
                     WATCH_INTERVAL_IN_SECONDS, WatchSettings)
from .errors import HandlerConfigError, InvalidSettingError
from .imds import DEFAULT_API_VERSION, DEFAULT_ENDPOINT
from .log import get_logger
from .vocabulary import ApproveMode, Approver, EventType, TransitionKind

logger = get_logger(__name__)

# How an option takes its value on a command line.
FLAG, VALUE, LIST, REPEAT = 'flag', 'value', 'list', 'repeat'     # --x | --x V | --x V1 V2 | --x V1 --x V2


def _option(flag, help_text, *, default=None, kind=VALUE, type_=str, choices=None, aliases=(), render=True):
    """A field of ``WatchOptions`` with its command-line description in the metadata."""
    metadata = {'flag': flag, 'help': help_text, 'kind': kind, 'type': type_, 'choices': choices,
                'aliases': aliases, 'render': render}
    # Called from the class body, as dataclasses wants; pylint cannot see through the helper.
    return field(default=default, metadata=metadata)  # pylint: disable=invalid-field-call


@dataclass(frozen=True)
class OptionSpec:
    """One option as a parser needs it: destination, flags, help, kind, value type, choices, default."""

    dest: str
    flags: Tuple[str, ...]
    help: str
    kind: str
    type: type
    choices: Optional[type]
    default: object


@dataclass(frozen=True)
class WatchOptions:  # pylint: disable=too-many-instance-attributes
    """Everything ``watch`` is told on its command line. Checked when made; secrets are never fields
    (the Event Grid key is read from the environment variable named by ``event_grid_key_env``)."""

    on_scheduled: Tuple[str, ...] = _option(
        '--on-scheduled', 'Command to run for each scheduled transition, without a shell; repeat for several, run '
        'in order. The event arrives as JSON on stdin and as SCHEDULED_EVENT_* variables.', default=(), kind=REPEAT)
    on_started: Tuple[str, ...] = _option(
        '--on-started', 'Command to run for each started transition, as --on-scheduled.', default=(), kind=REPEAT)
    on_completed: Tuple[str, ...] = _option(
        '--on-completed', 'Command to run for each completed transition, as --on-scheduled.', default=(),
        kind=REPEAT)
    webhook: Tuple[str, ...] = _option(
        '--webhook', 'URL to POST every transition to, as a CloudEvents 1.0 structured event; repeat for several.',
        default=(), kind=REPEAT)
    webhook_env: Tuple[str, ...] = _option(
        '--webhook-env', 'Environment variable that holds a webhook URL, for one whose query or user part is a '
        'secret (a token, a code); repeat for several.', default=(), kind=REPEAT)
    event_grid_topic: Optional[str] = _option(
        '--event-grid-topic', 'Endpoint of a custom Event Grid topic to publish every transition to (Event Grid '
        'schema).')
    event_grid_key_env: str = _option(
        '--event-grid-key-env', 'Environment variable that holds the Event Grid topic key.',
        default=EVENT_GRID_KEY_ENV)
    syslog: bool = _option('--syslog', 'Also write every transition to the local syslog (and so the journal).',
                           default=False, kind=FLAG)
    syslog_socket: str = _option('--syslog-socket', 'Syslog socket for --syslog.', default=SYSLOG_SOCKET)
    blob_url: Optional[str] = _option(
        '--blob-url', 'Blob Storage container to write every transition to, one JSON blob each, named by VM, '
        'EventId and transition. Authenticated as --coordination-url is.')
    blob_sas_env: Optional[str] = _option(
        '--blob-sas-env', 'Environment variable that holds a SAS for --blob-url, instead of the managed '
        'identity.')
    approve: ApproveMode = _option(
        '--approve', 'When to approve Scheduled events: never, after-handlers (only when every --on-scheduled '
        'command exited 0 in time), or immediately.', default=ApproveMode.NEVER, choices=ApproveMode)
    approve_types: Optional[Tuple[str, ...]] = _option(
        '--approve-types', 'Only approve events of these types (Freeze, Reboot, Redeploy, Preempt, Terminate). '
        'Default: all.', kind=LIST)
    approve_user_initiated: bool = _option(
        '--approve-user-initiated', 'Also approve events a user started (EventSource User). By default only '
        'Platform events are approved.', default=False, kind=FLAG, aliases=('--approve-user',))
    approver: Approver = _option(
        '--approver', 'Which VM of the Resources approves: self (this one); leader (only the VM named first; '
        'the others run their handlers and wait); all (once every VM named is ready, one of them, through '
        '--coordination-url).', default=Approver.SELF, choices=Approver)
    coordination_url: Optional[str] = _option(
        '--coordination-url', 'With --approver all: the Blob Storage container the VMs of a group share, '
        'https://ACCOUNT.blob.core.windows.net/CONTAINER. Authenticated with the VM\'s managed identity, or a '
        'SAS from --coordination-sas-env.')
    coordination_sas_env: Optional[str] = _option(
        '--coordination-sas-env', 'Environment variable that holds a SAS for --coordination-url (read, add, '
        'create, write, delete, list), instead of the managed identity.')
    wait_for_all_timeout: Optional[float] = _option(
        '--wait-for-all-timeout', 'With --approver all: approve with the VMs that are ready once this many '
        'seconds have passed since the event appeared (never later than the handler deadline), instead of '
        'waiting for every VM named.', type_=float)
    interval: float = _option(
        '--interval', 'Seconds between polls; once a second is what the documentation recommends (Preempt gives '
        '30 s of notice).', default=WATCH_INTERVAL_IN_SECONDS, type_=float)
    all_resources: bool = _option(
        '--all-resources', 'Act on every event in the document, not only those whose Resources name this VM.',
        default=False, kind=FLAG)
    event_types: Optional[Tuple[str, ...]] = _option(
        '--event-types', 'Only act on events of these types. Default: all.', kind=LIST)
    ignore_freeze_under: Optional[float] = _option(
        '--ignore-freeze-under', 'Ignore Freeze events whose DurationInSeconds is known and below this many '
        'seconds.', type_=float)
    handler_timeout: float = _option(
        '--handler-timeout', 'Seconds a command may run. For a Scheduled event it is also cut to the time left '
        'before NotBefore minus --deadline-margin.', default=HANDLER_TIMEOUT_IN_SECONDS, type_=float)
    deadline_margin: float = _option(
        '--deadline-margin', 'Seconds before NotBefore by which Scheduled handlers must be done.',
        default=DEADLINE_MARGIN_IN_SECONDS, type_=float)
    api_version: str = _option(
        '--api-version', 'Scheduled Events api-version. Older versions omit later fields (DurationInSeconds came '
        'in 2020-07-01).', default=DEFAULT_API_VERSION)
    state_dir: Optional[str] = _option(
        '--state-dir', 'Directory of the state that makes every step run once across restarts. Default: '
        'scheduled-events under the az config directory.')
    metrics_file: Optional[str] = _option(
        '--metrics-file', 'Also write Prometheus metrics to this file after every poll (the text format that '
        'node_exporter\'s textfile collector reads from its directory; name it *.prom).')
    once: bool = _option('--once', 'Poll once, act, and exit (for timers and cron).', default=False, kind=FLAG,
                         render=False)

    @classmethod
    def specs(cls):
        """Every option's description, in the order a command line spells them."""
        return [OptionSpec(dest=f.name, flags=(f.metadata['flag'],) + f.metadata['aliases'],
                           help=f.metadata['help'], kind=f.metadata['kind'], type=f.metadata['type'],
                           choices=f.metadata['choices'], default=f.default) for f in fields(cls)]

    @classmethod
    def from_arguments(cls, arguments):
        """From parsed arguments (a dict by destination; ``None`` means not given, lists become tuples)."""
        values = {}
        for f in fields(cls):
            value = arguments.get(f.name)
            if value is None:
                continue
            values[f.name] = tuple(value) if f.metadata['kind'] in (LIST, REPEAT) else value
        return cls(**values)

    def __post_init__(self):
        for name, minimum, strict in (('interval', 0, True), ('handler_timeout', 0, True),
                                      ('deadline_margin', 0, False), ('ignore_freeze_under', 0, False)):
            value = getattr(self, name)
            if value is not None and (value <= minimum if strict else value < minimum):
                flag = self._flag(name)
                raise InvalidSettingError(f'{flag} must be a number of seconds greater than 0.' if strict else
                                          f'{flag} cannot be negative.')
        for name in ('approve', 'approver'):
            word_class = self._field(name).metadata['choices']
            try:
                object.__setattr__(self, name, word_class(getattr(self, name)))
            except ValueError:
                raise InvalidSettingError(f'{self._flag(name)} is one of {", ".join(word_class.values())}.') from None
        if self.metrics_file is not None:
            # A service runs from /: the file it writes is the one named where the command was given.
            object.__setattr__(self, 'metrics_file', os.path.abspath(self.metrics_file))
        if self.wait_for_all_timeout is not None and self.wait_for_all_timeout <= 0:
            raise InvalidSettingError('--wait-for-all-timeout must be a number of seconds greater than 0.')
        self._check_coordination()
        for url, name in [(u, 'webhook') for u in self.webhook] + [
                (self.event_grid_topic, 'event_grid_topic'), (self.coordination_url, 'coordination_url'),
                (self.blob_url, 'blob_url')]:
            if url is None:
                continue
            parts = urlsplit(url)
            if parts.scheme not in ('http', 'https') or not parts.hostname:
                raise InvalidSettingError(f'{self._flag(name)} must be an http(s) URL.')

    def _check_coordination(self):
        """--approver all and its options go together, and only with approval after handlers."""
        if self.blob_sas_env and not self.blob_url:
            raise InvalidSettingError('--blob-sas-env goes with --blob-url.')
        if self.approver == Approver.ALL:
            if not self.coordination_url:
                raise InvalidSettingError('--approver all needs --coordination-url: the container the VMs share.')
            if self.approve != ApproveMode.AFTER_HANDLERS:
                raise InvalidSettingError('--approver all goes with --approve after-handlers: the group approves '
                                          'when every VM\'s handlers are done.')
            return
        for name in ('coordination_url', 'coordination_sas_env', 'wait_for_all_timeout'):
            if getattr(self, name) is not None:
                raise InvalidSettingError(f'{self._flag(name)} goes with --approver all.')

    def warnings(self):
        """What is allowed but likely a mistake: an event type this version does not know (Azure may add
        types, so it is not refused), a metrics file the textfile collector will not read."""
        known = EventType.values()
        for name in ('event_types', 'approve_types'):
            unknown = sorted(set(getattr(self, name) or ()) - set(known))
            if unknown:
                yield (f'{self._flag(name)}: {", ".join(unknown)} is not a type this version knows '
                       f'({", ".join(known)}).')
        if self.metrics_file and not self.metrics_file.endswith('.prom'):
            yield (f'--metrics-file: node_exporter\'s textfile collector reads only *.prom files, not '
                   f'{self.metrics_file}.')

    # What the watcher is made of --------------------------------------------------------------------------

    def settings(self):
        return WatchSettings(
            interval_in_seconds=self.interval, all_resources=self.all_resources,
            event_types=frozenset(self.event_types) if self.event_types else None,
            ignore_freeze_under_in_seconds=self.ignore_freeze_under, handler_timeout_in_seconds=self.handler_timeout,
            deadline_margin_in_seconds=self.deadline_margin, wait_for_all_timeout_in_seconds=self.wait_for_all_timeout,
            once=self.once)

    def policy(self):
        return ApprovalPolicy(mode=self.approve, event_types=frozenset(self.approve_types) if self.approve_types
                              else None, user_initiated=self.approve_user_initiated, approver=self.approver)

    def commands(self):
        """TransitionKind -> [CommandHandler]; ``HandlerConfigError`` for a command that can never run."""
        from .handlers import CommandHandler
        return {kind: [CommandHandler.parse(text) for text in getattr(self, f'on_{kind}')]
                for kind in (TransitionKind.SCHEDULED, TransitionKind.STARTED, TransitionKind.COMPLETED)}

    def sink_options(self, environ=None, *, imds_endpoint=DEFAULT_ENDPOINT):
        """Where transitions go besides stdout; the Event Grid key and a SAS are read from ``environ``
        (os.environ), a managed identity's token from IMDS at ``imds_endpoint``."""
        from .daemon import SinkOptions
        environ = os.environ if environ is None else environ
        key = None
        if self.event_grid_topic:
            key = environ.get(self.event_grid_key_env)
            if not key:
                raise HandlerConfigError(f'--event-grid-topic needs the topic key in the environment variable '
                                         f'{self.event_grid_key_env}.')
        if self.syslog and not os.path.exists(self.syslog_socket):
            raise HandlerConfigError(f'--syslog: no syslog socket at {self.syslog_socket}.')
        blob = _container(self.blob_url, self.blob_sas_env, environ, imds_endpoint) if self.blob_url else None
        missing = [name for name in self.webhook_env if not environ.get(name)]
        if missing:
            raise HandlerConfigError(f'--webhook-env: no URL in the environment variable {", ".join(missing)}.')
        webhooks = self.webhook + tuple(environ[name] for name in self.webhook_env)
        return SinkOptions(webhooks=webhooks, event_grid_topic=self.event_grid_topic, event_grid_key=key,
                           syslog_socket=self.syslog_socket if self.syslog else None, blob_container=blob)

    def coordination_container(self, environ=None, *, imds_endpoint=DEFAULT_ENDPOINT):
        """A factory of the group's ``BlobContainer`` for ``--approver all``, else ``None``."""
        if self.approver != Approver.ALL:
            return None
        environ = os.environ if environ is None else environ
        return _container(self.coordination_url, self.coordination_sas_env, environ, imds_endpoint)

    def check(self, environ=None):
        """Build what the watcher will need, so that a command that can never run fails before it starts."""
        self.commands()
        self.sink_options(environ)
        self.coordination_container(environ)
        if self.metrics_file and os.path.isdir(self.metrics_file):
            raise HandlerConfigError(f'--metrics-file {self.metrics_file} is a directory: name a file in it, such as '
                                     f'{os.path.join(self.metrics_file, "scheduled-events.prom")}.')

    # Back to a command line -------------------------------------------------------------------------------

    def with_programs_resolved(self):
        """The same options with each handler's program as an absolute path, as a service needs (its PATH is
        not the shell's); ``HandlerConfigError`` for a program that is not found."""
        import shlex
        from .handlers import CommandHandler

        def resolve(text):
            return ' '.join(shlex.quote(arg) for arg in CommandHandler.parse(text).resolved())
        return replace(self, on_scheduled=tuple(map(resolve, self.on_scheduled)),
                       on_started=tuple(map(resolve, self.on_started)),
                       on_completed=tuple(map(resolve, self.on_completed)))

    def to_argv(self, **overrides):
        """The options as arguments, defaults left out; ``overrides`` replace fields first (``state_dir=``)."""
        options = replace(self, **overrides) if overrides else self
        # Options that only matter beside another one are left out when that one is off.
        skip = {name for name, needs in (('syslog_socket', 'syslog'), ('event_grid_key_env', 'event_grid_topic'))
                if not getattr(options, needs)}
        argv = []
        for f in fields(options):
            value, meta = getattr(options, f.name), f.metadata
            if not meta['render'] or f.name in skip or value is None or value == f.default:
                continue
            flag = meta['flag']
            if meta['kind'] == FLAG:
                argv.append(flag)
            elif meta['kind'] == REPEAT:
                for item in value:
                    argv += [flag, item]
            elif meta['kind'] == LIST:
                argv += [flag, *value]
            else:
                argv += [flag, f'{value:g}' if isinstance(value, float) else str(value)]
        return argv

    @classmethod
    def _field(cls, name):
        return next(f for f in fields(cls) if f.name == name)

    def _flag(self, name):
        return self._field(name).metadata['flag']


def _container(url, sas_env, environ, imds_endpoint):
    """A zero-argument factory of the ``BlobContainer`` at ``url``: with the SAS in ``environ[sas_env]``, or
    the VM's managed identity. The credential is made once and shared (it caches the token)."""
    import functools
    from .blob import BlobContainer, ManagedIdentityCredential, SasCredential
    if sas_env:
        token = environ.get(sas_env)
        if not token:
            raise HandlerConfigError(f'no SAS in the environment variable {sas_env}.')
        credential = SasCredential(token)
    else:
        credential = ManagedIdentityCredential(imds_endpoint)
    BlobContainer(url, credential=credential).close()       # the URL and credential are checked now
    return functools.partial(BlobContainer, url, credential=credential)
