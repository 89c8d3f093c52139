# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The IMDS emulator: ``az scheduled-events emulator`` or ``python -m azext_scheduledevents.emulator``."""
