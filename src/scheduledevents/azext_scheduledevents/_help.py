# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
# pylint: disable=line-too-long

from knack.help_files import helps  # pylint: disable=unused-import

helps['scheduled-events'] = """
type: group
short-summary: See, handle and approve Azure maintenance events (Scheduled Events) from the Instance Metadata Service.
long-summary: >
    Azure warns a VM of upcoming maintenance (Freeze, Reboot, Redeploy, Preempt, Terminate) through the
    Scheduled Events endpoint of IMDS, http://169.254.169.254/metadata/scheduledevents. These commands run on
    the VM itself. To use another endpoint (such as the emulator), set
    `az config set scheduled_events.imds_endpoint=http://127.0.0.1:8169` or the environment variable
    AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT.
"""

helps['scheduled-events list'] = """
type: command
short-summary: List the current scheduled events.
long-summary: >
    Prints every event with all the fields IMDS gives, plus AffectsThisVm (this VM's compute.name is one of
    the event's Resources) and SecondsUntilNotBefore (null once the event has Started). An empty list means
    no maintenance is planned. Events that are over or canceled simply leave the document.
examples:
  - name: List the events, as a table.
    text: az scheduled-events list -o table
  - name: Only the events that affect this VM.
    text: az scheduled-events list --this-vm
  - name: The ids of Reboot events that are still Scheduled.
    text: az scheduled-events list --query "[?EventType=='Reboot' && EventStatus=='Scheduled'].EventId" -o tsv
  - name: The raw document, with DocumentIncarnation.
    text: az scheduled-events list --document
"""

helps['scheduled-events show'] = """
type: command
short-summary: Show one scheduled event.
long-summary: Exits with code 3 when the event is not in the document (it is over, canceled, or never was).
examples:
  - name: Show an event.
    text: az scheduled-events show --event-id C7061BAC-AFDC-4513-B24B-AA5F13A16123
  - name: Seconds left before an event starts on its own.
    text: az scheduled-events show --event-id C7061BAC-AFDC-4513-B24B-AA5F13A16123 --query SecondsUntilNotBefore
"""

helps['scheduled-events approve'] = """
type: command
short-summary: Approve events so that they start now instead of at NotBefore.
long-summary: >
    Checks that every id is in the current document (unless --force), sends one StartRequests for the events
    still Scheduled, then reads the document again and reports each event's status. Approving starts the
    event for EVERY VM in its Resources, not only this one: for events that name several VMs, let one VM
    decide (for example the first one named). Azure may still wait for other VMs on the same host, so an
    approved event can stay Scheduled for a while.
examples:
  - name: Approve an event.
    text: az scheduled-events approve --event-id C7061BAC-AFDC-4513-B24B-AA5F13A16123
  - name: Approve every Scheduled event that affects this VM.
    text: az scheduled-events approve --event-id $(az scheduled-events list --this-vm --query "[?EventStatus=='Scheduled'].EventId" -o tsv)
"""

helps['scheduled-events emulator'] = """
type: command
short-summary: Run a local IMDS emulator to try handlers and scripts before real maintenance comes.
long-summary: >
    Serves /metadata/scheduledevents and /metadata/instance as IMDS does (Metadata header and api-version
    checks, stable EventIds, RFC 1123 NotBefore, approval, a 5 requests/s limit) until Ctrl-C. Scenarios
    follow the documented minimum notices; --speed compresses them. A control API under /_emulator/ adds and
    withdraws events and injects faults (see the extension's README). Also runnable as
    `python -m azext_scheduledevents.emulator`.
examples:
  - name: A Spot eviction (30 s notice), then list it from another shell.
    text: |
        az scheduled-events emulator --scenario preempt --port 8169
        AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT=http://127.0.0.1:8169 az scheduled-events list -o table
  - name: Platform maintenance for two scale-set instances, 60 times faster than real time.
    text: az scheduled-events emulator --scenario vmss --speed 60 --vm-name web_3
  - name: A scale-in Terminate with a 10-minute notice.
    text: az scheduled-events emulator --scenario terminate --terminate-notice PT10M
"""
