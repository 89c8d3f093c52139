# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""POSTing JSON to a URL with the standard library alone, retried: what the webhook and Event Grid sinks
send through. ``ssl`` is imported only for an https URL; the URL's query and user info (codes, SAS
tokens, passwords) never appear in a log line.

    JsonPoster('https://hooks.example/se?code=x', timeout_in_seconds=5, retries=3).post({'a': 1}, {})  # True
"""

import base64
import json
import random
import time
from urllib.parse import unquote, urlsplit, urlunsplit

from .config import WEBHOOK_RETRY_POLICY
from .log import get_logger
from .retrying import Resender, describe
from .transport import ConnectFailed, Connection

logger = get_logger(__name__)


def redact_url(url):
    """The URL without its query, fragment or user info, which may hold secrets (SAS tokens, codes)."""
    parts = urlsplit(url)
    host = parts.hostname or ''
    if parts.port:
        host = f'{host}:{parts.port}'
    return urlunsplit((parts.scheme, host, parts.path, '', ''))


class JsonPoster:  # pylint: disable=too-few-public-methods
    """POSTs JSON bodies to one http(s) URL: each attempt within ``timeout_in_seconds``, retried (at most
    ``retries`` times, within ``retry``'s deadline) on 408, 429, 500, 502, 503, 504 and broken connections,
    as ``retrying.Resender`` does. User info in the URL is sent as HTTP Basic authentication.

    Every ``post`` opens a connection of its own: sinks are notified from several threads at once.
    """

    def __init__(self, url, *, timeout_in_seconds, retries, retry=WEBHOOK_RETRY_POLICY, ssl_context=None,
                 clock=time.monotonic, sleep=time.sleep, rng=random.random, wall=time.time):
        parts = urlsplit(url)
        https = parts.scheme == 'https'
        self.url = url
        self._connection = {'host': parts.hostname, 'port': parts.port or (443 if https else 80), 'https': https,
                            'ssl_context': ssl_context, 'connect_timeout_in_seconds': timeout_in_seconds}
        self._target = (parts.path or '/') + (f'?{parts.query}' if parts.query else '')
        self._auth = {}
        if parts.username is not None:
            pair = f'{unquote(parts.username)}:{unquote(parts.password or "")}'.encode()
            self._auth['Authorization'] = 'Basic ' + base64.b64encode(pair).decode()
        self._timeout = timeout_in_seconds
        self._resender = Resender(retry, max_retries=retries, clock=clock, sleep=sleep, rng=rng, wall=wall)

    def post(self, body, headers):
        """POST ``body`` as JSON with ``headers``: ``True`` for a 2xx answer; anything else is logged as a
        warning (without the URL's secrets) and is ``False``."""
        data = json.dumps(body).encode()
        connection = Connection(**self._connection)
        where = redact_url(self.url)

        def exchange(remaining):
            return connection.exchange('POST', self._target, data, dict(headers, **self._auth),
                                       timeout_in_seconds=min(self._timeout, remaining))

        def on_retry(last, delay):
            logger.info('Notification to %s: %s; retrying in %.1f s', where, describe(last), delay)
        try:
            sent = self._resender.send(exchange, on_retry=on_retry)
        except ConnectFailed as ex:
            logger.warning('Notification to %s failed: %s', where, ex.reason)
            return False
        finally:
            connection.close()
        if sent.answer is None:
            logger.warning('Notification to %s failed: %s', where, describe(sent.last))
            return False
        if not 200 <= sent.answer.status < 300:
            logger.warning('Notification to %s answered %s', where, sent.answer.status)
            return False
        return True
