# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Sending one HTTP request again while it fails in a way worth retrying: what Blob Storage and the
webhook sinks share (IMDS has rules of its own, in ``imds.py``).

An answer with a transient status (408, 429, 500, 502, 503, 504) or an exchange that broke (dropped,
reset, no answer in time, no connection) is sent again after the policy's backoff with jitter, or after
the ``Retry-After`` the answer asks for, within the policy's deadline and at most ``max_retries`` times.
A connection that can never be made (a name that does not resolve, an untrusted certificate) is not.

    resender = Resender(RetryPolicy(deadline_in_seconds=30), max_retries=3)
    sent = resender.send(lambda remaining: connection.exchange('POST', '/hook', body, headers,
                                                               timeout_in_seconds=min(5, remaining)))
    sent.answer          # the answer that was not retried, or None when the retries ran out
"""

import http.client
import random
import socket
import time
from collections import namedtuple

from .times import retry_after_seconds
from .transport import Answer, ConnectFailed

# Transient answers: request timeout, throttling, and server faults.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# These say the request was not carried out, so a retry after them cannot be a second execution.
NOT_EXECUTED_STATUSES = frozenset({429, 503})
# An attempt that failed before anything was sent: it cannot have been carried out.
NO_CONNECTION = 'no connection'


class Sent(namedtuple('Sent', 'answer last uncertain')):
    """How a request ended. ``answer``: the ``transport.Answer`` that was not retried, or ``None`` when the
    deadline or the retries ran out; ``last``: the last retried answer or failure (words), or ``None``;
    ``uncertain``: an earlier attempt may have been carried out (its answer was lost, or was a fault that
    does not say it was not), so a 404 or 409 may be this request's own doing."""

    __slots__ = ()


def describe(last):
    """A retried answer or failure in a few words: ``'503 Service Unavailable'``, ``'no connection'``."""
    return f'{last.status} {last.reason}' if isinstance(last, Answer) else str(last)


class Resender:  # pylint: disable=too-few-public-methods
    """Sends a request until an answer that is not retried, with ``retry`` (a ``config.RetryPolicy``)."""

    def __init__(self, retry, *, max_retries=None, retried=TRANSIENT_STATUSES, clock=time.monotonic,
                 sleep=time.sleep, rng=random.random, wall=time.time):
        self.retry = retry
        self.max_retries = max_retries
        self.retried = retried
        self._clock, self._sleep, self._rng, self._wall = clock, sleep, rng, wall

    def send(self, exchange, *, on_retry=None):
        """Call ``exchange(remaining_seconds)`` (it returns a ``transport.Answer``) until it answers with a
        status not retried -> ``Sent``. ``on_retry(last, delay)`` is told before each wait, to log it.

        A ``ConnectFailed`` whose ``permanent`` is set is raised at once.
        """
        deadline = self._clock() + self.retry.deadline_in_seconds
        attempt, uncertain, last = 0, False, None
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return Sent(None, last, uncertain)
            answer, failure, retry_after = self._attempt(exchange, remaining)
            if answer is not None and answer.status not in self.retried:
                return Sent(answer, last, uncertain)
            last = answer or failure
            uncertain = uncertain or (failure not in (None, NO_CONNECTION)) or (
                answer is not None and answer.status not in NOT_EXECUTED_STATUSES)
            delay = self.retry.delay(attempt, self._rng) if retry_after is None else retry_after
            if (self.max_retries is not None and attempt >= self.max_retries) or self._clock() + delay >= deadline:
                return Sent(None, last, uncertain)
            if on_retry is not None:
                on_retry(last, delay)
            self._sleep(delay)
            attempt += 1

    def _attempt(self, exchange, remaining):
        """One exchange -> ``(answer, None, retry_after)``, or ``(None, failure, None)`` when it broke."""
        try:
            answer = exchange(remaining)
        except ConnectFailed as ex:
            if ex.permanent:
                raise
            return None, NO_CONNECTION, None
        except socket.timeout:
            return None, 'no answer in time', None
        except (OSError, http.client.HTTPException) as ex:
            # A reset or a dropped keep-alive connection: the request may be sent again.
            return None, f'connection dropped ({type(ex).__name__})', None
        return answer, None, retry_after_seconds(answer.header('Retry-After'), wall=self._wall)
