# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""A ``send`` for the core's control-plane modules that speaks HTTPS to the fake ARM, as az's pipeline
speaks to ARM (a bearer token, JSON in and out), for tests that drive the core without az.

    send = arm_send(arm)
    send('POST', '/providers/Microsoft.ResourceGraph/resources', query={'api-version': '2021-03-01'}, body={...})
"""

import http.client
import json
import ssl
from urllib.parse import urlencode, urlsplit

from azext_scheduledevents.core.arm import ArmAnswer


def arm_send(arm, token='test-token'):
    parts = urlsplit(arm.url)
    context = ssl.create_default_context(cafile=str(arm.certs.ca))

    def send(method, path, *, query=None, body=None):
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=30)
        try:
            conn.request(method, path + ('?' + urlencode(query) if query else ''),
                         body=None if body is None else json.dumps(body).encode(),
                         headers={'Authorization': f'Bearer {token}', 'Content-Type': 'application/json'})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        return ArmAnswer(response.status, response.headers, json.loads(data) if data else None)
    return send
