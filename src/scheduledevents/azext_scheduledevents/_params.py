# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
# pylint: disable=line-too-long

from knack.arguments import CLIArgumentType

from azext_scheduledevents.core.config import IMDS_DEADLINE_IN_SECONDS
from azext_scheduledevents.core.imds import DEFAULT_API_VERSION

event_id_type = CLIArgumentType(options_list=['--event-id'], help='Id (a GUID) of a scheduled event, as EventId shows it.')


def load_arguments(self, _):
    with self.argument_context('scheduled-events') as c:
        c.argument('api_version', options_list=['--api-version'], default=DEFAULT_API_VERSION,
                   help=f'Scheduled Events api-version. Older versions omit later fields (DurationInSeconds came in 2020-07-01). Default: {DEFAULT_API_VERSION}.')
        c.argument('timeout', options_list=['--timeout'], type=float, default=IMDS_DEADLINE_IN_SECONDS,
                   help='Seconds to keep trying before giving up. The first call on a VM enables Scheduled Events and can take up to two minutes. Default: %g.' % IMDS_DEADLINE_IN_SECONDS)

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
                   help='Send the approval even for ids that are not in the current document.')

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
