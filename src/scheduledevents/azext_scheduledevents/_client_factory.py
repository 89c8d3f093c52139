# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------


def cf_compute(cli_ctx):
    """The Compute client az itself uses (its profile, credentials, cloud and retry settings)."""
    from azure.cli.core.commands.client_factory import get_mgmt_service_client
    from azure.cli.core.profiles import ResourceType
    return get_mgmt_service_client(cli_ctx, ResourceType.MGMT_COMPUTE)


def cf_arm_send(cli_ctx):
    """ARM's REST through az's authenticated pipeline (``send_raw_request``, as ``az rest``): a
    ``send(method, path, *, query=None, body=None)`` that gives ``core.arm.ArmAnswer`` for every status."""
    import json
    from urllib.parse import urlencode
    from azure.cli.core.azclierror import HTTPError
    from azure.cli.core.util import send_raw_request
    from azext_scheduledevents.core.arm import ArmAnswer

    def send(method, path, *, query=None, body=None):
        url = path + ('?' + urlencode(query) if query else '')
        try:
            response = send_raw_request(cli_ctx, method, url, body=None if body is None else json.dumps(body))
        except HTTPError as ex:
            response = ex.response
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = None
        return ArmAnswer(response.status_code, response.headers, data)
    return send


def current_subscription(cli_ctx):
    """The subscription az works in (``--subscription`` or the default account)."""
    from azure.cli.core._profile import Profile
    return cli_ctx.data.get('subscription_id') or Profile(cli_ctx=cli_ctx).get_subscription_id()


def visible_subscriptions(cli_ctx):
    """Every enabled subscription the login sees, as ``az account list`` shows them."""
    from azure.cli.core._profile import Profile
    return [s['id'] for s in Profile(cli_ctx=cli_ctx).load_cached_subscriptions() if s.get('state') == 'Enabled']
