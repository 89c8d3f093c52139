# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
# pylint: disable=line-too-long
"""Arguments. Defaults come from ``core/config.py`` (or the command's signature, which reads it there); az
appends "Default: X." to a help text by itself, so no text says it again."""

from knack.arguments import CLIArgumentType

from azure.cli.core.commands.parameters import get_enum_type

from azext_scheduledevents.core.config import (FANOUT_INSTANCE_TIMEOUT_IN_SECONDS, FANOUT_MAX_PARALLEL,
                                               IMDS_DEADLINE_IN_SECONDS)
from azext_scheduledevents.core.imds import DEFAULT_API_VERSION
from azext_scheduledevents.core.vocabulary import CycleAction, EventStatus, HealthMode, Route
from azext_scheduledevents.core.watchoptions import FLAG, LIST, REPEAT, WatchOptions
from azext_scheduledevents.emulator.scenarios import builtin_scenarios

event_id_type = CLIArgumentType(options_list=['--event-id'], help='Id (a GUID) of a scheduled event, as EventId shows it.')


def load_arguments(self, _):
    with self.argument_context('scheduled-events') as c:
        c.argument('api_version', options_list=['--api-version'], default=DEFAULT_API_VERSION,
                   help='Scheduled Events api-version. Older versions omit later fields (DurationInSeconds came in 2020-07-01).')
        c.argument('timeout', options_list=['--timeout'], type=float, default=IMDS_DEADLINE_IN_SECONDS,
                   help='Seconds to keep trying before giving up. The first call on a VM enables Scheduled Events and can take up to two minutes.')

    for scope in ('scheduled-events list', 'scheduled-events approve', 'scheduled-events agent install',
                  'scheduled-events agent status', 'scheduled-events agent uninstall'):
        with self.argument_context(scope) as c:
            # No configured default here: a default group must never turn an on-VM command into a fleet one.
            c.argument('resource_group_name', options_list=['--resource-group', '-g'],
                       help='Resource group of the scale set or VM: run on its instances through Run Command instead of on this VM.')
            c.argument('vmss_name', options_list=['--vmss-name'], help='Scale set whose instances to read or approve on.')
            c.argument('vm_name', options_list=['--vm-name'], help='Standalone VM to read or approve on.')
            # No argparse default: the validator tells a fleet option given without -g from one left out.
            c.argument('max_parallel', options_list=['--max-parallel'], type=int,
                       help=f'Run Command on at most this many instances at once ({FANOUT_MAX_PARALLEL} if not given).')
            c.argument('instance_timeout', options_list=['--instance-timeout'], type=float,
                       help=f'Seconds to wait for one instance before reporting it as timed out ({FANOUT_INSTANCE_TIMEOUT_IN_SECONDS:g} if not given).')

    for scope in ('scheduled-events list', 'scheduled-events agent install', 'scheduled-events agent status',
                  'scheduled-events agent uninstall'):
        with self.argument_context(scope) as c:
            c.argument('instance_ids', options_list=['--instance-ids'], nargs='+', help='Only these scale-set instances. Default: all.')
            c.argument('ignore_errors', options_list=['--ignore-errors'], action='store_true',
                       help='Exit 0 even when some instances failed (they are still reported on stderr).')

    with self.argument_context('scheduled-events list') as c:
        c.argument('this_vm', options_list=['--this-vm'], action='store_true',
                   help="Only events whose Resources name this VM (instance metadata compute.name). Events for a whole availability set reach every VM in it.")
        c.argument('document', options_list=['--document'], action='store_true',
                   help='Print the raw document, with DocumentIncarnation, instead of the list of events.')

    with self.argument_context('scheduled-events show') as c:
        c.argument('event_id', event_id_type)

    with self.argument_context('scheduled-events approve') as c:
        c.argument('event_ids', event_id_type, nargs='+',
                   help='Ids (GUIDs) of the events to approve. Approving starts an event for every VM in its Resources.')
        c.argument('force', options_list=['--force'], action='store_true',
                   help='Send the approval even for ids that are not in the current document (on this VM only).')
        c.argument('instance_id', options_list=['--instance-id'],
                   help='With --vmss-name: approve on this instance. Default: the first instance that sees the event.')

    with self.argument_context('scheduled-events watch') as c:
        _watch_options(c)
        c.argument('print_systemd_unit', options_list=['--print-systemd-unit'], action='store_true',
                   help='Print a systemd service unit that runs this exact watch command, and exit.')

    _load_cycle_arguments(self)

    with self.argument_context('scheduled-events emulator') as c:
        c.argument('host', options_list=['--host'], help='Address to listen on.')
        c.argument('port', options_list=['--port'], type=int, help='Port to listen on; 0 picks a free one.')
        c.argument('scenario', options_list=['--scenario'],
                   help=f'A built-in scenario ({", ".join(builtin_scenarios())}) or the path of a scenario JSON file.')
        c.argument('speed', options_list=['--speed'], type=float,
                   help='Time compression: 60 turns a 15-minute notice into 15 seconds; 1 is real time.')
        c.argument('vm_name', options_list=['--vm-name'], help='compute.name of the emulated VM: web_0 is instance 0 of scale set web.')
        c.argument('terminate_notice', options_list=['--terminate-notice'],
                   help="Notice of Terminate events, as the scale set's notBeforeTimeout: PT5M to PT15M.")
        c.argument('rate_limit', options_list=['--rate-limit'], type=int,
                   help='Requests a second before IMDS answers 429, as IMDS does; 0 turns the limit off.')

    _load_control_plane_arguments(self)
    _load_agent_arguments(self)


