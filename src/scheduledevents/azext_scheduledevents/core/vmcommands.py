# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``list``, ``show`` and ``approve`` on this VM: the checks, the IMDS client and the rows, for az (without
``--resource-group``) and the standalone agent alike.

    check_imds_options(api_version='2020-07-01', timeout=10)
    with imds_client('http://127.0.0.1:8169', timeout=10) as client:
        list_rows(client, now=datetime.now(timezone.utc), this_vm=True)
"""

import re

from .config import RetryPolicy
from .errors import EventNotFoundError, InvalidSettingError
from .imds import ImdsClient
from .views import approval_rows, document_rows, event_rows

_API_VERSION = re.compile(r'\d{4}-\d{2}-\d{2}')


def check_imds_options(*, api_version=None, timeout=None):
    """``InvalidSettingError`` for an ``--api-version`` that is not a date or a ``--timeout`` not above 0."""
    if api_version is not None and not _API_VERSION.fullmatch(api_version):
        raise InvalidSettingError(f'--api-version {api_version!r} is not a date such as 2020-07-01.')
    if timeout is not None and timeout <= 0:
        raise InvalidSettingError('--timeout must be a number of seconds greater than 0.')


def imds_client(endpoint, *, api_version=None, timeout=None):
    """An ``ImdsClient`` for ``endpoint``: the default api-version and deadline unless given."""
    kwargs = {'api_version': api_version} if api_version else {}
    if timeout:
        kwargs['retry'] = RetryPolicy(deadline_in_seconds=timeout)
    return ImdsClient(endpoint, **kwargs)


def list_rows(client, *, now, this_vm=False, document=False):
    """The events (``views.event_rows``), or with ``document`` the raw document."""
    doc = client.get_document()
    readings = [({}, None if document else client.vm_name(), doc)]
    if document:
        return document_rows(readings)[0]
    return event_rows(readings, now=now, this_vm=this_vm)


def show_row(client, event_id, *, now):
    """One event's row; ``EventNotFoundError`` when it is not in the document."""
    event = client.get_document().get(event_id)
    if event is None:
        raise EventNotFoundError(f'Event {event_id} is not in the Scheduled Events document: it may be over, or '
                                 'canceled.', event_ids=[event_id])
    return event.to_view(vm_name=client.vm_name(), now=now)


def approve_rows(client, event_ids, *, force=False):
    """Approve ``event_ids`` (``approval.approve_events``): one row per id."""
    from .approval import approve_events     # list and show need not compile it
    return approval_rows({}, approve_events(client, event_ids, force=force))
