# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The commands: read az settings, build the core's objects, call them, return plain data. Core errors
leave through the one table in ``_errors.py``; argument checks are in ``_validators.py``."""

from contextlib import contextmanager
from datetime import datetime, timezone

from azext_scheduledevents._errors import RECOMMEND_ENDPOINT, az_errors
from azext_scheduledevents.core import config
from azext_scheduledevents.core.imds import DEFAULT_ENDPOINT
from azext_scheduledevents.core.log import get_logger
from azext_scheduledevents.core.vocabulary import CycleAction, HealthMode

logger = get_logger(__name__)

CONFIG_SECTION = 'scheduled_events'
ENDPOINT_OPTION = 'imds_endpoint'


def list_events(cmd, *, this_vm=False, document=False, api_version=None,  # pylint: disable=too-many-locals
                timeout=None, resource_group_name=None, vmss_name=None, vm_name=None, availability_set=None,
                instance_ids=None, max_parallel=None, instance_timeout=None, ignore_errors=False, route=None,
                subscriptions=None, management_groups=None, statuses=None):
    from azext_scheduledevents.core.views import document_rows, event_rows
    from azext_scheduledevents.core.vocabulary import Route
    if not resource_group_name and route != Route.CONTROL_PLANE:
        from azext_scheduledevents.core.vmcommands import list_rows
        with _imds(cmd, api_version, timeout) as client:
            return list_rows(client, now=datetime.now(timezone.utc), this_vm=this_vm, document=document)
    target = _target(cmd, resource_group_name, vmss_name, vm_name, availability_set)
    if _route(cmd, target, route) == Route.CONTROL_PLANE:
        return _control_plane_list(cmd, target, subscriptions, management_groups, statuses)
    fleet = _fleet(cmd, resource_group_name, vmss_name=vmss_name, vm_name=vm_name, max_parallel=max_parallel,
                   instance_timeout=instance_timeout)
    readings = _fleet_read(cmd, fleet, instance_ids, api_version, ignore_errors)
    if document:
        return document_rows(readings)
    return event_rows(readings, now=datetime.now(timezone.utc), this_vm=this_vm)


def show_event(cmd, event_id, api_version=None, timeout=None):
    from azext_scheduledevents.core.vmcommands import show_row
    with _imds(cmd, api_version, timeout) as client:
        return show_row(client, event_id, now=datetime.now(timezone.utc))


def approve_events(cmd, *, event_ids, force=False, api_version=None, timeout=None,  # pylint: disable=too-many-locals
                   resource_group_name=None, vmss_name=None, vm_name=None, availability_set=None, instance_id=None,
                   max_parallel=None, instance_timeout=None, route=None):
    from azext_scheduledevents.core.vocabulary import Route
    if resource_group_name:
        target = _target(cmd, resource_group_name, vmss_name, vm_name, availability_set)
        if _route(cmd, target, route) == Route.CONTROL_PLANE:
            return _control_plane_approve(cmd, target, event_ids, force)
        fleet = _fleet(cmd, resource_group_name, vmss_name=vmss_name, vm_name=vm_name, max_parallel=max_parallel,
                       instance_timeout=instance_timeout)
        return _fleet_approve(cmd, fleet, event_ids, instance_id, api_version)
    from azext_scheduledevents.core.vmcommands import approve_rows
    with _imds(cmd, api_version, timeout) as client:
        return approve_rows(client, event_ids, force=force)


def _target(cmd, resource_group_name, vmss_name, vm_name, availability_set):
    """The ``ArmTarget`` that -g and --vmss-name, --vm-name or --availability-set name (None without -g)."""
    from azext_scheduledevents._client_factory import current_subscription
    from azext_scheduledevents.core.targets import ArmTarget
    from azext_scheduledevents.core.vocabulary import TargetKind
    if not resource_group_name:
        return None
    kind, name = next((k, n) for k, n in ((TargetKind.SCALE_SET, vmss_name), (TargetKind.VM, vm_name),
                                          (TargetKind.AVAILABILITY_SET, availability_set)) if n)
    return ArmTarget(current_subscription(cmd.cli_ctx), resource_group_name, kind, name)


def _route(cmd, target, requested):
    """The route a fleet command takes, said on stderr: ``auto`` reads the target's policy."""
    from azure.cli.core.azclierror import ArgumentUsageError
    from azext_scheduledevents._client_factory import cf_arm_send
    from azext_scheduledevents.core.policy import choose_route, read_policy
    from azext_scheduledevents.core.vocabulary import Route, TargetKind
    requested = Route(requested or Route.AUTO)
    if target is None or requested != Route.AUTO:
        chosen, why = requested, 'as asked'
    else:
        with az_errors():
            policy = read_policy(cf_arm_send(cmd.cli_ctx), target)
        chosen = choose_route(policy, requested)
        why = ('its policy publishes to Resource Graph' if chosen == Route.CONTROL_PLANE else
               'its policy does not publish to Resource Graph')
    if chosen == Route.RUN_COMMAND and target is not None and target.kind == TargetKind.AVAILABILITY_SET:
        raise ArgumentUsageError(f'Run Command cannot reach the availability set {target.name} as a whole, and its '
                                 'policy does not publish to Resource Graph.',
                                 f'See: az scheduled-events policy show -g {target.resource_group} '
                                 f'--availability-set {target.name}; or use --vm-name for each of its VMs.')
    if not cmd.cli_ctx.only_show_errors:
        logger.warning('Route: %s (%s).', chosen, why)
    return chosen


