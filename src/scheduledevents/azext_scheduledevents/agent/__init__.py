# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The standalone agent: ``watch``, ``list``, ``show`` and ``approve`` on a VM, as one zipapp built from the
same ``core/`` modules az runs, for the VM's own Python 3.8 or newer with the standard library alone.

``main.py`` is its command line, ``output.py`` prints answers as az does, and ``build.py`` makes the
zipapp (reproducibly) from the modules the command line imports.
"""
