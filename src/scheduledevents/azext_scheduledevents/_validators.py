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
