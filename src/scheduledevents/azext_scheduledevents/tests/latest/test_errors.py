# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The error tree and the one table that turns each core error into an az error with a recommendation."""

import inspect

import pytest
from azure.cli.core import azclierror
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from azext_scheduledevents._errors import ERROR_TABLE, az_error
from azext_scheduledevents.core import errors
from azext_scheduledevents.core.arm import arm_errors

CORE_ERRORS = sorted((cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                      if issubclass(cls, Exception) and cls.__module__ == errors.__name__), key=lambda c: c.__name__)


@pytest.mark.parametrize('error_class', CORE_ERRORS, ids=[c.__name__ for c in CORE_ERRORS])
def test_every_core_error_maps_to_an_az_error_with_a_recommendation(error_class):
    assert issubclass(error_class, errors.ScheduledEventsError)
    mapped = az_error(error_class('it broke'))
    assert isinstance(mapped, azclierror.AzCLIError) and mapped.error_msg == 'it broke'
    assert mapped.recommendations and all(text.strip() for text in mapped.recommendations)


def test_the_table_is_most_specific_first():
    """A class listed after one of its bases would never be reached."""
    classes = [core_class for core_class, _, _ in ERROR_TABLE]
    for index, core_class in enumerate(classes):
        assert not any(issubclass(core_class, earlier) for earlier in classes[:index]), core_class.__name__
    assert set(CORE_ERRORS) <= set(classes)


@pytest.mark.parametrize('error, expected', [
    (errors.TargetNotFoundError('no web', resource_group='rg', vmss_name='web'),
     'az vmss list-instances -g rg -n web -o table'),
    (errors.StateLockedError('locked', directory='/var/lib/x', pid=4242), 'kill 4242'),
    (errors.ImdsUnreachableError('down'), 'az config set scheduled_events.imds_endpoint='),
], ids=['unknown-instance', 'state-locked', 'not-a-vm'])
def test_recommendations_name_the_fix(error, expected):
    assert expected in az_error(error).recommendations[0]


def http_error(status, code='Code', retry_after=None):
    class Response:
        status_code = status
        reason = 'Reason'
        headers = {'Retry-After': retry_after} if retry_after else {}

        def text(self):
            return ''
    ex = (ResourceNotFoundError if status == 404 else HttpResponseError)(message=f'({code}) it failed\nmore')
    ex.status_code, ex.response = status, Response()
    return ex


@pytest.mark.parametrize('raised, expected, status', [
    (http_error(404, 'ResourceNotFound'), errors.TargetNotFoundError, 404),
    (http_error(403, 'AuthorizationFailed'), errors.ArmAuthorizationError, 403),
    (http_error(429, 'TooManyRequests', retry_after='7'), errors.ArmError, 429),
    (ClientAuthenticationError('no token'), errors.ArmAuthorizationError, None),
], ids=['404', '403', '429', 'no-token'])
def test_arm_errors_are_translated_in_one_place(raised, expected, status):
    with pytest.raises(expected) as caught, arm_errors(resource_group='rg', vmss_name='web'):
        raise raised
    assert type(caught.value) is expected and caught.value.status == status
    assert '\n' not in str(caught.value)
    if status == 429:
        assert caught.value.retry_after == 7.0
    if status == 404:
        assert (caught.value.resource_group, caught.value.vmss_name) == ('rg', 'web')
