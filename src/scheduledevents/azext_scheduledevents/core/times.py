# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Time as it travels: RFC 1123 dates (IMDS's NotBefore, HTTP's Retry-After), ISO 8601 in our own output.

    parse_http_date('Mon, 19 Sep 2016 18:29:47 GMT')    # aware UTC datetime, or None
    retry_after_seconds('2')                            # 2.0; an HTTP date works too
    iso_utc(1474309787.25, timespec='milliseconds')     # '2016-09-19T18:29:47.250Z'
"""

import time
from datetime import datetime, timezone

# email.utils is imported where it is used: the agent's service commands read ISO times only.


def parse_http_date(text):
    """An RFC 1123 date -> aware UTC datetime; ``None`` when ``text`` is not one."""
    import email.utils
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.astimezone(timezone.utc)


def format_http_date(moment):
    """Aware datetime -> ``'Mon, 19 Sep 2016 18:29:47 GMT'`` (whole seconds, as IMDS writes it)."""
    import email.utils
    return email.utils.format_datetime(moment.astimezone(timezone.utc).replace(microsecond=0), usegmt=True)


def retry_after_seconds(value, *, wall=time.time):
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP date); ``None`` without one."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        moment = parse_http_date(value)
        return None if moment is None else max(0.0, moment.timestamp() - wall())


def parse_iso_utc(text):
    """``iso_utc``'s text back to epoch seconds."""
    return datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp()


def iso_utc(epoch, *, timespec='seconds'):
    """Epoch seconds -> ISO 8601 in UTC with a ``Z``, as every line and report of this tool writes time."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec=timespec).replace('+00:00', 'Z')
