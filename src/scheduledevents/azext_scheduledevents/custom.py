# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The commands: read az settings, call the core, turn core errors into az errors, return plain data."""

import contextlib
from contextlib import contextmanager
from datetime import datetime, timezone

from knack.log import get_logger

from azext_scheduledevents.core import errors
from azext_scheduledevents.core.config import (DEADLINE_MARGIN_IN_SECONDS, HANDLER_TIMEOUT_IN_SECONDS,
                                               WATCH_INTERVAL_IN_SECONDS, RetryPolicy)
from azext_scheduledevents.core.imds import DEFAULT_ENDPOINT, ImdsClient

logger = get_logger(__name__)

CONFIG_SECTION = 'scheduled_events'
EVENT_GRID_KEY_ENV = 'SCHEDULED_EVENTS_EVENT_GRID_KEY'
DEFAULT_SYSLOG_SOCKET = '/dev/log'
ENDPOINT_OPTION = 'imds_endpoint'
_RECOMMEND_LIST = 'Run "az scheduled-events list" to see the events in the current document.'
_RECOMMEND_ENDPOINT = ('Run this on an Azure VM, or point az at an emulator: '
                       'az config set scheduled_events.imds_endpoint=http://127.0.0.1:8169')


def list_events(cmd, this_vm=False, document=False, api_version=None, timeout=None, resource_group_name=None,
                vmss_name=None, vm_name=None, instance_ids=None, max_parallel=None, instance_timeout=None,
                ignore_errors=False):
    if resource_group_name:
        return _fleet_list(cmd, _fleet(cmd, resource_group_name, vmss_name, vm_name, max_parallel, instance_timeout),
                           instance_ids, this_vm, document, api_version, ignore_errors)
    with _imds(cmd, api_version, timeout) as client:
        doc = client.get_document()
        if document:
            return doc.to_wire()
        vm_name = client.vm_name()
    now = datetime.now(timezone.utc)
    return [event.to_view(vm_name=vm_name, now=now) for event in doc.events
            if not this_vm or event.affects(vm_name)]


def show_event(cmd, event_id, api_version=None, timeout=None):
    with _imds(cmd, api_version, timeout) as client:
        event = client.get_document().get(event_id)
        if event is None:
            raise errors.EventNotFoundError(f'Event {event_id} is not in the Scheduled Events document: it may be '
                                            'over, or canceled.', event_ids=[event_id])
        vm_name = client.vm_name()
    return event.to_view(vm_name=vm_name, now=datetime.now(timezone.utc))


def approve_events(cmd, event_ids, force=False, api_version=None, timeout=None, resource_group_name=None,
                   vmss_name=None, vm_name=None, instance_id=None, max_parallel=None, instance_timeout=None):
    from azext_scheduledevents.core.approval import approve_events as approve
    if resource_group_name:
        fleet = _fleet(cmd, resource_group_name, vmss_name, vm_name, max_parallel, instance_timeout)
        return _fleet_approve(cmd, fleet, event_ids, instance_id, api_version)
    with _imds(cmd, api_version, timeout) as client:
        return [result.to_dict() for result in approve(client, event_ids, force=force)]


def _fleet(cmd, resource_group_name, vmss_name, vm_name, max_parallel, instance_timeout):
    from azext_scheduledevents._client_factory import cf_compute
    from azext_scheduledevents.core.config import FanoutSettings
    from azext_scheduledevents.core.fleet import Fleet
    settings = FanoutSettings(**{k: v for k, v in (('max_parallel', max_parallel),
                                                   ('instance_timeout_in_seconds', instance_timeout)) if v})
    return Fleet(cf_compute(cmd.cli_ctx), resource_group_name, vmss_name=vmss_name, vm_name=vm_name,
                 settings=settings)


@contextmanager
def _progress(cmd, total):
    """An ``on_result`` callback that moves az's progress bar; as az's own long-running operations, no bar
    with --only-show-errors or core.disable_progress_bar, and none in a pipeline's log either."""
    import sys
    show = (sys.stderr.isatty() and not cmd.cli_ctx.only_show_errors
            and not cmd.cli_ctx.config.getboolean('core', 'disable_progress_bar', False))
    progress = cmd.cli_ctx.get_progress_controller(det=True) if show else None
    done = []

    def on_result(result):
        done.append(result)
        logger.info('%s answered in %.1f s', result.target.name, result.seconds)
        if progress:
            progress.add(message=f'Read {len(done)} of {total} instances', value=len(done), total_val=total)
    try:
        yield on_result
    finally:
        if progress:
            progress.end()


