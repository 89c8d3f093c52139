# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The agent's command line: ``watch``, ``list``, ``show`` and ``approve`` on this VM, with the options and
answers of ``az scheduled-events``, through the same core calls.

IMDS is at AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT (the variable az reads for its setting
``scheduled_events.imds_endpoint``), else http://169.254.169.254. A failure is one ``ERROR:`` line on
stderr and exit 1, or 2 when the command line is at fault; never a traceback. Each command imports only
what it uses, so that ``list`` costs little more than curl and ``watch`` stays small.

    python3 scheduled-events-agent.pyz watch --on-scheduled /usr/local/bin/drain --approve after-handlers
    main(['list', '--this-vm'])                # 0, the rows printed as az -o json prints them
"""

import argparse
import logging
import os
import sys
from collections import namedtuple

from ..core.errors import (HandlerConfigError, ImdsError, InvalidEventIdError, InvalidSettingError,
                           ScheduledEventsError)
from ..core.log import get_logger
from ..version import VERSION

logger = get_logger(__name__)

PROG = 'scheduled-events-agent'
ENDPOINT_ENV = 'AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT'
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
# Core errors that say the command line can never work, exit 2 as argparse's own.
_USAGE_ERRORS = (InvalidSettingError, InvalidEventIdError, HandlerConfigError)
_LOG_FORMAT = '%(levelname)s: %(message)s'
_DEBUG_FORMAT = '%(levelname)s: %(name)s: %(message)s'


class UsageError(Exception):
    """The command line does not parse: what argparse would print with its usage and exit 2 for."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (one ``ERROR:`` line, no usage text) instead of printed."""

    def error(self, message):
        raise UsageError(message)


def main(argv=None):
    """Run the agent's command line ``argv`` (``sys.argv[1:]``) -> the process's exit code.

        main(['approve', '--event-id', 'C7061BAC-AFDC-4513-B24B-AA5F13A16123'])
    """
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(_command(argv)).parse_args(argv)
        logging.basicConfig(stream=sys.stderr, format=_DEBUG_FORMAT if args.debug else _LOG_FORMAT,
                            level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING)
        return args.run(args)
    except SystemExit as ex:        # --help and --version
        return ex.code or 0
    except (UsageError,) + _USAGE_ERRORS as ex:
        return _fail(ex, EXIT_USAGE)
    except ScheduledEventsError as ex:
        return _fail(ex, EXIT_ERROR)
    except OSError as ex:           # a state directory that cannot be made, a closed stdout
        return _fail(f'{ex.strerror or ex}' + (f': {ex.filename}' if ex.filename else ''), EXIT_ERROR)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _endpoint():
    from ..core.imds import DEFAULT_ENDPOINT
    return os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT


def _import_http_client_without_ssl():
    """``http.client`` imports ``ssl`` only to define ``HTTPSConnection``, which ``transport`` does not use:
    without it a watcher of plain-http IMDS is 6 MB smaller and ``list`` starts sooner. ``ssl`` itself is
    not touched, so an https webhook or storage account imports it then."""
    if 'http.client' in sys.modules or 'ssl' in sys.modules:
        return
    sys.modules['ssl'] = None           # import ssl -> ImportError, for this one import
    try:
        import http.client  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    finally:
        del sys.modules['ssl']


def _fail(message, code):
    sys.stderr.write(f'ERROR: {" ".join(str(message).splitlines())}\n')
    return code


def _command(argv):
    """The command ``argv`` names: its first word that is not an option (the top level has no option that
    takes a value)."""
    return next((arg for arg in argv if not arg.startswith('-')), None)


def build_parser(command=None):
    """The parser of every command; each command's ``run(args)`` is in ``args.run``. Only the options of
    ``command`` (the one ``argv`` names) are added, since they cost their imports: ``--version`` and
    ``service`` (each install runs it) then import neither ``http.client`` nor the watcher."""
    parser = _Parser(prog=PROG, allow_abbrev=False, description='Azure Scheduled Events on this VM: the '
                     'watcher of az scheduled-events watch, and list, show and approve.')
    parser.add_argument('--version', action='version', version=VERSION)
    common = _Parser(add_help=False, allow_abbrev=False)
    common.add_argument('--verbose', action='store_true', help='Log what happens (INFO).')
    common.add_argument('--debug', action='store_true', help='Log everything (DEBUG).')
    common.add_argument('-o', '--output', choices=('json', 'table'), default='json',
                        help='json (as az -o json), or table; watch writes text lines with table.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', parser_class=_Parser)
    commands.required = True
    for name, spec in _COMMANDS.items():
        sub = commands.add_parser(name, help=spec.help, description=spec.help, parents=[common], allow_abbrev=False)
        sub.set_defaults(run=spec.run)
        if name == command:
            spec.add_options(sub)
    return parser


def _add_imds_options(parser):
    _import_http_client_without_ssl()           # before core.imds imports it
    from ..core.config import IMDS_DEADLINE_IN_SECONDS
    from ..core.imds import DEFAULT_API_VERSION
    parser.add_argument('--api-version', default=DEFAULT_API_VERSION, help='Scheduled Events api-version.')
    parser.add_argument('--timeout', type=float, default=IMDS_DEADLINE_IN_SECONDS,
                        help='Seconds to keep trying before giving up (the first call on a VM can take two minutes).')


