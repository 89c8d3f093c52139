# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
# pylint: disable=line-too-long

from knack.arguments import CLIArgumentType

from azure.cli.core.commands.parameters import get_enum_type

from azext_scheduledevents.core.approval import APPROVE_MODES
from azext_scheduledevents.core.config import (CYCLE_ACTIONS, CYCLE_HEALTH_MODES, DEADLINE_MARGIN_IN_SECONDS, FANOUT_INSTANCE_TIMEOUT_IN_SECONDS,
                                               FANOUT_MAX_PARALLEL, HANDLER_TIMEOUT_IN_SECONDS,
                                               IMDS_DEADLINE_IN_SECONDS, WATCH_INTERVAL_IN_SECONDS)
from azext_scheduledevents.core.imds import DEFAULT_API_VERSION

event_id_type = CLIArgumentType(options_list=['--event-id'], help='Id (a GUID) of a scheduled event, as EventId shows it.')


def load_arguments(self, _):
    with self.argument_context('scheduled-events') as c:
        c.argument('api_version', options_list=['--api-version'], default=DEFAULT_API_VERSION,
                   help=f'Scheduled Events api-version. Older versions omit later fields (DurationInSeconds came in 2020-07-01). Default: {DEFAULT_API_VERSION}.')
        c.argument('timeout', options_list=['--timeout'], type=float, default=IMDS_DEADLINE_IN_SECONDS,
                   help='Seconds to keep trying before giving up. The first call on a VM enables Scheduled Events and can take up to two minutes. Default: %g.' % IMDS_DEADLINE_IN_SECONDS)

    for scope in ('scheduled-events list', 'scheduled-events approve'):
        with self.argument_context(scope) as c:
            # No configured default here: a default group must never turn an on-VM command into a fleet one.
            c.argument('resource_group_name', options_list=['--resource-group', '-g'],
                       help='Resource group of the scale set or VM: run on its instances through Run Command instead of on this VM.')
            c.argument('vmss_name', options_list=['--vmss-name'], help='Scale set whose instances to read or approve on.')
            c.argument('vm_name', options_list=['--vm-name'], help='Standalone VM to read or approve on.')
            c.argument('max_parallel', options_list=['--max-parallel'], type=int,
                       help=f'Run Command on at most this many instances at once. Default: {FANOUT_MAX_PARALLEL}.')
            c.argument('instance_timeout', options_list=['--instance-timeout'], type=float,
                       help=f'Seconds to wait for one instance before reporting it as timed out. Default: {FANOUT_INSTANCE_TIMEOUT_IN_SECONDS:g}.')

    with self.argument_context('scheduled-events list') as c:
        c.argument('instance_ids', options_list=['--instance-ids'], nargs='+', help='Only these scale-set instances. Default: all.')
        c.argument('ignore_errors', options_list=['--ignore-errors'], action='store_true',
                   help='Exit 0 even when some instances could not be read (they are still reported on stderr).')
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
        for kind in ('scheduled', 'started', 'completed'):
            c.argument(f'on_{kind}', options_list=[f'--on-{kind}'], action='append',
                       help=f'Command to run for each {kind} transition, without a shell; repeat for several, run in order. The event arrives as JSON on stdin and as SCHEDULED_EVENT_* variables.')
        c.argument('webhook', options_list=['--webhook'], action='append',
                   help='URL to POST every transition to, as a CloudEvents 1.0 structured event; repeat for several.')
        c.argument('event_grid_topic', options_list=['--event-grid-topic'],
                   help='Endpoint of a custom Event Grid topic to publish every transition to (Event Grid schema).')
        c.argument('event_grid_key_env', options_list=['--event-grid-key-env'],
                   help='Environment variable that holds the Event Grid topic key. Default: SCHEDULED_EVENTS_EVENT_GRID_KEY.')
        c.argument('syslog', options_list=['--syslog'], action='store_true', help='Also write every transition to the local syslog (and so the journal).')
        c.argument('syslog_socket', options_list=['--syslog-socket'], help='Syslog socket. Default: /dev/log.')
        c.argument('approve', arg_type=get_enum_type(APPROVE_MODES),
                   help='When to approve Scheduled events: never (default), after-handlers (only when every --on-scheduled command exited 0 in time), or immediately.')
        c.argument('approve_types', options_list=['--approve-types'], nargs='+',
                   help='Only approve events of these types (Freeze, Reboot, Redeploy, Preempt, Terminate). Default: all.')
        c.argument('approve_user_initiated', options_list=['--approve-user-initiated', '--approve-user'], action='store_true',
                   help='Also approve events a user started (EventSource User). By default only Platform events are approved.')
        c.argument('approver', arg_type=get_enum_type(['self', 'leader']),
                   help='self: this VM approves. leader: only the VM named first in Resources approves, the others run their handlers and wait. Default: self.')
        c.argument('interval', options_list=['--interval'], type=float, default=WATCH_INTERVAL_IN_SECONDS,
                   help='Seconds between polls. Default: 1, as the documentation recommends (Preempt gives 30 s of notice).')
        c.argument('all_resources', options_list=['--all-resources'], action='store_true',
                   help='Act on every event in the document, not only those whose Resources name this VM.')
        c.argument('event_types', options_list=['--event-types'], nargs='+', help='Only act on events of these types. Default: all.')
        c.argument('ignore_freeze_under', options_list=['--ignore-freeze-under'], type=float,
                   help='Ignore Freeze events whose DurationInSeconds is known and below this many seconds.')
        c.argument('handler_timeout', options_list=['--handler-timeout'], type=float, default=HANDLER_TIMEOUT_IN_SECONDS,
                   help='Longest a command may run. For a Scheduled event it is also cut to the time left before NotBefore minus --deadline-margin. Default: 300.')
        c.argument('deadline_margin', options_list=['--deadline-margin'], type=float, default=DEADLINE_MARGIN_IN_SECONDS,
                   help='Seconds before NotBefore by which Scheduled handlers must be done. Default: 5.')
        c.argument('state_dir', options_list=['--state-dir'],
                   help='Directory of the state that makes every step run once across restarts. Default: scheduled-events under the az config directory.')
        c.argument('once', options_list=['--once'], action='store_true', help='Poll once, act, and exit (for timers and cron).')
        c.argument('print_systemd_unit', options_list=['--print-systemd-unit'], action='store_true',
                   help='Print a systemd service unit that runs this exact watch command, and exit.')

    with self.argument_context('scheduled-events cycle') as c:
        c.argument('resource_group_name', options_list=['--resource-group', '-g'], help='Resource group of the scale set.')
        c.argument('name', options_list=['--name', '-n'], help='Name of the scale set.')
        c.argument('instance_ids', options_list=['--instance-ids'], nargs='+', help='Instances to cycle, in this order. Default: all, by instance id.')
        c.argument('timeout_minutes', options_list=['--timeout-minutes'], type=float, default=30.0,
                   help='Per instance: minutes from the moment its action is sent until it must be healthy again. Default: 30.')
        c.argument('ignore_initial_health', options_list=['--ignore-initial-health'], action='store_true',
                   help='Skip the pre-flight health check; unhealthy instances are still cycled (first).')
        c.argument('ignore_availability', options_list=['--ignore-availability'], action='store_true',
                   help='Cycle even when fewer than two instances are healthy, instead of scaling out by one first.')
        c.argument('max_unavailable', options_list=['--max-unavailable'], type=int, default=1,
                   help='How many instances may be below a healthy score at once, whatever the reason. Default: 1.')
        c.argument('pause_seconds', options_list=['--pause-seconds'], type=float, default=0.0, help='Seconds to wait between starting instances.')
        c.argument('action', arg_type=get_enum_type(CYCLE_ACTIONS), default='reimage', help='What to do to each instance. Default: reimage.')
        c.argument('health', arg_type=get_enum_type(CYCLE_HEALTH_MODES), default='auto',
                   help='auto: require the Application Health extension\'s HealthState when the model has the extension (score 7), otherwise warn and require provisioned and running (score 3); extension: require it; none: never.')
        c.argument('dry_run', options_list=['--dry-run'], action='store_true', help='Print the plan and change nothing.')
        c.argument('state_file', options_list=['--state-file'], help='File in which finished instances are recorded as the cycle goes (atomically).')
        c.argument('resume', options_list=['--resume'], action='store_true', help='Skip the instances the --state-file records as finished.')

    with self.argument_context('scheduled-events emulator') as c:
        c.argument('host', options_list=['--host'], default='127.0.0.1', help='Address to listen on. Default: 127.0.0.1.')
        c.argument('port', options_list=['--port'], type=int, default=8169, help='Port to listen on; 0 picks a free one. Default: 8169.')
        c.argument('scenario', options_list=['--scenario'], default='empty',
                   help='A built-in scenario (empty, freeze, reboot, user-reboot, redeploy, preempt, terminate, hardware-failure, canceled, rescheduled, multiple, vmss) or the path of a scenario JSON file. Default: empty.')
        c.argument('speed', options_list=['--speed'], type=float, default=1.0,
                   help='Time compression: 60 turns a 15-minute notice into 15 seconds. Default: 1 (real time).')
        c.argument('vm_name', options_list=['--vm-name'], default='web_0',
                   help='compute.name of the emulated VM: web_0 is instance 0 of scale set web. Default: web_0.')
        c.argument('terminate_notice', options_list=['--terminate-notice'], default='PT5M',
                   help="Notice of Terminate events, as the scale set's notBeforeTimeout: PT5M to PT15M. Default: PT5M.")
        c.argument('rate_limit', options_list=['--rate-limit'], type=int, default=5,
                   help='Requests a second before IMDS answers 429; 0 turns the limit off. Default: 5, as IMDS.')
