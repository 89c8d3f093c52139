# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The one place where ARM's failures become the core's own errors (``errors.py``).

The fan-out and the cycle call ARM through the SDK and wrap those calls in ``arm_errors()``; the control
plane calls REST through a ``send`` function the caller gives (az's authenticated pipeline) and passes
each ``ArmAnswer`` through ``check()``. Nothing above them sees an SDK exception or a raw answer.

    with arm_errors(resource_group='rg', vmss_name='web'):
        compute.virtual_machine_scale_sets.get('rg', 'web')     # a 404 -> TargetNotFoundError
    check(send('GET', '/subscriptions/S/resourcegroups/rg/...', query={'api-version': '2024-11-01'}))
"""

from collections import namedtuple
from contextlib import contextmanager

from .errors import ArmAuthorizationError, ArmError, TargetNotFoundError
from .times import retry_after_seconds

# Statuses worth waiting out (throttling, service faults), as ARM's own guidance says.
RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@contextmanager
def arm_errors(*, resource_group=None, vmss_name=None, vm_name=None):
    """Translate azure-core exceptions raised inside into ``ArmError`` and its subclasses.

    ``resource_group`` and the target's name go into a ``TargetNotFoundError`` for its recommendation.
    """
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
    try:
        yield
    except ClientAuthenticationError as ex:
        # Before HttpResponseError, its base: no token could be had, or ARM refused the one sent.
        raise ArmAuthorizationError(first_line(ex), status=getattr(ex, 'status_code', None)) from None
    except HttpResponseError as ex:
        raise translate(ex, resource_group=resource_group, vmss_name=vmss_name, vm_name=vm_name) from None
    except AzureError as ex:
        # No answer at all: a connection or TLS failure, a timeout of the transport.
        raise ArmError(first_line(ex)) from None


def translate(ex, **target):
    """One azure-core ``HttpResponseError`` -> the matching ``ArmError``."""
    headers = getattr(getattr(ex, 'response', None), 'headers', None) or {}
    return _error_for(first_line(ex), getattr(ex, 'status_code', None),
                      getattr(getattr(ex, 'error', None), 'code', None), headers, target)


def _error_for(message, status, code, headers, target):
    """The ``ArmError`` class that ``status`` calls for: 404 the target is not there, 401 or 403 the login
    may not; ``target`` names it for a ``TargetNotFoundError``'s recommendation."""
    fields = {'status': status, 'code': code, 'retry_after': retry_after_seconds(headers.get('Retry-After'))}
    if status == 404:
        return TargetNotFoundError(message, **target, **fields)
    if status in (401, 403):
        return ArmAuthorizationError(message, **fields)
    return ArmError(message, **fields)


class ArmAnswer(namedtuple('ArmAnswer', 'status headers body')):
    """One answer of ARM to a ``send``: the status, the headers (a case-insensitive mapping) and the JSON
    body (``None`` when there was none). A ``send(method, path, *, query=None, body=None)`` gives these."""

    __slots__ = ()

    def error(self):
        """``(code, message)`` of ARM's error body, whichever of its shapes it has."""
        body = self.body if isinstance(self.body, dict) else {}
        error = body.get('error') or body.get('response') or body
        error = error if isinstance(error, dict) else {}
        return error.get('code'), error.get('message') or f'HTTP {self.status}'


def check(answer, **target):
    """``answer`` when it is a success (2xx); otherwise the matching ``ArmError``, raised."""
    if 200 <= answer.status < 300:
        return answer
    code, message = answer.error()
    raise _error_for(f'({code}) {message}' if code else message, answer.status, code, answer.headers or {}, target)


def first_line(ex):
    """The first line of an SDK error's message: ARM's ``(Code) message``, without the SDK's dump after it."""
    text = (getattr(ex, 'message', None) or str(ex)).strip()
    return text.splitlines()[0] if text else type(ex).__name__