def _load_control_plane_arguments(self):
    for scope in ('scheduled-events list', 'scheduled-events approve', 'scheduled-events policy show'):
        with self.argument_context(scope) as c:
            c.argument('availability_set', options_list=['--availability-set'],
                       help='Availability set whose events to read or approve (through the control plane only).')
    for scope in ('scheduled-events list', 'scheduled-events approve'):
        with self.argument_context(scope) as c:
            c.argument('route', arg_type=get_enum_type(Route),
                       help='run-command: on every instance through Run Command; control-plane: Resource Graph and the Maintenance acknowledge API, where the target publishes there (see policy show); auto (the default with -g): control-plane when the target\'s policy publishes to Resource Graph, else run-command.')
    with self.argument_context('scheduled-events list') as c:
        c.argument('subscriptions', options_list=['--subscriptions'], nargs='+',
                   help='With --route control-plane and no -g: only these subscriptions. Default: every subscription the login sees.')
        c.argument('management_groups', options_list=['--management-groups'], nargs='+',
                   help='With --route control-plane and no -g: the subscriptions of these management groups.')
        c.argument('statuses', options_list=['--status'], nargs='+', arg_type=get_enum_type(EventStatus),
                   help='Control-plane route: the statuses to list; Completed and Canceled are the history IMDS never shows. Default: Scheduled Started.')
    with self.argument_context('scheduled-events policy show') as c:
        c.argument('resource_group_name', options_list=['--resource-group', '-g'], help='Resource group of the target.')
        c.argument('vmss_name', options_list=['--vmss-name'], help='Scale set whose policy to show.')
        c.argument('vm_name', options_list=['--vm-name'], help='VM whose policy to show.')


def _load_agent_arguments(self):
    with self.argument_context('scheduled-events agent package') as c:
        # --output is az's own (the output format), so the file is --file.
        c.argument('file', options_list=['--file', '-f'], help='Where to write the agent (a Python zipapp).')

    with self.argument_context('scheduled-events agent install') as c:
        _watch_options(c)
        c.argument('print_cloud_init', options_list=['--print-cloud-init'], action='store_true',
                   help='Print cloud-init user data that installs the agent with these options on a new VM, and exit.')

    with self.argument_context('scheduled-events agent uninstall') as c:
        c.argument('purge', options_list=['--purge'], action='store_true', help='Also delete the agent\'s state.')


def _watch_options(c):
    """Every watch option of ``WatchOptions``, in the context ``c`` (watch, and agent install)."""
    for spec in WatchOptions.specs():
        c.extra(spec.dest, **_watch_argument(spec))