def _control_plane_list(cmd, target, subscriptions, management_groups, statuses):
    from azext_scheduledevents._client_factory import cf_arm_send, visible_subscriptions
    from azext_scheduledevents.core import controlplane
    if target is not None:
        subscriptions = [target.subscription]
    elif not subscriptions and not management_groups:
        subscriptions = visible_subscriptions(cmd.cli_ctx)
    with az_errors():
        return controlplane.list_events(cf_arm_send(cmd.cli_ctx), statuses=statuses or controlplane.DEFAULT_STATUSES,
                                        now=datetime.now(timezone.utc), subscriptions=subscriptions,
                                        management_groups=management_groups, target=target)


def _control_plane_approve(cmd, target, event_ids, force):
    from azext_scheduledevents._client_factory import cf_arm_send
    from azext_scheduledevents.core import controlplane
    from azext_scheduledevents.core.errors import PartialApprovalError
    with az_errors():
        try:
            return controlplane.approve_events(cf_arm_send(cmd.cli_ctx), target, event_ids, force=force,
                                               now=datetime.now(timezone.utc))
        except PartialApprovalError as ex:
            results, message = ex.results, str(ex)
    _fail_after_output(cmd, message)
    return results


def show_policy(cmd, *, resource_group_name, vmss_name=None, vm_name=None, availability_set=None):
    from azext_scheduledevents._client_factory import cf_arm_send
    from azext_scheduledevents.core.policy import read_policy
    target = _target(cmd, resource_group_name, vmss_name, vm_name, availability_set)
    with az_errors():
        return read_policy(cf_arm_send(cmd.cli_ctx), target).to_view()


def _fleet(cmd, resource_group_name, *, vmss_name, vm_name, max_parallel, instance_timeout):
    from azext_scheduledevents._client_factory import cf_compute
    from azext_scheduledevents.core.config import FanoutSettings
    from azext_scheduledevents.core.fleet import Fleet
    settings = FanoutSettings(**{k: v for k, v in (('max_parallel', max_parallel),
                                                   ('instance_timeout_in_seconds', instance_timeout)) if v})
    return Fleet(cf_compute(cmd.cli_ctx), resource_group_name, vmss_name=vmss_name, vm_name=vm_name,
                 settings=settings)