def _log_failures(results):
    for result in results:
        if not result.ok:
            logger.error('%s: %s', result.target.name, result.error)
    return [result.target.name for result in results if not result.ok]


def _fleet_list(cmd, fleet, instance_ids, this_vm, document, api_version, ignore_errors):
    with _az_errors():
        targets = fleet.targets(instance_ids)
        with _progress(cmd, len(targets)) as on_result:
            results = fleet.read(targets, api_version=api_version, on_result=on_result)
    failed = _log_failures(results)
    now = datetime.now(timezone.utc)
    if document:
        rows = [{'Instance': r.target.name, 'InstanceId': r.target.instance_id, **r.document.to_wire()}
                for r in results if r.ok]
    else:
        rows = [{'Instance': r.target.name, 'InstanceId': r.target.instance_id,
                 **event.to_view(vm_name=r.vm_name, now=now)}
                for r in results if r.ok for event in r.document.events
                if not this_vm or event.affects(r.vm_name)]
    if failed and not ignore_errors:
        _fail_after_output(cmd, f'{len(failed)} of {len(results)} instances could not be read: {", ".join(failed)}. '
                                'Use --ignore-errors to exit 0 anyway.')
    return rows


def _fleet_approve(cmd, fleet, event_ids, instance_id, api_version):
    """Approve on one instance that sees every id (or on ``instance_id``); report each id's status after."""
    from azure.cli.core import azclierror
    with _az_errors():
        targets = fleet.targets([instance_id] if instance_id else None)
        with _progress(cmd, len(targets)) as on_result:
            results, chosen, after = fleet.approve_where_seen(targets, event_ids, api_version=api_version,
                                                              on_result=on_result)
    _log_failures(results)
    if not after.ok:
        raise azclierror.AzureResponseError(f'Approving on {chosen.target.name} failed: {after.error}')
    rows = []
    for event_id in event_ids:
        before, now = chosen.document.get(event_id), after.document.get(event_id)
        rows.append({'EventId': before.event_id, 'EventType': before.event_type, 'Instance': chosen.target.name,
                     'InstanceId': chosen.target.instance_id, 'StatusBefore': before.event_status,
                     'EventStatus': now.event_status if now else 'NotInDocument', 'ApprovalSent': True})
    return rows


def _fail_after_output(cmd, message):
    """Let az print the result, then exit 1: pipelines get both the partial answer and the failure."""
    from knack.events import EVENT_CLI_SUCCESSFUL_EXECUTE

    def fail(*_, **__):
        logger.error('%s', message)
        raise SystemExit(1)
    cmd.cli_ctx.register_event(EVENT_CLI_SUCCESSFUL_EXECUTE, fail)


def watch_events(cmd, on_scheduled=None, on_started=None, on_completed=None,  # pylint: disable=too-many-locals
                 webhook=None, event_grid_topic=None, event_grid_key_env=EVENT_GRID_KEY_ENV, syslog=False,
                 syslog_socket=DEFAULT_SYSLOG_SOCKET, approve='never', approve_types=None,
                 approve_user_initiated=False, approver='self', interval=WATCH_INTERVAL_IN_SECONDS,
                 all_resources=False, event_types=None, ignore_freeze_under=None,
                 handler_timeout=HANDLER_TIMEOUT_IN_SECONDS, deadline_margin=DEADLINE_MARGIN_IN_SECONDS,
                 state_dir=None, once=False, print_systemd_unit=False, api_version=None):
    import os
    import sys
    from azure.cli.core import azclierror
    from azext_scheduledevents.core import daemon
    from azext_scheduledevents.core.approval import ApprovalPolicy
    from azext_scheduledevents.core.config import WatchSettings
    from azext_scheduledevents.core.handlers import CommandHandler, HandlerConfigError
    options = dict(locals())
    try:
        settings = WatchSettings(
            interval_in_seconds=interval, all_resources=all_resources,
            event_types=frozenset(event_types) if event_types else None,
            ignore_freeze_under_in_seconds=ignore_freeze_under, handler_timeout_in_seconds=handler_timeout,
            deadline_margin_in_seconds=deadline_margin, once=once)
        policy = ApprovalPolicy(mode=approve, event_types=frozenset(approve_types) if approve_types else None,
                                user_initiated=approve_user_initiated, approver=approver)
        commands = {kind: [CommandHandler.parse(text) for text in texts or ()]
                    for kind, texts in (('scheduled', on_scheduled), ('started', on_started),
                                        ('completed', on_completed))}
    except (HandlerConfigError, ValueError) as ex:
        raise azclierror.InvalidArgumentValueError(str(ex)) from None
    if print_systemd_unit:
        sys.stdout.write(_systemd_unit(options, handler_timeout))
        return None
    key = None
    if event_grid_topic:
        key = os.environ.get(event_grid_key_env)
        if not key:
            raise azclierror.RequiredArgumentMissingError(
                f'--event-grid-topic needs the topic key in the environment variable {event_grid_key_env}.')
    if syslog and not os.path.exists(syslog_socket):
        raise azclierror.InvalidArgumentValueError(f'--syslog: no syslog socket at {syslog_socket}.',
                                                   'Give the socket with --syslog-socket.')
    style = daemon.TEXT_LINES if cmd.cli_ctx.invocation.data.get('output') in ('table', 'tsv') else daemon.JSON_LINES
    printer = daemon.LinePrinter(style)
    with _az_errors(), contextlib.closing(printer):
        answered = daemon.run(
            endpoint=_endpoint(cmd), api_version=api_version, settings=settings, policy=policy, commands=commands,
            state_dir=state_dir or os.path.join(cmd.cli_ctx.config.config_dir, 'scheduled-events'),
            sink_options=daemon.SinkOptions(webhooks=tuple(webhook or ()), event_grid_topic=event_grid_topic,
                                            event_grid_key=key, syslog_socket=syslog_socket if syslog else None),
            emit=printer)
    if not answered:
        raise azclierror.AzureConnectionError('IMDS did not answer the poll.', _RECOMMEND_ENDPOINT)