def _watch_argument(spec):
    """knack's keywords for one watch option of ``WatchOptions``."""
    kwargs = {'options_list': list(spec.flags), 'help': spec.help}
    if spec.choices is not None:
        kwargs['arg_type'] = get_enum_type(spec.choices)
    if spec.kind == FLAG:
        kwargs['action'] = 'store_true'
    elif spec.kind == REPEAT:
        kwargs['action'] = 'append'
    elif spec.kind == LIST:
        kwargs['nargs'] = '+'
    elif spec.type is not str:
        kwargs['type'] = spec.type
    # Shown by az as "Default: X."; empty lists and off switches say nothing.
    if spec.default not in (None, (), False):
        kwargs['default'] = spec.default
    return kwargs


def _load_cycle_arguments(self):
    with self.argument_context('scheduled-events cycle') as c:
        c.argument('resource_group_name', options_list=['--resource-group', '-g'], help='Resource group of the scale set.')
        c.argument('name', options_list=['--name', '-n'], help='Name of the scale set.')
        c.argument('instance_ids', options_list=['--instance-ids'], nargs='+', help='Instances to cycle, in this order. Default: all, by instance id.')
        c.argument('timeout_minutes', options_list=['--timeout-minutes'], type=float,
                   help='Per instance: minutes from the moment its action is sent until it must be healthy again.')
        c.argument('ignore_initial_health', options_list=['--ignore-initial-health'], action='store_true',
                   help='Skip the pre-flight health check; unhealthy instances are still cycled (first).')
        c.argument('ignore_availability', options_list=['--ignore-availability'], action='store_true',
                   help='Cycle even when fewer than two instances are healthy, instead of scaling out by one first.')
        c.argument('max_unavailable', options_list=['--max-unavailable'], type=int,
                   help='How many instances may be below a healthy score at once, whatever the reason.')
        c.argument('pause_seconds', options_list=['--pause-seconds'], type=float, help='Seconds to wait between starting instances.')
        c.argument('action', arg_type=get_enum_type(CycleAction), help='What to do to each instance.')
        c.argument('health', arg_type=get_enum_type(HealthMode),
                   help='auto: require the Application Health extension\'s HealthState when the model has the extension (score 7), otherwise warn and require provisioned and running (score 3); extension: require it; none: never.')
        c.argument('dry_run', options_list=['--dry-run'], action='store_true', help='Print the plan and change nothing.')
        c.argument('state_file', options_list=['--state-file'], help='File in which finished instances are recorded as the cycle goes (atomically).')
        c.argument('resume', options_list=['--resume'], action='store_true', help='Skip the instances the --state-file records as finished.')
        c.argument('only_outdated', options_list=['--only-outdated'], action='store_true',
                   help='Cycle only the instances not on the scale set\'s latest model (latestModelApplied false); --action update does so by default.')
        c.argument('include_up_to_date', options_list=['--include-up-to-date'], action='store_true',
                   help='With --action update or --only-outdated: cycle the instances already on the latest model too.')
        c.argument('before_script', options_list=['--before-script'],
                   help='A script file (or inline text) run on each instance through Run Command before its action, to drain it; a non-zero exit stops the cycle with that instance untouched.')
        c.argument('after_script', options_list=['--after-script'],
                   help='A script file (or inline text) run on each instance through Run Command once it is healthy again, as a smoke test; a non-zero exit stops the cycle before the next instance.')
        c.argument('respect_maintenance', options_list=['--respect-maintenance'], action='store_true',
                   help='Count an instance under a Started scheduled event against --max-unavailable until the event leaves, and hold it back; read through Resource Graph where the scale set publishes there, else through Run Command once per batch.')
        c.argument('zone_by_zone', options_list=['--zone-by-zone'], action='store_true',
                   help='Never cycle instances of two availability zones at once: zones in order, instances by id within each.')
        c.argument('junit', options_list=['--junit'], help='Also write the report as JUnit XML to this file (one test case per instance), for Azure DevOps and GitHub test reporting.')