@contextmanager
def _progress(cmd, total, verb='Read'):
    """An ``on_result`` callback that moves az's progress bar as each instance answers; as az's own
    long-running operations, no bar with --only-show-errors or core.disable_progress_bar, nor in a log."""
    import sys
    show = (sys.stderr.isatty() and not cmd.cli_ctx.only_show_errors
            and not cmd.cli_ctx.config.getboolean('core', 'disable_progress_bar', False))
    progress = cmd.cli_ctx.get_progress_controller(det=True) if show else None
    done = []

    def on_result(result):
        done.append(result)
        logger.info('%s answered in %.1f s', result.target.name, result.seconds)
        if progress:
            progress.add(message=f'{verb} {len(done)} of {total} instances', value=len(done), total_val=total)
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


def _fleet_read(cmd, fleet, instance_ids, api_version, ignore_errors):
    """Every instance's reading; the ones that failed are logged, and fail the command after its output."""
    with az_errors():
        targets = fleet.targets(instance_ids)
        with _progress(cmd, len(targets)) as on_result:
            results = fleet.read(targets, api_version=api_version, on_result=on_result)
    failed = _log_failures(results)
    if failed and not ignore_errors:
        _fail_after_output(cmd, f'{len(failed)} of {len(results)} instances could not be read: {", ".join(failed)}. '
                                'Use --ignore-errors to exit 0 anyway.')
    return [result.reading for result in results if result.ok]


def _fleet_approve(cmd, fleet, event_ids, instance_id, api_version):
    """Approve on one instance that sees every id (or on ``instance_id``); report each id's status after."""
    from azure.cli.core import azclierror
    from azext_scheduledevents.core.views import approval_rows
    with az_errors():
        targets = fleet.targets([instance_id] if instance_id else None)
        with _progress(cmd, len(targets)) as on_result:
            results, chosen, after, approvals = fleet.approve_where_seen(targets, event_ids, api_version=api_version,
                                                                         on_result=on_result)
    _log_failures(results)
    if not after.ok:
        raise azclierror.AzureResponseError(f'Approving on {chosen.target.name} failed: {after.error}',
                                            'Approve on another instance that sees the event with --instance-id.')
    return approval_rows(chosen.where, approvals)


def _fail_after_output(cmd, message):
    """Let az print the result, then exit 1: pipelines get both the partial answer and the failure."""
    from knack.events import EVENT_CLI_SUCCESSFUL_EXECUTE

    def fail(*_, **__):
        logger.error('%s', message)
        raise SystemExit(1)
    cmd.cli_ctx.register_event(EVENT_CLI_SUCCESSFUL_EXECUTE, fail)


def watch_events(cmd, print_systemd_unit=False, **kwargs):
    """The watch options arrive as ``kwargs``: ``WatchOptions`` describes them, ``_params.py`` registers them."""
    import contextlib
    import os
    from azure.cli.core import azclierror
    from azext_scheduledevents.core import daemon
    from azext_scheduledevents.core.vocabulary import LineStyle
    from azext_scheduledevents.core.watchoptions import WatchOptions
    with az_errors():
        options = WatchOptions.from_arguments(kwargs)
        if print_systemd_unit:
            return _print_systemd_unit(options)
        options.check()
    style = LineStyle.TEXT if cmd.cli_ctx.invocation.data.get('output') in ('table', 'tsv') else LineStyle.JSON
    printer = daemon.LinePrinter(style)
    with az_errors(), contextlib.closing(printer):
        answered = daemon.run_watch(options, endpoint=_endpoint(cmd), emit=printer,
                                    state_dir=os.path.join(cmd.cli_ctx.config.config_dir, config.STATE_DIR_NAME))
    if not answered:
        raise azclierror.AzureConnectionError('IMDS did not answer the poll.', RECOMMEND_ENDPOINT)
    return None


