# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Argument checks that run before anything is sent anywhere."""

import re

from azure.cli.core.azclierror import InvalidArgumentValueError

from azext_scheduledevents.core.errors import InvalidEventIdError
from azext_scheduledevents.core.events import validate_event_id

_API_VERSION = re.compile(r'^\d{4}-\d{2}-\d{2}$')


def validate_fleet(namespace):
    """-g with exactly one of --vmss-name and --vm-name; the fleet options only with them."""
    from azure.cli.core.azclierror import MutuallyExclusiveArgumentError, RequiredArgumentMissingError
    group = getattr(namespace, 'resource_group_name', None)
    vmss, vm = getattr(namespace, 'vmss_name', None), getattr(namespace, 'vm_name', None)
    fleet_only = [option for name, option in (('instance_ids', '--instance-ids'), ('instance_id', '--instance-id'),
                                              ('max_parallel', '--max-parallel'),
                                              ('instance_timeout', '--instance-timeout'))
                  if getattr(namespace, name, None)]
    if not group:
        if vmss or vm or fleet_only:
            raise RequiredArgumentMissingError('--resource-group/-g is required with --vmss-name, --vm-name and '
                                               + ', '.join(fleet_only or ['the fleet options']) + '.')
        return
    if bool(vmss) == bool(vm):
        raise MutuallyExclusiveArgumentError('With --resource-group, give exactly one of --vmss-name and --vm-name.')
    if vm and {'--instance-ids', '--instance-id'} & set(fleet_only):
        raise MutuallyExclusiveArgumentError('--instance-ids and --instance-id go with --vmss-name, not --vm-name.')
    if getattr(namespace, 'max_parallel', None) is not None and namespace.max_parallel < 1:
        raise InvalidArgumentValueError('--max-parallel must be at least 1.')
    if getattr(namespace, 'instance_timeout', None) is not None and namespace.instance_timeout <= 0:
        raise InvalidArgumentValueError('--instance-timeout must be a number of seconds greater than 0.')
    if getattr(namespace, 'force', False):
        raise MutuallyExclusiveArgumentError('--force approves on this VM only; it does not go with --resource-group.')


def validate_list(namespace):
    validate_imds_options(namespace)
    validate_fleet(namespace)


def validate_imds_options(namespace):
    api_version = getattr(namespace, 'api_version', None)
    if api_version is not None and not _API_VERSION.match(api_version):
        raise InvalidArgumentValueError(f'--api-version {api_version!r} is not a date such as 2020-07-01.')
    timeout = getattr(namespace, 'timeout', None)
    if timeout is not None and timeout <= 0:
        raise InvalidArgumentValueError('--timeout must be a number of seconds greater than 0.')
    if getattr(namespace, 'event_id', None) is not None:
        namespace.event_id = _event_id(namespace.event_id)


def validate_approve(namespace):
    validate_imds_options(namespace)
    validate_fleet(namespace)
    namespace.event_ids = [_event_id(event_id) for event_id in namespace.event_ids]


def validate_watch(namespace):
    from urllib.parse import urlsplit
    from knack.log import get_logger
    from azext_scheduledevents.core.events import EventType
    validate_imds_options(namespace)
    for name, option, minimum in (('interval', '--interval', 0), ('handler_timeout', '--handler-timeout', 0)):
        if getattr(namespace, name) <= minimum:
            raise InvalidArgumentValueError(f'{option} must be a number of seconds greater than 0.')
    for name, option in (('deadline_margin', '--deadline-margin'), ('ignore_freeze_under', '--ignore-freeze-under')):
        value = getattr(namespace, name)
        if value is not None and value < 0:
            raise InvalidArgumentValueError(f'{option} cannot be negative.')
    for url, option in [(u, '--webhook') for u in namespace.webhook or ()] + \
            [(namespace.event_grid_topic, '--event-grid-topic')] * bool(namespace.event_grid_topic):
        parts = urlsplit(url)
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise InvalidArgumentValueError(f'{option} must be an http(s) URL.')
    known = set(EventType._value2member_map_)
    for option, types in (('--event-types', namespace.event_types), ('--approve-types', namespace.approve_types)):
        unknown = sorted(set(types or ()) - known)
        if unknown:
            # Azure may add types; a name this version does not know is allowed, but is likely a typo.
            get_logger(__name__).warning('%s: %s is not a type this version knows (%s).', option,
                                         ', '.join(unknown), ', '.join(sorted(known)))


def validate_cycle(namespace):
    from azure.cli.core.azclierror import RequiredArgumentMissingError
    if namespace.max_unavailable < 1:
        raise InvalidArgumentValueError('--max-unavailable must be at least 1.')
    if namespace.timeout_minutes <= 0 or namespace.pause_seconds < 0:
        raise InvalidArgumentValueError('--timeout-minutes must be above 0 and --pause-seconds 0 or more.')
    if namespace.resume and not namespace.state_file:
        raise RequiredArgumentMissingError('--resume needs the --state-file the interrupted run wrote.')


def validate_emulator(namespace):
    from azext_scheduledevents.emulator.scenarios import ScenarioError, parse_terminate_notice
    if not 0 <= namespace.port <= 65535:
        raise InvalidArgumentValueError('--port must be from 0 to 65535.')
    if namespace.speed <= 0:
        raise InvalidArgumentValueError('--speed must be greater than 0.')
    if namespace.rate_limit < 0:
        raise InvalidArgumentValueError('--rate-limit must be 0 (no limit) or more.')
    try:
        namespace.terminate_notice = parse_terminate_notice(namespace.terminate_notice)
    except ScenarioError as ex:
        raise InvalidArgumentValueError(f'--terminate-notice: {ex}.') from None


def _event_id(value):
    try:
        return validate_event_id(value.strip())
    except InvalidEventIdError as ex:
        raise InvalidArgumentValueError(str(ex), 'Run "az scheduled-events list" to see the ids of current '
                                        'events.') from None
