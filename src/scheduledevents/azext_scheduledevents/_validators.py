# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Argument checks that run before anything is sent anywhere."""

import os
import re

from azure.cli.core.azclierror import (InvalidArgumentValueError, MutuallyExclusiveArgumentError,
                                       RequiredArgumentMissingError)

from azext_scheduledevents._errors import RECOMMEND_LIST, az_errors
from azext_scheduledevents.core.errors import InvalidEventIdError
from azext_scheduledevents.core.events import validate_event_id
from azext_scheduledevents.core.log import get_logger

logger = get_logger(__name__)


def validate_fleet(namespace):
    """-g with exactly one of --vmss-name, --vm-name (and --availability-set); the fleet options only with
    them; the options of one route only with it."""
    group = getattr(namespace, 'resource_group_name', None)
    named = [n for n in (getattr(namespace, 'vmss_name', None), getattr(namespace, 'vm_name', None),
                         getattr(namespace, 'availability_set', None)) if n]
    fleet_only = [option for name, option in (('instance_ids', '--instance-ids'), ('instance_id', '--instance-id'),
                                              ('max_parallel', '--max-parallel'),
                                              ('instance_timeout', '--instance-timeout'))
                  if getattr(namespace, name, None)]
    _check_route(namespace, fleet_only)
    if not group:
        if named or fleet_only:
            raise RequiredArgumentMissingError('--resource-group/-g is required with --vmss-name, --vm-name, '
                                               '--availability-set and '
                                               + ', '.join(fleet_only or ['the fleet options']) + '.')
        return
    vm = getattr(namespace, 'vm_name', None)
    if len(named) != 1:
        raise MutuallyExclusiveArgumentError('With --resource-group, give exactly one of --vmss-name, --vm-name and '
                                             '--availability-set.')
    if vm and {'--instance-ids', '--instance-id'} & set(fleet_only):
        raise MutuallyExclusiveArgumentError('--instance-ids and --instance-id go with --vmss-name, not --vm-name.')
    if getattr(namespace, 'max_parallel', None) is not None and namespace.max_parallel < 1:
        raise InvalidArgumentValueError('--max-parallel must be at least 1.')
    if getattr(namespace, 'instance_timeout', None) is not None and namespace.instance_timeout <= 0:
        raise InvalidArgumentValueError('--instance-timeout must be a number of seconds greater than 0.')
    if getattr(namespace, 'force', False) and getattr(namespace, 'route', None) != 'control-plane':
        raise MutuallyExclusiveArgumentError('--force with --resource-group goes with --route control-plane (it skips '
                                             'the Resource Graph lookup); through Run Command it does not apply.')


def _check_route(namespace, fleet_only):
    """The options of the control-plane route without -g (--subscriptions, --management-groups) and of one
    route only (--status; the Run Command options) where that route is not the one taken."""
    route, group = getattr(namespace, 'route', None), getattr(namespace, 'resource_group_name', None)
    scopes = [o for n, o in (('subscriptions', '--subscriptions'), ('management_groups', '--management-groups'))
              if getattr(namespace, n, None)]
    if scopes and (group or route != 'control-plane'):
        raise MutuallyExclusiveArgumentError(f'{" and ".join(scopes)} go with --route control-plane and no '
                                             '--resource-group (every event those scopes hold).')
    if route == 'control-plane':
        others = fleet_only + [o for n, o in (('document', '--document'), ('this_vm', '--this-vm'))
                               if getattr(namespace, n, None)]
        if others:
            raise MutuallyExclusiveArgumentError(f'{", ".join(others)} go with the Run Command route, not '
                                                 '--route control-plane.')
        if not group and getattr(namespace, 'event_ids', None):
            raise RequiredArgumentMissingError('Approving through the control plane needs the target: -g and '
                                               '--vmss-name, --vm-name or --availability-set.')
    elif getattr(namespace, 'statuses', None) and (route == 'run-command' or not group):
        raise MutuallyExclusiveArgumentError('--status goes with the control-plane route (IMDS shows only Scheduled '
                                             'and Started events).')


def validate_list(namespace):
    validate_imds_options(namespace)
    validate_fleet(namespace)


def validate_imds_options(namespace):
    from azext_scheduledevents.core.vmcommands import check_imds_options
    with az_errors():
        check_imds_options(api_version=getattr(namespace, 'api_version', None),
                           timeout=getattr(namespace, 'timeout', None))
    if getattr(namespace, 'event_id', None) is not None:
        namespace.event_id = _event_id(namespace.event_id)