def _add_list_options(parser):
    _add_imds_options(parser)
    parser.add_argument('--this-vm', action='store_true', help='Only events whose Resources name this VM.')
    parser.add_argument('--document', action='store_true', help='Print the raw document instead.')


def _add_show_options(parser):
    _add_imds_options(parser)
    parser.add_argument('--event-id', required=True, help='Id (a GUID) of the event, as EventId shows it.')


def _add_approve_options(parser):
    _add_imds_options(parser)
    parser.add_argument('--event-id', dest='event_ids', nargs='+', required=True, metavar='EVENT_ID',
                        help='Ids (GUIDs) of the events; approving starts an event for every VM in its Resources.')
    parser.add_argument('--force', action='store_true', help='Send the approval even for ids not in the document.')


def _add_service_options(parser):
    parser.add_argument('action', choices=('install', 'status'))
    parser.add_argument('--agent', help='install: the agent file to install.')
    parser.add_argument('--spec', help='install: the JSON file of the service\'s watch options and secrets.')
    parser.add_argument('--python', default=sys.executable, help='install: the Python the service runs.')


def _add_watch_options(parser):
    """``watch``'s options from ``WatchOptions.specs()``, as ``_params.py`` registers them for az: every
    default ``None``, so that ``WatchOptions.from_arguments`` keeps its own."""
    _import_http_client_without_ssl()           # before core.watchoptions imports core.imds
    from ..core.config import AGENT_STATE_DIR
    from ..core.watchoptions import FLAG, LIST, REPEAT, WatchOptions
    kinds = {FLAG: {'action': 'store_true'}, REPEAT: {'action': 'append'}, LIST: {'nargs': '+'}}
    for spec in WatchOptions.specs():
        text = f'Default: {AGENT_STATE_DIR}.' if spec.dest == 'state_dir' else spec.help
        if spec.default not in (None, (), False) and spec.dest != 'state_dir':
            text += f' Default: {spec.default:g}.' if isinstance(spec.default, float) else f' Default: {spec.default}.'
        kwargs = dict(kinds.get(spec.kind) or {'type': spec.type}, dest=spec.dest, default=None,
                      help=text.replace('%', '%%'))
        if spec.choices is not None:
            kwargs['choices'] = spec.choices.values()
        parser.add_argument(*spec.flags, **kwargs)


# The commands: each returns the exit code --------------------------------------------------------------

def _list(args):
    from ..core.vmcommands import list_rows
    return _on_vm(args, lambda client, now: list_rows(client, now=now, this_vm=args.this_vm, document=args.document))


def _show(args):
    from ..core.events import validate_event_id
    from ..core.vmcommands import show_row
    event_id = validate_event_id(args.event_id.strip())
    return _on_vm(args, lambda client, now: show_row(client, event_id, now=now))


def _approve(args):
    from ..core.events import validate_event_id
    from ..core.vmcommands import approve_rows
    event_ids = [validate_event_id(event_id.strip()) for event_id in args.event_ids]
    return _on_vm(args, lambda client, _: approve_rows(client, event_ids, force=args.force))


def _on_vm(args, call):
    """Check the IMDS options, ``call(client, now)``, and print its answer as az would."""
    from datetime import datetime, timezone
    from .output import render_json
    from ..core.vmcommands import check_imds_options, imds_client
    endpoint = _endpoint()
    check_imds_options(api_version=args.api_version, timeout=args.timeout)
    with imds_client(endpoint, api_version=args.api_version, timeout=args.timeout) as client:
        result = call(client, datetime.now(timezone.utc))
    sys.stdout.write(_table(args.command, result) if args.output == 'table' else render_json(result))
    sys.stdout.flush()
    return 0


def _table(command, result):
    from .output import render_table
    from .._format import transform_approval_table, transform_event_table
    return render_table((transform_approval_table if command == 'approve' else transform_event_table)(result))


def _watch(args):
    import contextlib
    from ..core.config import AGENT_STATE_DIR
    from ..core import daemon
    from ..core.vmcommands import check_imds_options
    from ..core.vocabulary import LineStyle
    from ..core.watchoptions import WatchOptions
    endpoint = _endpoint()
    options = WatchOptions.from_arguments(vars(args))
    check_imds_options(api_version=options.api_version)
    options.check()
    for warning in options.warnings():
        logger.warning('%s', warning)
    printer = daemon.LinePrinter(LineStyle.TEXT if args.output == 'table' else LineStyle.JSON)
    with contextlib.closing(printer):
        answered = daemon.run_watch(options, endpoint=endpoint, state_dir=AGENT_STATE_DIR, emit=printer)
    if not answered:
        raise ImdsError(f'IMDS did not answer the poll at {endpoint}.', endpoint=endpoint)
    return 0


def _service(args):
    from .service import main as service_main
    if args.action == 'install' and not (args.agent and args.spec):
        raise UsageError('service install needs --agent and --spec.')
    return service_main(args)


# typing's NamedTuple would cost an import.
_Command = namedtuple('_Command', 'run help add_options')
_COMMANDS = {
    'list': _Command(_list, 'List the Scheduled Events of this VM.', _add_list_options),
    'show': _Command(_show, 'Show one event.', _add_show_options),
    'approve': _Command(_approve, 'Approve events, so that they start now.', _add_approve_options),
    'watch': _Command(_watch, 'Watch the events and act on each transition, until stopped.', _add_watch_options),
    'service': _Command(_service, 'Install this agent as a systemd service, or say how it runs.',
                        _add_service_options),
}
