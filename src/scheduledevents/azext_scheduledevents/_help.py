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
    Scheduled Events endpoint of IMDS, `http://169.254.169.254/metadata/scheduledevents`. These commands run on
    the VM itself; with -g and --vmss-name (or --vm-name), list and approve run on every instance of a scale
    set (or on a VM) through Run Command instead, and cycle reimages a scale set's instances a few at a time.
    To use another endpoint, such as the emulator's `http://127.0.0.1:8169`, set it with
    `az config set scheduled_events.imds_endpoint=URL` or in the environment variable
    AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT.
"""

helps['scheduled-events list'] = """
type: command
short-summary: List the current scheduled events.
long-summary: >
    Prints every event with all the fields IMDS gives, plus AffectsThisVm (this VM's compute.name is one of
    the event's Resources) and SecondsUntilNotBefore (null once the event has Started). An empty list means
    no maintenance is planned. Events that are over or canceled simply leave the document.
    With -g and --vmss-name (or --vm-name) it reads every instance of a scale set (or one VM) through Run
    Command instead, and prints one list, each event with its Instance; an instance that cannot be read is
    reported on stderr and makes the command exit 1 (unless --ignore-errors).
    Where the target's policy publishes scheduled events to Azure Resource Graph (see `az scheduled-events
    policy show`), --route auto, the default with -g, reads them there instead, in one query whatever the
    number of instances, with Target, SubscriptionId, ResourceGroup and, for a scale set, InstanceIds;
    --status Completed Canceled gives the history IMDS never shows. --route control-plane without -g lists
    the events of every subscription the login sees (or --subscriptions, --management-groups). The route
    taken is said on stderr.
examples:
  - name: List the events, as a table.
    text: az scheduled-events list -o table
  - name: Only the events that affect this VM.
    text: az scheduled-events list --this-vm
  - name: The ids of Reboot events that are still Scheduled.
    text: az scheduled-events list --query "[?EventType=='Reboot' && EventStatus=='Scheduled'].EventId" -o tsv
  - name: The raw document, with DocumentIncarnation.
    text: az scheduled-events list --document
  - name: Every instance of a scale set, through Run Command, in one table.
    text: az scheduled-events list -g my-rg --vmss-name web -o table
  - name: Only instances 0 and 3 of the scale set.
    text: az scheduled-events list -g my-rg --vmss-name web --instance-ids 0 3
  - name: A standalone VM, through Run Command.
    text: az scheduled-events list -g my-rg --vm-name db1
  - name: Every scheduled event of every subscription this login sees, from Azure Resource Graph.
    text: az scheduled-events list --route control-plane --query "[].{Target:Target, Type:EventType, Status:EventStatus}" -o table
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
    With -g and --vmss-name it approves through Run Command on an instance that sees the event (one the
    event names, or --instance-id) and prints the event's status afterwards. Where the target publishes to
    Resource Graph (--route auto, the default with -g, or --route control-plane), it approves through the
    Maintenance acknowledge API instead, with no Run Command, after checking in Resource Graph that each id
    is a Scheduled event of that target (--force skips the check); it needs the Scheduled Events
    Contributor role. When some ids fail, every id's row is printed and the command exits 1.
examples:
  - name: Approve an event.
    text: az scheduled-events approve --event-id C7061BAC-AFDC-4513-B24B-AA5F13A16123
  - name: Approve every Scheduled event that affects this VM.
    text: |
        ids=$(az scheduled-events list --this-vm --query "[?EventStatus=='Scheduled'].EventId" -o tsv)
        az scheduled-events approve --event-id $ids
  - name: Approve an event of a scale set, through Run Command on an instance that sees it.
    text: az scheduled-events approve -g my-rg --vmss-name web --event-id C7061BAC-AFDC-4513-B24B-AA5F13A16123
  - name: Approve an event of a scale set that publishes to Resource Graph, through the Maintenance API.
    text: az scheduled-events approve -g my-rg --vmss-name api --event-id 9F8E7D6C-5B4A-4392-8170-6F5E4D3C2B1A
"""

helps['scheduled-events policy'] = """
type: group
short-summary: How a target's model sets up Scheduled Events, and which routes of this tool work for it.
"""

helps['scheduled-events policy show'] = """
type: command
short-summary: Show a target's scheduledEventsPolicy and scheduledEventsProfile, and which routes work.
long-summary: >
    For a scale set (--vmss-name), a VM (--vm-name) or an availability set (--availability-set): the
    terminate and OS image notifications and their timeouts, automatic approval of user reboots and
    redeploys, publishing to Event Grid and Resource Graph, the preview feature's registration
    (Microsoft.Compute/SendScheduledEventsPolicy), and a verdict per command and route with the exact az
    command that turns on each one that does not work.
examples:
  - name: Which routes work for a scale set, and what turns on the others.
    text: az scheduled-events policy show -g my-rg --vmss-name web -o table
"""

helps['scheduled-events watch'] = """
type: command
short-summary: Watch for events and act on each one once, as a quiet daemon; approve only when it is safe.
long-summary: >
    Polls every --interval seconds and turns changes into transitions: scheduled (a new event), rescheduled
    (NotBefore moved), started (approved, NotBefore passed, or already Started as after a hardware failure)
    and completed (the event left the document: finished or canceled, IMDS never says which). Each
    transition is printed as one JSON line on stdout (-o table prints text lines instead), and its
    commands run in order, each with the event as JSON on stdin and in SCHEDULED_EVENT_* variables, never
    on a command line. A command's program is looked up on PATH, as a shell does, or given by its full
    path; one that does not exist is refused when watch starts. By default only events whose Resources
    name this VM are acted on.
    Nothing is approved unless --approve says so. With --approve after-handlers an event is approved only
    when every --on-scheduled command exited 0 within its deadline (the smaller of --handler-timeout and
    the time left before NotBefore minus --deadline-margin); a failed or timed-out command means no
    approval. With approval on, every Scheduled event gets exactly one decision line, approved or
    not-approved with its reason, whatever the reason (a policy option, a failed handler, not the leader).
    Approving releases the event for every VM in its Resources: with --approver leader only the VM named
    first approves, so a group moves when its first member is ready, at the cost of waiting for NotBefore
    when that VM is down. With --approver all and --coordination-url (a Blob Storage container the group
    shares), it is approved once, by one VM of the group, only when every VM it names is ready; one VM
    failing means nobody approves (--wait-for-all-timeout approves with those present after a while).
    A state directory records every transition, command, notification and approval before and after it
    happens. Every step runs at least once until it finished, and never again after: a command that a
    crash cut off (systemd stops a crashed unit's handlers with it) runs again when watch starts, with SCHEDULED_EVENT_ATTEMPT 2,
    3..., unless NotBefore has passed; notifications carry a stable CloudEvents id, so a receiver can drop
    a repeat. Nothing is missed: events that finished
    while the watcher was down get their completed transition when it starts again (the "maintenance
    finished" signal IMDS does not give). IMDS faults are retried for ever. SIGTERM or Ctrl-C lets the
    running command finish, saves the state and exits 0. Run it as a service, not from a one-minute timer,
    which can miss a 30-second Preempt: write its unit with --print-systemd-unit (see the last example),
    then install and start it with `sudo cp scheduled-events-watch.service /etc/systemd/system/ && sudo
    systemctl daemon-reload && sudo systemctl enable --now scheduled-events-watch`; follow it with
    `journalctl -u scheduled-events-watch -f`. The unit keeps its state in /var/lib/scheduled-events and
    reads secrets such as the Event Grid key from /etc/default/scheduled-events.
examples:
  - name: Print transitions of this VM's events as JSON lines.
    text: az scheduled-events watch
  - name: Drain before maintenance, approve only after a successful drain, undo it when maintenance is over (drain and undrain are your programs, on PATH).
    text: az scheduled-events watch --on-scheduled "drain --grace 20" --on-completed undrain --approve after-handlers
  - name: Checkpoint on Spot eviction (checkpoint is your program, on PATH) and approve at once.
    text: az scheduled-events watch --event-types Preempt --on-scheduled checkpoint --approve immediately
  - name: Send every transition to a webhook and to a custom Event Grid topic, whose key is in the environment variable SCHEDULED_EVENTS_EVENT_GRID_KEY.
    text: az scheduled-events watch --webhook https://hooks.example.com/se --event-grid-topic https://mytopic.westus2-1.eventgrid.azure.net/api/events
  - name: One poll from a timer or cron job.
    text: az scheduled-events watch --once --on-scheduled drain --approve after-handlers
  - name: Write the systemd service unit of a watcher to scheduled-events-watch.service, then install it as the description says.
    text: az scheduled-events watch --on-scheduled drain --approve after-handlers --print-systemd-unit | tee scheduled-events-watch.service
"""

helps['scheduled-events cycle'] = """
type: command
short-summary: Reimage, restart, redeploy or update a scale set's instances a few at a time, each drained first and back and healthy before the next.
long-summary: >
    Reads every instance's health score (1 = ProvisioningState succeeded, 2 = PowerState running, 4 = the
    Application Health extension's HealthState healthy; 7 is healthy, or 3 when the scale set has no health
    extension) and stops at once, changing nothing, if a targeted instance is not healthy
    (--ignore-initial-health cycles it anyway). When fewer than two instances are healthy it first scales
    out by one and waits for the new instance, and deletes that instance again at the end, on success,
    failure, timeout or Ctrl-C. Then, one instance at a time (or --max-unavailable at a time), it runs the
    --before-script on the instance through Run Command (drain it), sends the action to that instance alone
    (--action update: the scale set's manual upgrade with that one instance id, never all of them), waits
    until the score is back within --timeout-minutes counted from the moment the action was sent, and runs
    the --after-script (a smoke test). Each script gets CYCLE_HOOK, CYCLE_ACTION, CYCLE_INSTANCE_ID,
    CYCLE_INSTANCE_NAME, CYCLE_ATTEMPT, CYCLE_SCALE_SET and CYCLE_RESOURCE_GROUP in its environment; a
    non-zero exit stops the cycle (a failed before-script leaves its instance untouched), and the output
    goes into the report. --action update skips the instances already on the latest model
    (latestModelApplied) unless --include-up-to-date; --only-outdated makes the other actions choose the
    same way. While any instance is below the score, for any reason, or (with --respect-maintenance) under
    a Started scheduled event, it starts nothing beyond --max-unavailable; --zone-by-zone never has two
    availability zones down at once. On a timeout or a failure it stops, leaves the remaining instances
    untouched, prints the report and exits 1. Progress goes to stderr, the JSON report to stdout, and with
    --junit FILE also JUnit XML for the pipeline's test view.
examples:
  - name: Reimage every instance, one at a time.
    text: az scheduled-events cycle -g my-rg -n web
  - name: See the plan first (outdated instances, zones, hooks, maintenance); change nothing.
    text: az scheduled-events cycle -g my-rg -n web --action update --zone-by-zone --dry-run
  - name: Bring the outdated instances to the latest model, draining each first and checking it after, with a JUnit report.
    text: az scheduled-events cycle -g my-rg -n web --action update --before-script drain.sh --after-script smoke.sh --junit cycle.xml
  - name: Restart two at a time, never while Azure maintains an instance, with a state file so that a killed pipeline can resume.
    text: |
        az scheduled-events cycle -g my-rg -n web --action restart --max-unavailable 2 --respect-maintenance --state-file cycle.json
        az scheduled-events cycle -g my-rg -n web --action restart --max-unavailable 2 --respect-maintenance --state-file cycle.json --resume
"""

helps['scheduled-events agent'] = """
type: group
short-summary: The watcher as a standalone agent on every instance of a fleet, with nothing but the VM's Python.
long-summary: >
    The agent is one file, a Python zipapp built from the same code as `az scheduled-events watch`, that runs
    on the VM's own python3 (3.8 or newer, standard library only): `python3 scheduled-events-agent.pyz watch
    [the options of az scheduled-events watch]`, and `list`, `show` and `approve` as on the VM. install puts it
    on every running instance of a scale set (or on a VM) through Run Command as the systemd service
    azure-scheduled-events-agent, status reads how it runs there, uninstall takes it off. Linux only.
"""

helps['scheduled-events agent package'] = """
type: command
short-summary: Write the agent (a Python zipapp) to a file, for images built with Packer or cloud-init.
long-summary: >
    The same extension version always writes the same bytes, so a file's SHA-256 says which agent it is.
    Run it with `python3 -I -S scheduled-events-agent.pyz watch ...`; AZURE_SCHEDULED_EVENTS_IMDS_ENDPOINT
    points it at another IMDS, such as the emulator.
examples:
  - name: Write the agent to a file, to bake into an image.
    text: az scheduled-events agent package --file scheduled-events-agent.pyz
"""

helps['scheduled-events agent install'] = """
type: command
short-summary: Install the agent as a systemd service on every running instance, with these watch options.
long-summary: >
    Through Run Command on every running instance (or --instance-ids), concurrently: the agent travels in
    the script compressed, its SHA-256 is checked on the VM before anything is written, then it is written to
    /opt/azure-scheduled-events/scheduled-events-agent.pyz with the unit
    /etc/systemd/system/azure-scheduled-events-agent.service (Restart=always; state and status in
    /var/lib/azure-scheduled-events), enabled and started. Installing again with the same agent and options
    changes nothing (unchanged); a new version or new options replace the files and restart the service,
    keeping its state (upgraded). The values of the environment variables the options name (--event-grid-key-env,
    --blob-sas-env, --coordination-sas-env) are read from this shell and sent as Run Command parameters into the
    root-only /etc/default/azure-scheduled-events-agent, never in a script, unit or command line. Handler
    programs must exist on the instances. A reimage wipes the agent with the OS disk: add the cloud-init of
    --print-cloud-init to the scale set's custom data (it works beside a Custom Script extension), and let
    `agent status` show instances without it. One row per instance: installed, upgraded, unchanged or failed,
    with the agent version and the Python found; exits 1 when any failed, unless --ignore-errors.
examples:
  - name: Install the agent on every instance of a scale set; it approves each event after its handlers.
    text: az scheduled-events agent install -g my-rg --vmss-name web --approve after-handlers
  - name: Custom data for new instances, cloud-init that installs the agent with the same options on first boot.
    text: az scheduled-events agent install --print-cloud-init --approve after-handlers | tee agent-cloud-init.yaml
"""

helps['scheduled-events agent status'] = """
type: command
short-summary: How the agent runs on every instance, one line each; exits 1 unless all of them are running.
long-summary: >
    Per instance, through Run Command: the installed version, systemd's is-active and is-enabled, and the
    agent's status file (last poll age, consecutive IMDS failures, pending events, interrupted or failed
    steps, last approval). Agent is running, or missing (no agent: a new or reimaged instance), outdated
    (another version than this extension's), stopped, stale (no poll for a minute) or failed (the instance
    could not be asked). Any but running exits 1 after the output, so a pipeline can gate on it, unless
    --ignore-errors.
examples:
  - name: Gate a pipeline, exit 1 unless every instance runs the current agent and polled within a minute.
    text: |
        az scheduled-events agent install -g my-rg --vmss-name web --approve after-handlers
        az scheduled-events agent status -g my-rg --vmss-name web -o table
"""

helps['scheduled-events agent uninstall'] = """
type: command
short-summary: Stop and disable the agent on every instance and remove it and its unit; the state stays unless --purge.
examples:
  - name: Take the agent off every instance of a scale set, its state too.
    text: az scheduled-events agent uninstall -g my-rg --vmss-name web --purge
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