def validate_approve(namespace):
    validate_imds_options(namespace)
    validate_fleet(namespace)
    namespace.event_ids = [_event_id(event_id) for event_id in namespace.event_ids]


def validate_watch(namespace):
    """The options make a ``WatchOptions`` and every handler can run; a unit may be printed without the
    secrets its service will read from its own environment."""
    from azext_scheduledevents.core.watchoptions import WatchOptions
    validate_imds_options(namespace)
    with az_errors():
        options = WatchOptions.from_arguments(vars(namespace))
        options.commands()
        if not namespace.print_systemd_unit:
            options.sink_options()
            options.coordination_container()
    for warning in options.warnings():
        logger.warning('%s', warning)


def validate_policy_target(namespace):
    if not getattr(namespace, 'resource_group_name', None):
        raise RequiredArgumentMissingError('--resource-group/-g and --vmss-name, --vm-name or --availability-set '
                                           'are required.')
    validate_fleet(namespace)


def validate_agent_fleet(namespace):
    """The agent commands act on a fleet: -g and one of --vmss-name and --vm-name are required."""
    if not getattr(namespace, 'resource_group_name', None):
        raise RequiredArgumentMissingError('--resource-group/-g and --vmss-name or --vm-name are required.')
    validate_fleet(namespace)


def validate_agent_install(namespace):
    """The watch options make a ``WatchOptions``; the fleet is required unless only cloud-init is printed."""
    from azext_scheduledevents.core.watchoptions import WatchOptions
    if not namespace.print_cloud_init:
        validate_agent_fleet(namespace)
    with az_errors():
        options = WatchOptions.from_arguments(vars(namespace))
    for warning in options.warnings():
        logger.warning('%s', warning)


def validate_cycle(namespace):
    if namespace.max_unavailable < 1:
        raise InvalidArgumentValueError('--max-unavailable must be at least 1.')
    if namespace.timeout_minutes <= 0 or namespace.pause_seconds < 0:
        raise InvalidArgumentValueError('--timeout-minutes must be above 0 and --pause-seconds 0 or more.')
    if namespace.resume and not namespace.state_file:
        raise RequiredArgumentMissingError('--resume needs the --state-file the interrupted run wrote.')
    if namespace.include_up_to_date and not (namespace.only_outdated or namespace.action == 'update'):
        raise MutuallyExclusiveArgumentError('--include-up-to-date goes with --action update or --only-outdated.')
    for option in ('before_script', 'after_script'):
        value = getattr(namespace, option)
        if value is not None:
            setattr(namespace, option, _hook(option, value))


# One word that names a script file here (not a program on the VM, which starts with /): a typo in it must
# not become a one-word script that fails on the first instance.
_SCRIPT_FILE = re.compile(r'^[^/\s][^\s]*\.(sh|bash|ps1|py)$')


def _hook(option, value):
    """A hook option's value: a file's path (read here, so a missing one fails before anything starts) or
    the script itself."""
    from azext_scheduledevents.core.cycle import Hook
    from azext_scheduledevents.core.errors import InvalidSettingError
    from azext_scheduledevents.core.vocabulary import HookKind
    kind = HookKind(option.replace('_', '-'))
    source = 'inline'
    if os.path.isfile(value):
        try:
            with open(value, encoding='utf-8') as handle:
                source, value = value, handle.read()
        except (OSError, UnicodeDecodeError) as ex:
            raise InvalidArgumentValueError(f'--{kind}: cannot read {value}: {ex}') from None
    elif _SCRIPT_FILE.match(value):
        raise InvalidArgumentValueError(f'--{kind}: no file {value} (give the path of a script here, or the '
                                        'script\'s own text)')
    try:
        return Hook(kind, source, value)
    except InvalidSettingError as ex:
        raise InvalidArgumentValueError(f'--{kind}: {ex}') from None


def validate_emulator(namespace):
    from azext_scheduledevents.emulator.scenarios import parse_terminate_notice
    if not 0 <= namespace.port <= 65535:
        raise InvalidArgumentValueError('--port must be from 0 to 65535.')
    if namespace.speed <= 0:
        raise InvalidArgumentValueError('--speed must be greater than 0.')
    if namespace.rate_limit < 0:
        raise InvalidArgumentValueError('--rate-limit must be 0 (no limit) or more.')
    with az_errors():
        namespace.terminate_notice = parse_terminate_notice(namespace.terminate_notice)


def _event_id(value):
    try:
        return validate_event_id(value.strip())
    except InvalidEventIdError as ex:
        raise InvalidArgumentValueError(str(ex), RECOMMEND_LIST) from None
