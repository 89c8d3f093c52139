# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Policy values with their units in their names, so a reader finds every number in one place."""

import random
from dataclasses import dataclass

# IMDS's first call on a VM enables Scheduled Events and can take up to two minutes to answer.
IMDS_DEADLINE_IN_SECONDS = 120.0
# IMDS is link-local: a connection that is not made within this time will not be made at all.
IMDS_CONNECT_TIMEOUT_IN_SECONDS = 2.0


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Capped exponential backoff with jitter, within one overall deadline.

    The delay before retry ``n`` (0-based) is drawn from ``[d/2, d]`` with
    ``d = min(max_delay, first_delay * 2 ** n)``; a ``Retry-After`` header, when IMDS sends one, wins.

        RetryPolicy()                                   # production: 0.5 s, 1 s, 2 s ... 8 s, for 120 s
        RetryPolicy(deadline_in_seconds=5)              # give up after 5 s
    """

    first_delay_in_seconds: float = 0.5
    max_delay_in_seconds: float = 8.0
    deadline_in_seconds: float = IMDS_DEADLINE_IN_SECONDS
    connect_timeout_in_seconds: float = IMDS_CONNECT_TIMEOUT_IN_SECONDS

    def __post_init__(self):
        if self.first_delay_in_seconds <= 0 or self.max_delay_in_seconds < self.first_delay_in_seconds:
            raise ValueError('need 0 < first_delay_in_seconds <= max_delay_in_seconds')
        if self.deadline_in_seconds <= 0 or self.connect_timeout_in_seconds <= 0:
            raise ValueError('deadline_in_seconds and connect_timeout_in_seconds must be positive')

    def delay(self, attempt, rng=random.random):
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_delay_in_seconds, self.first_delay_in_seconds * 2 ** attempt)
        return ceiling / 2 + rng() * ceiling / 2


DEFAULT_RETRY_POLICY = RetryPolicy()
