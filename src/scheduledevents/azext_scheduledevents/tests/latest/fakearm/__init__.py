# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""A fake Azure Resource Manager for the tests: HTTPS on loopback with a throwaway CA, a managed-identity
token endpoint the real az logs in with, scale sets and VMs whose Run Command really runs the script in
the VM's own network namespace, where that VM's IMDS emulator listens on 169.254.169.254:80."""