def _print_systemd_unit(options):
    """Print the unit for exactly this watch command, run by this az, with its state under /var/lib."""
    import os
    import shutil
    import sys
    from azure.cli.core.azclierror import FileOperationError
    from azext_scheduledevents.core.systemd import az_environment, render_unit
    az = os.path.join(os.path.dirname(sys.executable), 'az')
    az = az if os.access(az, os.X_OK) else shutil.which('az')
    if not az:
        raise FileOperationError('Cannot find the az executable to put in the unit.',
                                 'Run this with the az that the service should use, by its full path.')
    argv = [os.path.abspath(az), 'scheduled-events', 'watch',
            *options.with_programs_resolved().to_argv(state_dir=options.state_dir or config.SERVICE_STATE_DIR),
            '--only-show-errors']
    sys.stdout.write(render_unit(argv, stop_timeout_in_seconds=options.handler_timeout
                                 + config.SERVICE_STOP_MARGIN_IN_SECONDS, description='az scheduled-events watch',
                                 state_dir=config.SERVICE_STATE_DIR,
                                 environment=az_environment(config.SERVICE_STATE_DIR),
                                 environment_file=config.SERVICE_ENVIRONMENT_FILE))


def cycle_scale_set(cmd, *, resource_group_name, name, instance_ids=None,  # pylint: disable=too-many-locals
                    timeout_minutes=config.CYCLE_TIMEOUT_IN_SECONDS / 60, ignore_initial_health=False,
                    ignore_availability=False, max_unavailable=config.CYCLE_MAX_UNAVAILABLE, pause_seconds=0.0,
                    action=CycleAction.REIMAGE, health=HealthMode.AUTO, dry_run=False, state_file=None, resume=False,
                    only_outdated=False, include_up_to_date=False, before_script=None, after_script=None,
                    respect_maintenance=False, zone_by_zone=False, junit=None):
    import sys
    import time
    from azext_scheduledevents._client_factory import cf_compute
    from azext_scheduledevents.core.config import CycleSettings
    from azext_scheduledevents.core.cycle import Cycle
    from azext_scheduledevents.core.errors import CycleError
    settings = CycleSettings(action=action, max_unavailable=max_unavailable,
                             timeout_in_seconds=timeout_minutes * 60, pause_in_seconds=pause_seconds,
                             ignore_initial_health=ignore_initial_health, ignore_availability=ignore_availability,
                             health=health, only_outdated=only_outdated, include_up_to_date=include_up_to_date,
                             zone_by_zone=zone_by_zone)
    started = time.monotonic()

    def progress(text):
        # One line per step on stderr: readable live in a terminal and afterwards in a pipeline's log.
        if not cmd.cli_ctx.only_show_errors:
            sys.stderr.write(f'[{time.monotonic() - started:7.1f} s] {text}\n')
            sys.stderr.flush()
    compute = cf_compute(cmd.cli_ctx)
    maintenance = _maintenance_reader(cmd, compute, resource_group_name, name) if respect_maintenance else None
    cycle = Cycle(compute, resource_group_name, name, settings=settings, state_path=state_file, resume=resume,
                  on_progress=progress, maintenance=maintenance,
                  hooks=[hook for hook in (before_script, after_script) if hook is not None])
    message = None
    with az_errors():
        try:
            if dry_run:
                return cycle.plan(instance_ids).to_view()
            report = cycle.run(instance_ids)
        except CycleError as ex:
            if ex.report is None:
                raise
            # The report is the answer even when the cycle stopped: print it, then exit 1.
            report, message = ex.report, str(ex)
    if junit:
        _write_junit(junit, report)
    if message is not None:
        _fail_after_output(cmd, message)
    return report


