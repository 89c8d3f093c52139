# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""--approver all: three watchers, each with its own IMDS emulator, sharing one event through a container
of Azurite (the real Azure Storage emulator). Approving on any emulator starts the event on all of them,
as Azure does."""

import functools
import json
import time
import uuid

import pytest

from azext_scheduledevents.core.approval import ApprovalPolicy
from azext_scheduledevents.core.blob import BlobContainer, ManagedIdentityCredential, SasCredential
from azext_scheduledevents.core.coordination import group_verdict
from azext_scheduledevents.core.daemon import SinkOptions
from azext_scheduledevents.emulator.imds import ImdsEmulator

from .watching import Recorder, WatcherThread

VMS = ('web_0', 'web_1', 'web_2')
EVENT_ID = 'C7061BAC-AFDC-4513-B24B-AA5F13A16123'
POLICY = ApprovalPolicy(mode='after-handlers', approver='all')
NOW = 1000.0


@pytest.mark.parametrize('outcomes, now, timeout, expected', [
    ({'a': 'ready', 'b': 'ready', 'c': 'ready'}, NOW, None, (True, True)),
    ({'a': 'ready', 'b': 'failed'}, NOW, None, (True, False)),
    ({'a': 'ready', 'b': 'ready'}, NOW, None, (False, False)),
    ({'a': 'ready', 'b': 'ready'}, NOW + 30, 20, (True, True)),
    ({'a': 'ready', 'b': 'ready'}, NOW + 10, 20, (False, False)),
    ({'a': 'ready', 'b': 'ready'}, NOW + 56, None, (True, False)),
    ({'a': 'ready', 'b': 'ready'}, NOW + 56, 100, (True, True)),
    ({'a': 'ready', 'b': 'failed'}, NOW + 30, 20, (True, False)),
], ids=['all-ready', 'one-failed', 'one-missing-waits', 'timeout-passed', 'timeout-not-yet',
        'deadline-without-timeout', 'deadline-before-timeout', 'failed-beats-timeout'])
def test_group_verdict(outcomes, now, timeout, expected):
    verdict = group_verdict(('a', 'b', 'c'), outcomes, now=now, first_seen=NOW, not_before=NOW + 60,
                            wait_for_all_timeout_in_seconds=timeout, deadline_margin_in_seconds=5)
    assert (verdict.decided, verdict.approve) == expected
    assert verdict.missing == (() if len(outcomes) == 3 or 'failed' in outcomes.values() else ('c',))


class Group:
    """Three emulated VMs with one shared event; an approval on one starts the event on every one."""

    def __init__(self, notice=60, event_id=EVENT_ID):
        self.emulators = {}
        for vm in VMS:
            emulator = ImdsEmulator(vm_name=vm, rate_limit=0, events=[{
                'EventType': 'Reboot', 'EventId': event_id, 'notice': notice, 'Resources': list(VMS)}])
            self.emulators[vm] = emulator
            emulator.approve = functools.partial(self._approve_everywhere, emulator.approve)

    def _approve_everywhere(self, approve_here, event_ids):
        approve_here(event_ids)
        for emulator in self.emulators.values():
            ImdsEmulator.approve(emulator, event_ids)

    def __enter__(self):
        for emulator in self.emulators.values():
            emulator.__enter__()
        return self

    def __exit__(self, *exc_info):
        for emulator in self.emulators.values():
            emulator.__exit__(*exc_info)

    def posts(self):
        """(VM, time) of every approval POST any VM sent."""
        return [(vm, r['time']) for vm, e in self.emulators.items() for r in e.requests() if r['method'] == 'POST']


@pytest.fixture
def container(azurite_blob):
    name = f'group-{uuid.uuid4().hex[:12]}'
    url = azurite_blob.create_container(name)
    return functools.partial(BlobContainer, url, credential=SasCredential(azurite_blob.container_sas(name)))


def watchers(group, tmp_path, recorder, container, *, vms=VMS, settings=None, **handlers):
    """A watcher per VM; ``handlers[vm]`` says how its recording handler behaves (sleep, exit_code)."""
    return [WatcherThread(group.emulators[vm].url, tmp_path / vm, policy=POLICY, coordination=container,
                          commands={'scheduled': [recorder.handler(vm, **handlers.get(vm, {}))]}, **(settings or {}))
            for vm in vms]


def decisions(watcher):
    return [line for line in watcher.lines if line['transition'] in ('approved', 'not-approved')]


def run_all(threads, until, timeout=30):
    for thread in threads:
        thread.__enter__()
    try:
        threads[0].wait_for(until, timeout=timeout)
        time.sleep(0.5)
    finally:
        for thread in threads:
            thread.__exit__(None, None, None)


def test_one_approval_after_the_slowest_handler(tmp_path, container):
    recorder = Recorder.create(tmp_path)
    with Group() as group:
        threads = watchers(group, tmp_path, recorder, container,
                           web_0={'sleep': 0.2}, web_1={'sleep': 2.5}, web_2={'sleep': 1.0})
        run_all(threads, lambda: all(decisions(t) for t in threads))
        posts = group.posts()
    slowest = max(run['ended'] for run in recorder.runs('end'))
    assert len(posts) == 1 and posts[0][1] >= slowest              # exactly one, after the slowest finished
    for thread in threads:
        decision, = decisions(thread)
        assert decision['transition'] == 'approved' and 'every VM it names is ready' in decision['detail']
    with container() as client:
        assert json.loads(client.get(f'{EVENT_ID}/approval.json'))['vm'] == posts[0][0]


def test_one_failed_vm_means_nobody_approves(tmp_path, container):
    recorder = Recorder.create(tmp_path)
    with Group() as group:
        threads = watchers(group, tmp_path, recorder, container, web_1={'exit_code': 1})
        run_all(threads, lambda: all(decisions(t) for t in threads))
        assert group.posts() == []
    for thread in threads:
        decision, = decisions(thread)
        assert decision['transition'] == 'not-approved'
    assert all('web_1' in decisions(t)[0]['detail'] for t in threads if t is not threads[1])


def test_a_vm_without_a_watcher_holds_the_approval(tmp_path, container):
    recorder = Recorder.create(tmp_path)
    with Group() as group:
        threads = watchers(group, tmp_path, recorder, container, vms=VMS[:2])
        run_all(threads, lambda: len(recorder.runs('end')) == 2, timeout=15)
        time.sleep(2)
        assert group.posts() == [] and all(decisions(t) == [] for t in threads)   # still waiting for web_2


def test_wait_for_all_timeout_approves_with_those_present(tmp_path, container):
    recorder = Recorder.create(tmp_path)
    with Group() as group:
        started = time.time()
        threads = watchers(group, tmp_path, recorder, container, vms=VMS[:2],
                           settings={'wait_for_all_timeout_in_seconds': 2.0})
        run_all(threads, lambda: all(decisions(t) for t in threads))
        posts = group.posts()
    assert len(posts) == 1 and posts[0][1] - started >= 2.0
    assert all('web_2 did not report within --wait-for-all-timeout' in decisions(t)[0]['detail'] for t in threads)


def test_records_are_removed_when_the_event_completes(tmp_path, container):
    recorder = Recorder.create(tmp_path)
    with Group() as group:
        threads = watchers(group, tmp_path, recorder, container)
        for thread in threads:
            thread.__enter__()
        try:
            threads[0].wait_for(lambda: all(decisions(t) for t in threads), timeout=30)
            with container() as client:
                assert client.list(f'{EVENT_ID}/')
            for emulator in group.emulators.values():
                emulator.withdraw(EVENT_ID)
            threads[0].wait_for(lambda: all('completed' in t.transitions() for t in threads), timeout=30)
            time.sleep(0.5)
        finally:
            for thread in threads:
                thread.__exit__(None, None, None)
    with container() as client:
        assert client.list(f'{EVENT_ID}/') == []


def test_managed_identity_over_https(tmp_path, azurite_blob_https, monkeypatch):
    """The VMs' tokens come from their IMDS emulators; Azurite's --oauth basic takes them over https."""
    monkeypatch.setenv('SSL_CERT_FILE', str(azurite_blob_https.certificates.ca))
    name = f'group-{uuid.uuid4().hex[:12]}'
    azurite_blob_https.create_container(name)
    url = azurite_blob_https.container_url(name)
    recorder = Recorder.create(tmp_path)
    with Group() as group:
        threads = []
        for vm in VMS:
            identity = ManagedIdentityCredential(group.emulators[vm].url)
            threads.append(WatcherThread(group.emulators[vm].url, tmp_path / vm, policy=POLICY,
                                         coordination=functools.partial(BlobContainer, url, credential=identity),
                                         commands={'scheduled': [recorder.handler(vm)]}))
        run_all(threads, lambda: all(decisions(t) for t in threads))
        assert len(group.posts()) == 1
    assert all(decisions(t)[0]['transition'] == 'approved' for t in threads)


def test_blob_sink_writes_each_transition_once(tmp_path, container):
    emulator_events = [{'EventType': 'Freeze', 'notice': 60, 'Resources': ['web_0']}]
    with ImdsEmulator(vm_name='web_0', rate_limit=0, events=emulator_events) as emulator:
        sinks = SinkOptions(blob_container=container)
        with WatcherThread(emulator.url, tmp_path / 'state', sinks=sinks) as watcher:
            watcher.wait_for(lambda: 'scheduled' in watcher.transitions())
            event_id = watcher.lines[0]['EventId']
            with container() as client:
                deadline = time.monotonic() + 10
                while not client.list('web_0/') and time.monotonic() < deadline:
                    time.sleep(0.05)
                names = client.list('web_0/')
                body = json.loads(client.get(names[0]))
    assert names == [f'web_0/{event_id}/scheduled.json']
    assert body['transition'] == 'scheduled' and body['EventId'] == event_id
