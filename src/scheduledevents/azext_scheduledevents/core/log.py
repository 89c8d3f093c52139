# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The one logging seam: knack's logger under az, the standard library's where knack is absent.

Under az a plain ``logging.getLogger`` is hidden unless ``--debug`` (knack shows only its ``cli.*`` tree),
so the core logs through knack whenever it is importable; the standalone agent, which carries no knack,
gets the standard library's logger under the same name.

    logger = get_logger(__name__)
"""

import logging

try:
    from knack.log import get_logger as _knack_logger
except ImportError:
    _knack_logger = None


def get_logger(module_name):
    """The logger for ``module_name``: knack's ``cli.<module>`` under az, else the standard library's."""
    if _knack_logger is not None:
        return _knack_logger(module_name)
    return logging.getLogger(module_name)
