# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The extension's core: plain Python that imports nothing from ``azure.cli``.

``imds`` is the Instance Metadata Service client, ``events`` the Scheduled Events model, ``config`` the
policy values and ``errors`` the exception tree. The az commands in ``custom.py`` are thin glue over these.
"""
