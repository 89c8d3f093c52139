# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``az scheduled-events cycle``: ``engine`` runs it, ``plan`` decides it beforehand, ``decide`` makes each
step's choice, ``hooks`` wraps the before- and after-scripts, ``report`` and ``junit`` say how it went."""

from .engine import Cycle
from .hooks import Hook

__all__ = ['Cycle', 'Hook']
