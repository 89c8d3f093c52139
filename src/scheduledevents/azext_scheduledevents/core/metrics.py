# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The watcher's counters in the Prometheus text exposition format 0.0.4, for node_exporter's textfile
collector (``--metrics-file /var/lib/node_exporter/textfile_collector/scheduled-events.prom``). Pure: a
``watchstats.Snapshot`` in, the file's text out.

    azure_scheduled_events_events_present{event_type,event_status}     gauge    events acted on, not yet completed
    azure_scheduled_events_handler_runs_total{transition}               counter  handler commands run
    azure_scheduled_events_handler_failures_total{transition}           counter  runs that did not exit 0 in time
    azure_scheduled_events_approvals_total{result}                      counter  approval decisions
    azure_scheduled_events_imds_errors_total                            counter  polls IMDS did not answer well
    azure_scheduled_events_last_successful_poll_timestamp_seconds       gauge    unix time; 0 before the first

Every label set this version knows is written, with 0 until it happens, so a ``rate()`` or an alert has a
series to start from. Counters start again from 0 when the watcher restarts, as Prometheus expects.

    text = render(stats.snapshot(events))
"""

from .vocabulary import ApprovalState, EventStatus, EventType, TransitionKind

PREFIX = 'azure_scheduled_events_'
# What IMDS shows; Completed and Canceled are the control plane's alone.
IMDS_STATUSES = (EventStatus.SCHEDULED, EventStatus.STARTED)
# The approval results a decision ends with (``sending`` is on the way to one of them).
APPROVAL_RESULTS = (ApprovalState.APPROVED, ApprovalState.BY_PEER, ApprovalState.WITHHELD, ApprovalState.NOT_SENT,
                    ApprovalState.FAILED)


def render(snapshot):
    """The metrics file's text for one ``Snapshot``."""
    present = {(kind, str(status)): 0 for kind in EventType.values() for status in IMDS_STATUSES}
    present.update({(kind, status): n for kind, status, n in snapshot.events.present})
    kinds = _with_known(TransitionKind.values(), snapshot.handler_runs)
    results = _with_known([str(result) for result in APPROVAL_RESULTS], snapshot.approvals)
    families = [
        ('events_present', 'gauge', 'Scheduled events this watcher acts on and has not seen complete, by type and '
         'status.', [({'event_type': kind, 'event_status': status}, n) for (kind, status), n in
                     sorted(present.items(), key=lambda item: (str(item[0][0]), str(item[0][1])))]),
        ('handler_runs_total', 'counter', 'Handler commands run, by transition.',
         [({'transition': kind}, snapshot.handler_runs.get(kind, 0)) for kind in kinds]),
        ('handler_failures_total', 'counter', 'Handler commands that did not exit 0 in time, by transition.',
         [({'transition': kind}, snapshot.handler_failures.get(kind, 0)) for kind in kinds]),
        ('approvals_total', 'counter', 'Approval decisions, by result: approved (sent), by-peer (another VM of '
         'the group sent it), withheld, not-sent (the event had moved on), failed (sending failed).',
         [({'result': result}, snapshot.approvals.get(result, 0)) for result in results]),
        ('imds_errors_total', 'counter', 'Polls that IMDS did not answer well (after retries within the poll).',
         [({}, snapshot.imds_errors)]),
        ('last_successful_poll_timestamp_seconds', 'gauge', 'When IMDS last answered a poll, in unix seconds; 0 '
         'before the first answer.', [({}, snapshot.last_success or 0)]),
    ]
    lines = []
    for name, kind, help_text, samples in families:
        lines += [f'# HELP {PREFIX}{name} {escape_help(help_text)}', f'# TYPE {PREFIX}{name} {kind}']
        lines += [f'{PREFIX}{name}{_labels(labels)} {_value(value)}' for labels, value in samples]
    return '\n'.join(lines) + '\n'


def escape_label_value(value):
    """A label value as the format writes it: backslash, double quote and line feed escaped."""
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def escape_help(text):
    """HELP text as the format writes it: backslash and line feed escaped."""
    return text.replace('\\', '\\\\').replace('\n', '\\n')


def _with_known(known, counts):
    """The known label values in their order, then any others that were counted, sorted."""
    return list(known) + sorted(set(counts) - set(known))


def _labels(labels):
    if not labels:
        return ''
    return '{' + ','.join(f'{name}="{escape_label_value(value)}"' for name, value in labels.items()) + '}'


def _value(value):
    return str(value) if isinstance(value, int) else repr(float(value))
