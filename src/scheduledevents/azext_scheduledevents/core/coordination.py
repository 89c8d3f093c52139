# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Wait for all (``--approver all``): an event that names several VMs is approved only when every VM it
names has finished its scheduled handlers with success, and then by exactly one of them.

Approving releases the event for every VM in its Resources, so one VM's success says nothing of the
others. Each VM's watcher records its own outcome in a Blob Storage container shared by the group, and
reads the others':

    <EventId>/vms/<vm>.json      {"vm": "web_1", "outcome": "ready", "time": "...Z", "attempt": 1}
    <EventId>/approval.json      {"vm": "web_0", "nonce": "..."}    created If-None-Match: *, by one VM only

``group_verdict`` (pure) says what the outcomes mean: approve, withhold for good (a VM failed, or one never
reported before the handler deadline), or wait. When it says approve, every ready VM tries to create the
approval blob; the Blob service lets exactly one create succeed, and that VM sends the approval (again
after a restart, as approving twice is harmless). A VM that fails means nobody approves and the event
starts at NotBefore. The records go when the event completes.

    coordinator = Coordinator(container, vm_name='web_0', interval_in_seconds=1)
    coordinator.report(event_id, Outcome.READY, attempt=1)
    verdict = coordinator.wait(event, first_seen=..., settings=WatchSettings(), stop=threading.Event())
"""

import json
import time
from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import BlobError
from .log import get_logger
from .times import iso_utc
from .vocabulary import Outcome

logger = get_logger(__name__)


@dataclass(frozen=True)
class GroupVerdict:
    """What the group's outcomes mean now: ``decided`` (for good), ``approve``, and why, in words."""

    decided: bool
    approve: bool
    reason: str
    missing: Tuple[str, ...] = ()


def group_verdict(members, outcomes, *, now, first_seen, not_before, wait_for_all_timeout_in_seconds,
                  deadline_margin_in_seconds):
    """Pure: the verdict for a group of VM names, given ``outcomes`` (vm -> Outcome) and the time (epoch).

    Without a timeout a VM that never reports holds the approval until the handler deadline (NotBefore
    less the margin), and then for good; with one, the VMs present approve once that long has passed since
    the event appeared, never later than the handler deadline.
    """
    failed = [vm for vm in members if outcomes.get(vm) == Outcome.FAILED]
    if failed:
        return GroupVerdict(True, False, f'{", ".join(failed)} did not get ready (its scheduled handlers failed '
                                         'or its policy withholds the approval): the event starts at NotBefore')
    missing = tuple(vm for vm in members if outcomes.get(vm) != Outcome.READY)
    if not missing:
        return GroupVerdict(True, True, f'every VM it names is ready ({", ".join(members)})')
    deadline = None if not_before is None else not_before - deadline_margin_in_seconds
    if wait_for_all_timeout_in_seconds is not None:
        give_up = first_seen + wait_for_all_timeout_in_seconds
        if now >= (give_up if deadline is None else min(give_up, deadline)):
            return GroupVerdict(True, True, f'{", ".join(missing)} did not report within --wait-for-all-timeout: '
                                            'approving with the VMs that are ready', missing)
    if deadline is not None and now >= deadline:
        return GroupVerdict(True, False, f'{", ".join(missing)} never reported ready before the handler deadline: '
                                         'the event starts at NotBefore', missing)
    return GroupVerdict(False, False, f'waiting for {", ".join(missing)}', missing)


class Coordinator:
    """One VM's side of the group, through ``container`` (a ``blob.BlobContainer``). ``container_factory``
    makes one container client per call, as a client holds one connection and each event has its thread."""

    def __init__(self, container_factory, *, vm_name, interval_in_seconds, wall=time.time):
        self._container_factory = container_factory
        self.vm_name = vm_name
        self._interval = interval_in_seconds
        self._wall = wall

    def report(self, event_id, outcome, *, attempt):
        """Record this VM's outcome for the event (a rerun overwrites it)."""
        record = {'vm': self.vm_name, 'outcome': outcome, 'time': iso_utc(self._wall()), 'attempt': attempt}
        with self._container_factory() as container:
            container.put(self._vm_blob(event_id, self.vm_name), json.dumps(record).encode())

    def outcomes(self, event_id):
        """vm -> Outcome of every VM that reported for the event."""
        found = {}
        with self._container_factory() as container:
            for name in container.list(f'{event_id.upper()}/vms/'):
                data = container.get(name)
                try:
                    record = json.loads(data) if data else None
                    found[record['vm']] = Outcome(record['outcome'])
                except (ValueError, TypeError, KeyError):
                    logger.warning('Coordination record %s cannot be read; it counts as not reported.', name)
        return found

    def wait(self, event, *, first_seen, settings, stop):
        """Poll the group every interval until its verdict is decided, or ``stop`` -> GroupVerdict."""
        not_before = event.not_before.timestamp() if event.not_before else None
        while True:
            try:
                outcomes = self.outcomes(event.event_id)
            except BlobError as ex:
                logger.warning('Cannot read the group of %s: %s', event.event_id, ex)
                outcomes = {}
            verdict = group_verdict(event.resources, outcomes, now=self._wall(), first_seen=first_seen,
                                    not_before=not_before,
                                    wait_for_all_timeout_in_seconds=settings.wait_for_all_timeout_in_seconds,
                                    deadline_margin_in_seconds=settings.deadline_margin_in_seconds)
            if verdict.decided or stop.wait(self._interval):
                return verdict
            logger.info('Event %s: %s', event.event_id, verdict.reason)

    def claim(self, event_id) -> Tuple[bool, Optional[str]]:
        """Try to be the one VM that approves -> (this VM sends it, the VM that does)."""
        import uuid     # on Python 3.8 it loads platform too: only --approver all pays for that
        name = f'{event_id.upper()}/approval.json'
        with self._container_factory() as container:
            mine = json.dumps({'vm': self.vm_name, 'nonce': str(uuid.uuid4())}).encode()
            if container.put(name, mine, if_none_match=True):
                return True, self.vm_name
            data = container.get(name)
        holder = json.loads(data)['vm'] if data else None
        # This VM's own claim from before a restart: it sends the approval (again: approving is idempotent).
        return holder == self.vm_name, holder

    def forget(self, event_id):
        """Remove the event's records once it completed (each VM removes what is there; a miss is fine)."""
        with self._container_factory() as container:
            for name in container.list(f'{event_id.upper()}/'):
                container.delete(name)

    @staticmethod
    def _vm_blob(event_id, vm_name):
        return f'{event_id.upper()}/vms/{vm_name}.json'
