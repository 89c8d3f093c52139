# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The core's exceptions. ``custom.py`` turns each into one ``azclierror`` class with a recommendation.

* ScheduledEventsError
  + ImdsError                  - talking to the Instance Metadata Service failed
    - ImdsUnreachableError     - nothing answers at the endpoint (not an Azure VM, wrong endpoint)
    - ImdsTimeoutError         - the overall deadline passed while waiting or retrying
    - ImdsRejectedError        - IMDS refused the request (400: header, api-version, body)
    - ImdsResponseError        - any other unexpected HTTP status
    - ImdsProtocolError        - the answer is not a Scheduled Events document (garbage, wrong shape)
  + FleetError                 - a scale set or VM cannot be used for a fan-out
    - TargetNotFoundError      - the scale set, VM or instance ids do not exist
  + CycleError                 - a rolling cycle stopped (``report`` says where each instance is)
    - PreflightError           - it did not start: an instance is not healthy, or too few are
  + InvalidEndpointError       - the configured endpoint is not an http://host[:port] URL
  + InvalidEventIdError        - an event id is not a GUID
  + EventNotFoundError         - an event id is not in the current document
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


class FleetError(ScheduledEventsError):
    """A fan-out over Run Command cannot start."""


class TargetNotFoundError(FleetError):
    """The scale set, the VM or some of the instance ids do not exist."""


class CycleError(ScheduledEventsError):
    """A cycle stopped before its end: ``report`` holds every instance's state and what to do next."""

    def __init__(self, message, *, report=None):
        super().__init__(message)
        self.report = report


class PreflightError(CycleError):
    """The cycle did not start, and nothing was changed."""


class InvalidEndpointError(ScheduledEventsError):
    """The IMDS endpoint setting is not a plain ``http://host[:port]`` URL."""


class InvalidEventIdError(ScheduledEventsError):
    """An event id is not a GUID, so it is never sent anywhere."""


class EventNotFoundError(ScheduledEventsError):
    """The event ids are not in the current Scheduled Events document."""

    def __init__(self, message, *, event_ids=()):
        super().__init__(message)
        self.event_ids = tuple(event_ids)
