# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The core's exceptions. The az layer turns each into one ``azclierror`` class with a recommendation
(``_errors.py``); the agent prints the message in one line.

* ScheduledEventsError
  + ImdsError                  - talking to the Instance Metadata Service failed
    - ImdsUnreachableError     - nothing answers at the endpoint (not an Azure VM, wrong endpoint)
    - ImdsTimeoutError         - the overall deadline passed while waiting or retrying
    - ImdsResponseError        - any other unexpected HTTP status
      - ImdsRejectedError      - IMDS refused the request (400: header, api-version, body)
    - ImdsProtocolError        - the answer is not a Scheduled Events document (garbage, wrong shape)
  + ArmError                   - Azure Resource Manager answered with an error (``status``, ``code``)
    - ArmAuthorizationError    - 401 or 403: the login may not do this
      - AcknowledgeForbiddenError - it may not acknowledge scheduled events (no Scheduled Events Contributor)
    - TargetNotFoundError      - the scale set, VM, availability set or instance ids do not exist
    - PreviewNotEnabledError   - the scheduled-events control plane is not available to the target
    - GraphQueryError          - Resource Graph refused the query
  + BlobError                  - Blob Storage refused a request or gave no answer in time (``status``, ``code``)
  + RunCommandOutputError      - an instance's Run Command output is not this tool's answer (cut, too large)
  + CycleError                 - a rolling cycle stopped (``report`` says where each instance is)
    - PreflightError           - it did not start: an instance is not healthy, or too few are
  + WatchError                 - the watcher cannot start
    - StateLockedError         - another watcher holds the state directory
    - HandlerConfigError       - a handler can never run (empty command, program not found)
  + InvalidSettingError        - a setting is out of range (also a ValueError)
  + ScenarioError              - an emulator scenario or fault rule is malformed (also a ValueError)
  + InvalidEndpointError       - the configured endpoint is not an http://host[:port] URL
  + InvalidEventIdError        - an event id is not a GUID
  + EventNotFoundError         - an event id is not in the current document
    - EventNotScheduledError   - it is there, but no longer Scheduled (nothing to approve)
  + PartialApprovalError       - some ids of a list acknowledge failed (``failures``: id -> reason)
"""


class ScheduledEventsError(Exception):
    """Base class of everything the core raises on purpose."""


class ImdsError(ScheduledEventsError):
    """A request to IMDS failed. ``endpoint`` is the base URL that was used."""

    def __init__(self, message, *, endpoint=None):
        super().__init__(message)
        self.endpoint = endpoint


class ImdsUnreachableError(ImdsError):
    """The TCP connection to IMDS could not be made (refused, timed out, no route)."""


class ImdsTimeoutError(ImdsError):
    """The request did not succeed before its deadline, after retrying what may be retried."""


class ImdsResponseError(ImdsError):
    """IMDS answered with a status the client does not retry. ``status`` and ``body`` keep the answer."""

    def __init__(self, message, *, endpoint=None, status=None, body=None):
        super().__init__(message, endpoint=endpoint)
        self.status = status
        self.body = body


class ImdsRejectedError(ImdsResponseError):
    """IMDS answered 400 Bad Request; the message carries IMDS's own reason."""


class ImdsProtocolError(ImdsError):
    """The body is not JSON, or not shaped like the document the contract describes."""


class ArmError(ScheduledEventsError):
    """An Azure Resource Manager request failed: ``status`` (None without an answer), ARM's error ``code``,
    and the seconds ``retry_after`` asked for, if any."""

    def __init__(self, message, *, status=None, code=None, retry_after=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class ArmAuthorizationError(ArmError):
    """401 or 403: the login has no role that allows the operation (or its token was refused)."""


class AcknowledgeForbiddenError(ArmAuthorizationError):
    """The login has no role with ``Microsoft.Maintenance/scheduledevents/acknowledge/action``."""


class TargetNotFoundError(ArmError):
    """The scale set, the VM, the availability set or some of the instance ids do not exist in
    ``resource_group``."""

    def __init__(self, message, *, resource_group=None, vmss_name=None, vm_name=None, availability_set=None,
                 **kwargs):
        kwargs.setdefault('status', 404)
        super().__init__(message, **kwargs)
        self.resource_group = resource_group
        self.vmss_name = vmss_name
        self.vm_name = vm_name
        self.availability_set = availability_set


class PreviewNotEnabledError(ArmError):
    """The control plane for scheduled events is not there for this target: the preview feature is not
    registered, or the service does not offer the api-version (``feature`` names what to register)."""

    def __init__(self, message, *, feature=None, **kwargs):
        super().__init__(message, **kwargs)
        self.feature = feature


class GraphQueryError(ArmError):
    """Resource Graph answered 400 to the query this tool built (a bug here, or a service change)."""


class BlobError(ScheduledEventsError):
    """A Blob Storage request failed: ``status`` and the service's error ``code`` (both ``None`` when nothing
    answered in time), for the ``container`` URL (never with its SAS). The message carries no secret."""

    # ``code`` when IMDS had no token to give: no managed identity, or not the client id asked for.
    NO_MANAGED_IDENTITY = 'NoManagedIdentity'

    def __init__(self, message, *, status=None, code=None, container=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.container = container


class RunCommandOutputError(ScheduledEventsError):
    """Run Command's output cannot be read as this tool's answer (cut, too large, or not ours)."""


class CycleError(ScheduledEventsError):
    """A cycle stopped before its end: ``report`` holds every instance's state and what to do next."""

    def __init__(self, message, *, report=None):
        super().__init__(message)
        self.report = report


class PreflightError(CycleError):
    """The cycle did not start, and nothing was changed."""


class WatchError(ScheduledEventsError):
    """The watcher cannot start as configured."""


class StateLockedError(WatchError):
    """Another watcher (process ``pid``) holds the lock of the state ``directory``."""

    def __init__(self, message, *, directory=None, pid=None):
        super().__init__(message)
        self.directory = directory
        self.pid = pid


class HandlerConfigError(WatchError):
    """A handler that can never run (empty command, program not found): reported at start-up."""


class InvalidSettingError(ScheduledEventsError, ValueError):
    """A setting is out of its range; the message names the setting."""


class ScenarioError(ScheduledEventsError, ValueError):
    """An emulator scenario, event plan or fault rule is malformed."""


class InvalidEndpointError(ScheduledEventsError):
    """The IMDS endpoint setting is not a plain ``http://host[:port]`` URL."""


class InvalidEventIdError(ScheduledEventsError):
    """An event id is not a GUID, so it is never sent anywhere."""


class EventNotFoundError(ScheduledEventsError):
    """The event ids are not in the current Scheduled Events document."""

    def __init__(self, message, *, event_ids=()):
        super().__init__(message)
        self.event_ids = tuple(event_ids)


class EventNotScheduledError(EventNotFoundError):
    """The event is known, but its status is not Scheduled: approving it would do nothing."""


class PartialApprovalError(ScheduledEventsError):
    """A list acknowledge approved some ids and not others: ``failures`` maps each failed id to why, and
    ``results`` holds every id's row."""

    def __init__(self, message, *, failures=None, results=()):
        super().__init__(message)
        self.failures = dict(failures or {})
        self.results = list(results)
