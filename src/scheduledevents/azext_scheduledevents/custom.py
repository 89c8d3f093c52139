# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The commands: read az settings, call the core, turn core errors into az errors, return plain data."""

from contextlib import contextmanager
from datetime import datetime, timezone

from knack.log import get_logger

from azext_scheduledevents.core import errors
from azext_scheduledevents.core.config import RetryPolicy
from azext_scheduledevents.core.imds import DEFAULT_ENDPOINT, ImdsClient

logger = get_logger(__name__)

CONFIG_SECTION = 'scheduled_events'
ENDPOINT_OPTION = 'imds_endpoint'
_RECOMMEND_LIST = 'Run "az scheduled-events list" to see the events in the current document.'
_RECOMMEND_ENDPOINT = ('Run this on an Azure VM, or point az at an emulator: '
                       'az config set scheduled_events.imds_endpoint=http://127.0.0.1:8169')


def list_events(cmd, this_vm=False, document=False, api_version=None, timeout=None):
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


def approve_events(cmd, event_ids, force=False, api_version=None, timeout=None):
    from azext_scheduledevents.core.approval import approve_events as approve
    with _imds(cmd, api_version, timeout) as client:
        return [result.to_dict() for result in approve(client, event_ids, force=force)]


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
    from azure.cli.core import azclierror
    endpoint = cmd.cli_ctx.config.get(CONFIG_SECTION, ENDPOINT_OPTION, fallback=DEFAULT_ENDPOINT)
    try:
        kwargs = {'api_version': api_version} if api_version else {}
        if timeout:
            kwargs['retry'] = RetryPolicy(deadline_in_seconds=timeout)
        with ImdsClient(endpoint, **kwargs) as client:
            yield client
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
