# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``--junit FILE``: the cycle's report as JUnit XML, which Azure DevOps (PublishTestResults) and GitHub
test reporters show natively: one test case per instance, with its time; a ``failure`` with the reason
for one that failed or timed out; ``skipped`` for one not cycled; hook output as ``system-out``."""

import xml.etree.ElementTree as ET

from ..vocabulary import CycleResult
from .report import FAILURES, SKIPS


def junit_xml(report):
    """The report (``cycle_report``'s dict) -> the XML document's bytes."""
    name = f'az scheduled-events cycle {report["resourceGroup"]}/{report["scaleSet"]} ({report["action"]})'
    cases = report['instances']
    failures = sum(1 for c in cases if c['result'] in FAILURES)
    skipped = sum(1 for c in cases if c['result'] in SKIPS or c['result'] == CycleResult.PENDING)
    seconds = sum(c['seconds_to_healthy'] or 0 for c in cases)
    counts = {'tests': str(len(cases)), 'failures': str(failures), 'errors': '0', 'skipped': str(skipped),
              'time': f'{seconds:.1f}'}
    suites = ET.Element('testsuites', name=name, **counts)
    suite = ET.SubElement(suites, 'testsuite', name=name, **counts)
    for case in cases:
        element = ET.SubElement(suite, 'testcase', classname=f'{report["scaleSet"]}.{report["action"]}',
                                name=case['name'], time=f'{case["seconds_to_healthy"] or 0:.1f}')
        reason = case['reason'] or case['result']
        if case['result'] in FAILURES:
            ET.SubElement(element, 'failure', message=reason, type=case['result']).text = reason
        elif case['result'] != CycleResult.HEALTHY:
            ET.SubElement(element, 'skipped', message=reason)
        output = _hook_output(case['hooks'])
        if output:
            ET.SubElement(element, 'system-out').text = output
    ET.indent(suites)
    return ET.tostring(suites, encoding='utf-8', xml_declaration=True) + b'\n'


def _hook_output(hooks):
    parts = []
    for kind, runs in hooks.items():
        for run in runs:
            parts.append(f'--- {kind}, attempt {run["attempt"]}: exit {run["exitCode"]}'
                         + (f' ({run["error"]})' if run['error'] else ''))
            parts += [text for text in (run['stdout'], run['stderr']) if text]
    return '\n'.join(parts)
