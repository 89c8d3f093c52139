# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The extension's version, in one place: setup.py reads it, and the agent and its status file carry it."""

VERSION = '1.0.0b1'
