# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The one place where azure-core's exceptions from ARM calls become the core's own (``errors.py``).

The fan-out, the cycle and the control-plane route call ARM through the SDK and wrap those calls in
``arm_errors()``, so nothing above them ever sees an SDK exception type.

    with arm_errors(resource_group='rg', vmss_name='web'):
        compute.virtual_machine_scale_sets.get('rg', 'web')     # a 404 -> TargetNotFoundError
"""

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
    status = getattr(ex, 'status_code', None)
    code = getattr(getattr(ex, 'error', None), 'code', None)
    headers = getattr(getattr(ex, 'response', None), 'headers', None) or {}
    fields = {'status': status, 'code': code, 'retry_after': retry_after_seconds(headers.get('Retry-After'))}
    if status == 404:
        return TargetNotFoundError(first_line(ex), **target, **fields)
    if status in (401, 403):
        return ArmAuthorizationError(first_line(ex), **fields)
    return ArmError(first_line(ex), **fields)


def first_line(ex):
    """The first line of an SDK error's message: ARM's ``(Code) message``, without the SDK's dump after it."""
    text = (getattr(ex, 'message', None) or str(ex)).strip()
    return text.splitlines()[0] if text else type(ex).__name__