# watch's options in the order a unit file spells them; lists given with action=append repeat the option.
_WATCH_OPTIONS = (
    ('on_scheduled', '--on-scheduled'), ('on_started', '--on-started'), ('on_completed', '--on-completed'),
    ('webhook', '--webhook'), ('event_grid_topic', '--event-grid-topic'),
    ('event_grid_key_env', '--event-grid-key-env'), ('syslog', '--syslog'), ('syslog_socket', '--syslog-socket'),
    ('approve', '--approve'), ('approve_types', '--approve-types'),
    ('approve_user_initiated', '--approve-user-initiated'), ('approver', '--approver'), ('interval', '--interval'),
    ('all_resources', '--all-resources'), ('event_types', '--event-types'),
    ('ignore_freeze_under', '--ignore-freeze-under'), ('handler_timeout', '--handler-timeout'),
    ('deadline_margin', '--deadline-margin'), ('api_version', '--api-version'), ('state_dir', '--state-dir'))
_REPEATED = {'on_scheduled', 'on_started', 'on_completed', 'webhook'}


def _systemd_unit(options, handler_timeout):
    """The unit for exactly this watch command, run by this az, with its state under /var/lib."""
    import os
    import shutil
    import sys
    from azure.cli.core.azclierror import FileOperationError
    from azext_scheduledevents.core.systemd import SERVICE_STATE_DIR, render_unit
    az = os.path.join(os.path.dirname(sys.executable), 'az')
    az = az if os.access(az, os.X_OK) else shutil.which('az')
    if not az:
        raise FileOperationError('Cannot find the az executable to put in the unit.')
    options = dict(options, state_dir=options['state_dir'] or SERVICE_STATE_DIR)
    # Options that only matter beside another one are left out when that one is off.
    if not options['syslog']:
        options['syslog_socket'] = None
    if not options['event_grid_topic']:
        options['event_grid_key_env'] = None
    argv = [os.path.abspath(az), 'scheduled-events', 'watch']
    for name, flag in _WATCH_OPTIONS:
        value = options.get(name)
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif name in _REPEATED:
            for item in value:
                argv += [flag, item]
        elif isinstance(value, (list, tuple)):
            argv += [flag, *value]
        else:
            argv += [flag, f'{value:g}' if isinstance(value, float) else str(value)]
    return render_unit(argv + ['--only-show-errors'], stop_timeout_in_seconds=handler_timeout + 30)


