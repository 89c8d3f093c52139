# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The rows ``list``, ``show`` and ``approve`` answer with, on the VM and across a fleet alike.

A reading is ``(where, vm_name, document)``: ``where`` is the columns that say which instance answered
(``{}`` on the VM itself, ``{'Instance': 'web_3', 'InstanceId': '3'}`` through Run Command).

    event_rows([({}, 'web_0', document)], now=datetime.now(timezone.utc))
"""


def event_rows(readings, *, now, this_vm=False):
    """Every event of every reading, in the IMDS wire form plus AffectsThisVm and SecondsUntilNotBefore;
    with ``this_vm``, only those whose Resources name the VM that read them."""
    return [{**where, **event.to_view(vm_name=vm_name, now=now)}
            for where, vm_name, document in readings for event in document.events
            if not this_vm or event.affects(vm_name)]


def document_rows(readings):
    """Every reading's raw document, with DocumentIncarnation."""
    return [{**where, **document.to_wire()} for where, _, document in readings]


def approval_rows(where, results):
    """One row per approved id (``approval.ApprovalResult``), with the instance that approved it."""
    return [{**where, **result.to_dict()} for result in results]