def _maintenance_reader(cmd, compute, resource_group_name, name):
    """--respect-maintenance's source: Resource Graph where the scale set publishes there, else Run Command."""
    from azext_scheduledevents._client_factory import cf_arm_send
    from azext_scheduledevents.core.cycle.platformevents import from_instances, from_resource_graph
    from azext_scheduledevents.core.fleet import Fleet
    from azext_scheduledevents.core.imds import DEFAULT_API_VERSION
    from azext_scheduledevents.core.vocabulary import Route
    target = _target(cmd, resource_group_name, name, None, None)
    if _route(cmd, target, Route.AUTO) == Route.CONTROL_PLANE:
        return from_resource_graph(cf_arm_send(cmd.cli_ctx), target)
    return from_instances(Fleet(compute, resource_group_name, vmss_name=name), target, DEFAULT_API_VERSION)


def _write_junit(path, report):
    from azure.cli.core.azclierror import FileOperationError
    from azext_scheduledevents.core.atomicfile import write_atomic
    from azext_scheduledevents.core.cycle.junit import junit_xml
    try:
        write_atomic(path, junit_xml(report), file_mode=0o644)
    except OSError as ex:
        raise FileOperationError(f'cannot write the JUnit report to {path}: {ex}') from None


def agent_package(cmd, *, file):  # pylint: disable=unused-argument
    """Write the agent zipapp to ``file``; the same version always gives the same bytes."""
    import hashlib
    from azure.cli.core.azclierror import FileOperationError
    from azext_scheduledevents.agent.build import build_zipapp
    from azext_scheduledevents.core.atomicfile import write_atomic
    from azext_scheduledevents.version import VERSION
    agent = build_zipapp()
    try:
        write_atomic(file, agent, mode=0o755, file_mode=0o755)
    except OSError as ex:
        raise FileOperationError(f'Cannot write {file}: {ex.strerror or ex}') from None
    return {'File': file, 'Version': VERSION, 'Bytes': len(agent), 'Sha256': hashlib.sha256(agent).hexdigest()}


def agent_install(cmd, *, resource_group_name=None, vmss_name=None, vm_name=None, instance_ids=None,
                  max_parallel=None, instance_timeout=None, ignore_errors=False, print_cloud_init=False, **kwargs):
    """Install the agent with these watch options on every instance (or print cloud-init that does)."""
    import os
    import sys
    from azext_scheduledevents.agent import deploy
    from azext_scheduledevents.agent.build import build_zipapp
    from azext_scheduledevents.agent.remote import cloud_init, install_inputs
    from azext_scheduledevents.core.watchoptions import WatchOptions
    with az_errors():
        options = WatchOptions.from_arguments(kwargs)
    stop_timeout = options.handler_timeout + config.SERVICE_STOP_MARGIN_IN_SECONDS
    spec, secrets = install_inputs(options, os.environ, stop_timeout_in_seconds=stop_timeout)
    if print_cloud_init:
        for name in spec['secrets']:
            logger.warning('cloud-init carries no secret: put %s=... in /etc/default/azure-scheduled-events-agent '
                           '(mode 0600) on the image, or install with -g to send it.', name)
        sys.stdout.write(cloud_init(build_zipapp(), dict(spec, secrets=[])))
        return None
    _require_secrets(spec, secrets)
    fleet = _fleet(cmd, resource_group_name, vmss_name=vmss_name, vm_name=vm_name, max_parallel=max_parallel,
                   instance_timeout=instance_timeout)
    agent = build_zipapp()
    return _agent_rows(cmd, fleet, instance_ids=instance_ids, ignore_errors=ignore_errors, verb='Installed on',
                       work=lambda targets, on_result: deploy.install(fleet, targets, agent=agent, spec=spec,
                                                                      secrets=secrets, on_result=on_result))


def _require_secrets(spec, secrets):
    from azure.cli.core.azclierror import RequiredArgumentMissingError
    missing = sorted(set(spec['secrets']) - set(secrets))
    if missing:
        raise RequiredArgumentMissingError(f'{", ".join(missing)} is not set in this shell.',
                                           'Set it: install sends its value to each instance\'s root-only '
                                           'environment file, never in a script or command line.')