def cycle_scale_set(cmd, resource_group_name, name, instance_ids=None,  # pylint: disable=too-many-locals
                    timeout_minutes=30.0, ignore_initial_health=False, ignore_availability=False, max_unavailable=1,
                    pause_seconds=0.0, action='reimage', health='auto', dry_run=False, state_file=None, resume=False):
    import sys
    import time
    from azext_scheduledevents._client_factory import cf_compute
    from azext_scheduledevents.core.config import CycleSettings
    from azext_scheduledevents.core.cycle import Cycle
    settings = CycleSettings(action=action, max_unavailable=max_unavailable,
                             timeout_in_seconds=timeout_minutes * 60, pause_in_seconds=pause_seconds,
                             ignore_initial_health=ignore_initial_health, ignore_availability=ignore_availability,
                             health=health)
    started = time.monotonic()

    def progress(text):
        # One line per step on stderr: readable live in a terminal and afterwards in a pipeline's log.
        if not cmd.cli_ctx.only_show_errors:
            sys.stderr.write(f'[{time.monotonic() - started:7.1f} s] {text}\n')
            sys.stderr.flush()
    cycle = Cycle(cf_compute(cmd.cli_ctx), resource_group_name, name, settings=settings, state_path=state_file,
                  resume=resume, on_progress=progress)
    try:
        with _az_errors():
            return cycle.plan(instance_ids) if dry_run else cycle.run(instance_ids)
    except errors.CycleError as ex:
        if ex.report is None:
            from azure.cli.core.azclierror import UnclassifiedUserFault
            raise UnclassifiedUserFault(str(ex)) from None
        _fail_after_output(cmd, str(ex))
        return ex.report


def run_emulator(cmd, host='127.0.0.1', port=8169, scenario='empty',  # pylint: disable=unused-argument
                 speed=1.0, vm_name='web_0', terminate_notice=None, rate_limit=5):
    from azure.cli.core.azclierror import FileOperationError, InvalidArgumentValueError
    from azext_scheduledevents.emulator.imds import ImdsEmulator, serve_until_stopped
    from azext_scheduledevents.emulator.scenarios import ScenarioError
    try:
        emulator = ImdsEmulator.from_scenario(scenario, host=host, port=port, vm_name=vm_name, speed=speed,
                                              terminate_notice=terminate_notice, rate_limit=rate_limit)
    except ScenarioError as ex:
        raise InvalidArgumentValueError(f'--scenario: {ex}') from None
    except OSError as ex:
        raise FileOperationError(f'Cannot listen on {host}:{port}: {ex.strerror or ex}',
                                 'Choose another --port, or 0 for any free port.') from None
    serve_until_stopped(emulator, describe=f' (scenario {scenario}, speed {speed:g})')


@contextmanager
def _imds(cmd, api_version, timeout):
    """An ``ImdsClient`` for the configured endpoint; core errors leave as az errors, each in one line."""
    kwargs = {'api_version': api_version} if api_version else {}
    if timeout:
        kwargs['retry'] = RetryPolicy(deadline_in_seconds=timeout)
    with _az_errors(), ImdsClient(_endpoint(cmd), **kwargs) as client:
        yield client


def _endpoint(cmd):
    return cmd.cli_ctx.config.get(CONFIG_SECTION, ENDPOINT_OPTION, fallback=DEFAULT_ENDPOINT)


@contextmanager
def _az_errors():
    """Translate the core's errors into az errors, once, with a recommendation where one helps."""
    from azure.cli.core import azclierror
    try:
        yield
    except errors.InvalidEndpointError as ex:
        raise azclierror.InvalidArgumentValueError(str(ex), 'Fix it with: az config set '
                                                   'scheduled_events.imds_endpoint=http://HOST:PORT') from None
    except errors.EventNotFoundError as ex:
        raise azclierror.ResourceNotFoundError(str(ex), _RECOMMEND_LIST) from None
    except errors.InvalidEventIdError as ex:
        raise azclierror.InvalidArgumentValueError(str(ex), _RECOMMEND_LIST) from None
    except (errors.ImdsUnreachableError, errors.ImdsTimeoutError) as ex:
        recommendation = _RECOMMEND_ENDPOINT if isinstance(ex, errors.ImdsUnreachableError) else \
            'Try again with a larger --timeout.'
        raise azclierror.AzureConnectionError(str(ex), recommendation) from None
    except errors.ImdsRejectedError as ex:
        raise azclierror.BadRequestError(str(ex)) from None
    except errors.ImdsError as ex:
        raise azclierror.AzureResponseError(str(ex)) from None
    except errors.CycleError:
        raise
    except errors.TargetNotFoundError as ex:
        raise azclierror.ResourceNotFoundError(str(ex)) from None
    except errors.ScheduledEventsError as ex:
        raise azclierror.UnclassifiedUserFault(str(ex)) from None
