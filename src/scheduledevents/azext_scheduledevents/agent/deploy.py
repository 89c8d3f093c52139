# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The agent across a fleet: install, status and uninstall on every instance through the fan-out that fleet
``list`` uses, with one row per instance. Windows instances get their row without a Run Command.

    rows = install(fleet, fleet.targets(), agent=build_zipapp(), spec=install_spec(options, ...), secrets={})
"""

from ..core.vocabulary import AgentResult, AgentState
from ..version import VERSION
from .remote import install_script, read_answer, status_script, uninstall_script

# A watcher polls every few seconds; one that has not for this long is stuck or gone.
STALE_POLL_IN_SECONDS = 60.0
NOT_ON_WINDOWS = 'not supported on Windows: the agent runs as a systemd service'


def install(fleet, targets, *, agent, spec, secrets, on_result=None):
    """Install (or upgrade) the agent on ``targets``; ``secrets`` (name -> value) travel as Run Command
    parameters, never in the script."""
    command_id, script = install_script(agent, spec)
    parameters = {'commandId': command_id, 'script': script,
                  'parameters': [{'name': name, 'value': value} for name, value in sorted(secrets.items())]}
    return _on_linux(fleet, targets, lambda _: parameters, _install_row, on_result)


def status(fleet, targets, *, on_result=None):
    command_id, script = status_script()
    return _on_linux(fleet, targets, lambda _: {'commandId': command_id, 'script': script}, _status_row, on_result)


def uninstall(fleet, targets, *, purge, on_result=None):
    command_id, script = uninstall_script(purge=purge)
    return _on_linux(fleet, targets, lambda _: {'commandId': command_id, 'script': script}, _uninstall_row,
                     on_result)


def failed(rows):
    """The instances whose row is not good (``Result`` failed, or an ``Agent`` other than running)."""
    return [row['Instance'] for row in rows
            if row.get('Result') == AgentResult.FAILED or row.get('Agent', AgentState.RUNNING) != AgentState.RUNNING]


def _on_linux(fleet, targets, script_for, row, on_result):
    linux = [t for t in targets if t.os_type.lower() != 'windows']
    results = {r.target: r for r in fleet.run_scripts(linux, script_for, lambda _, output: read_answer(output),
                                                      on_result=on_result)}
    rows = []
    for target in targets:
        result = results.get(target)
        where = target.where
        if result is None:
            rows.append(row(where, None, {'result': AgentResult.FAILED, 'error': NOT_ON_WINDOWS}))
        elif not result.ok:
            rows.append(row(where, None, {'result': AgentResult.FAILED, 'error': result.error}))
        else:
            rows.append(row(where, *result.answer))
    return rows


def _install_row(where, python, answer):
    return dict(where, Result=answer.get('result'), Version=answer.get('version'),
                Python=answer.get('python') or python, Error=answer.get('error'))


def _uninstall_row(where, _python, answer):
    return dict(where, Result=answer.get('result'), Error=answer.get('error'))


def _status_row(where, python, answer):
    watcher = answer.get('status') or {}
    row = dict(where, Agent=_verdict(answer), Version=answer.get('version'), Python=answer.get('python') or python,
               Active=answer.get('active'), Enabled=answer.get('enabled'), LastPollAge=answer.get('last_poll_age'),
               ImdsFailures=watcher.get('imds_failures_in_a_row'), Pending=watcher.get('events_pending'),
               Problems=len(watcher.get('steps_not_ok') or []) if watcher else None,
               LastApproval=watcher.get('last_approval_state') and {
                   'EventId': watcher.get('last_approval_event'), 'Time': watcher.get('last_approval_time'),
                   'State': watcher.get('last_approval_state')},
               Error=answer.get('error') or answer.get('status_error'))
    return row


def _verdict(answer):
    if answer.get('result') == AgentResult.FAILED:
        return AgentState.FAILED
    if answer.get('result') == AgentState.MISSING:
        return AgentState.MISSING
    if answer.get('version') != VERSION:
        return AgentState.OUTDATED
    if answer.get('active') != 'active':
        return AgentState.STOPPED
    age = answer.get('last_poll_age')
    if age is None or age > STALE_POLL_IN_SECONDS:
        return AgentState.STALE
    return AgentState.RUNNING
