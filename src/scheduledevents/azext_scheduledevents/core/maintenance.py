# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Approving scheduled events from outside the VM: the Maintenance resource provider's acknowledge API,
the same to Azure as an approval through IMDS. Nothing else knows its paths or api-versions.

One id goes through the single acknowledge, several through the list acknowledge, whose partial failure
(HTTP 207) names the ids that failed. The newest stable api-version is tried first; a preview one only
when the service says the stable one is not there.

    failures = acknowledge(send, ArmTarget('S', 'my-rg', TargetKind.SCALE_SET, 'web'), ['C7061BAC-...'])
    failures       # {} when every id was acknowledged, else {id: why}
"""

from .arm import check
from .errors import AcknowledgeForbiddenError, ArmAuthorizationError, PreviewNotEnabledError
from .events import validate_event_id

STABLE_API_VERSION = '2025-11-01'
PREVIEW_API_VERSION = '2025-10-01-preview'
# The oldest preview has the single acknowledge only.
SINGLE_ONLY_API_VERSION = '2023-10-01-preview'
ACKNOWLEDGE_ACTION = 'Microsoft.Maintenance/scheduledevents/acknowledge/action'
# What ARM says when a resource provider does not offer an api-version (or is not registered for it).
_NO_API_VERSION = frozenset({'InvalidApiVersionParameter', 'NoRegisteredProviderFound', 'InvalidResourceType'})


def _events_path(target):
    # The contract spells ``resourcegroups`` in lower case.
    return (f'/subscriptions/{target.subscription}/resourcegroups/{target.resource_group}/providers/'
            f'Microsoft.Compute/{target.kind.value}/{target.name}/providers/Microsoft.Maintenance/scheduledevents')


def acknowledge(send, target, event_ids):
    """Acknowledge ``event_ids`` (GUIDs, checked before anything is sent) of ``target`` -> ``{id: why}``
    for the ids that failed. Raises ``AcknowledgeForbiddenError`` without the role, and
    ``PreviewNotEnabledError`` when no api-version of the API is offered."""
    ids = [validate_event_id(event_id) for event_id in event_ids]
    if len(ids) == 1:
        versions = (STABLE_API_VERSION, PREVIEW_API_VERSION, SINGLE_ONLY_API_VERSION)
        path, body = f'{_events_path(target)}/{ids[0]}/acknowledge', None
    else:
        versions = (STABLE_API_VERSION, PREVIEW_API_VERSION)
        path, body = _events_path(target), {'value': ids}
    for version in versions:
        answer = send('POST', path, query={'api-version': version}, body=body)
        code, _ = answer.error()
        if answer.status == 400 and code in _NO_API_VERSION:
            continue
        if answer.status == 207:
            return _partial_failures(answer, ids)
        try:
            check(answer)
        except ArmAuthorizationError as ex:
            raise AcknowledgeForbiddenError(f'{ex} (acknowledging needs {ACKNOWLEDGE_ACTION})',
                                            status=ex.status, code=ex.code) from None
        return {}
    raise PreviewNotEnabledError(f'The Maintenance acknowledge API is not offered for {target.id} '
                                 f'(tried api-versions {", ".join(versions)})', feature='SendScheduledEventsPolicy')


def _partial_failures(answer, ids):
    """The ids a 207 names as failed, with why: by each detail's ``target``, else by position."""
    body = answer.body if isinstance(answer.body, dict) else {}
    details = body.get('details') or (body.get('error') or {}).get('details') or []
    failures = {}
    for index, detail in enumerate(details):
        if not isinstance(detail, dict):
            continue
        event_id = str(detail.get('target') or (ids[index] if index < len(ids) else '')).upper()
        if event_id:
            failures[event_id] = f'({detail.get("code")}) {detail.get("message")}'
    if not failures:
        _, message = answer.error()
        failures = {event_id: message for event_id in ids}
    return failures