def agent_status(cmd, *, resource_group_name, vmss_name=None, vm_name=None, instance_ids=None, max_parallel=None,
                 instance_timeout=None, ignore_errors=False):
    from azext_scheduledevents.agent import deploy
    fleet = _fleet(cmd, resource_group_name, vmss_name=vmss_name, vm_name=vm_name, max_parallel=max_parallel,
                   instance_timeout=instance_timeout)
    return _agent_rows(cmd, fleet, instance_ids=instance_ids, ignore_errors=ignore_errors, verb='Asked',
                       work=lambda targets, on_result: deploy.status(fleet, targets, on_result=on_result))


def agent_uninstall(cmd, *, resource_group_name, vmss_name=None, vm_name=None, instance_ids=None, max_parallel=None,
                    instance_timeout=None, ignore_errors=False, purge=False):
    from azext_scheduledevents.agent import deploy
    fleet = _fleet(cmd, resource_group_name, vmss_name=vmss_name, vm_name=vm_name, max_parallel=max_parallel,
                   instance_timeout=instance_timeout)
    return _agent_rows(cmd, fleet, instance_ids=instance_ids, ignore_errors=ignore_errors, verb='Removed from',
                       work=lambda targets, on_result: deploy.uninstall(fleet, targets, purge=purge,
                                                                        on_result=on_result))


def _agent_rows(cmd, fleet, *, instance_ids, ignore_errors, verb, work):
    """``work(targets, on_result)`` on the fleet's instances; an instance whose row is not good fails the
    command after its output, unless ``ignore_errors``."""
    from azext_scheduledevents.agent.deploy import failed
    with az_errors():
        targets = fleet.targets(instance_ids)
        with _progress(cmd, len(targets), verb) as on_result:
            rows = work(targets, on_result)
    bad = failed(rows)
    for row in rows:
        if row['Instance'] in bad:
            logger.error('%s: %s', row['Instance'], row.get('Error') or row.get('Agent'))
    if bad and not ignore_errors:
        _fail_after_output(cmd, f'{len(bad)} of {len(rows)} instances are not as they should be: {", ".join(bad)}. '
                                'Use --ignore-errors to exit 0 anyway.')
    return rows


def run_emulator(cmd, *, host=config.EMULATOR_HOST, port=config.EMULATOR_PORT,  # pylint: disable=unused-argument
                 scenario=config.EMULATOR_SCENARIO, speed=config.EMULATOR_SPEED, vm_name=config.EMULATOR_VM_NAME,
                 terminate_notice=config.EMULATOR_TERMINATE_NOTICE, rate_limit=config.EMULATOR_RATE_LIMIT_PER_SECOND):
    from azure.cli.core.azclierror import FileOperationError
    from azext_scheduledevents.emulator.imds import ImdsEmulator, serve_until_stopped
    with az_errors():
        try:
            emulator = ImdsEmulator.from_scenario(scenario, host=host, port=port, vm_name=vm_name, speed=speed,
                                                  terminate_notice=terminate_notice, rate_limit=rate_limit)
        except OSError as ex:
            raise FileOperationError(f'Cannot listen on {host}:{port}: {ex.strerror or ex}',
                                     'Choose another --port, or 0 for any free port.') from None
    serve_until_stopped(emulator, describe=f' (scenario {scenario}, speed {speed:g})')


@contextmanager
def _imds(cmd, api_version, timeout):
    """An ``ImdsClient`` for the configured endpoint; core errors leave as az errors, each in one line."""
    from azext_scheduledevents.core.vmcommands import imds_client
    with az_errors(), imds_client(_endpoint(cmd), api_version=api_version, timeout=timeout) as client:
        yield client


def _endpoint(cmd):
    return cmd.cli_ctx.config.get(CONFIG_SECTION, ENDPOINT_OPTION, fallback=DEFAULT_ENDPOINT)
