#!/usr/bin/env python
# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------

import os
import re
from codecs import open
from setuptools import setup, find_packages

# HISTORY.rst entry. Kept in the package, where the agent and its status file read it too.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'azext_scheduledevents', 'version.py'),
          'r', encoding='utf-8') as f:
    VERSION = re.search(r"^VERSION = '([^']+)'", f.read(), re.M).group(1)

CLASSIFIERS = [
    'Development Status :: 4 - Beta',
    'Intended Audience :: Developers',
    'Intended Audience :: System Administrators',
    'Programming Language :: Python',
    'Programming Language :: Python :: 3',
    'Programming Language :: Python :: 3.10',
    'Programming Language :: Python :: 3.11',
    'Programming Language :: Python :: 3.12',
    'License :: OSI Approved :: MIT License',
]

# Everything the extension needs (knack, azure-mgmt-compute) ships with azure-cli itself.
DEPENDENCIES = []

with open('README.md', 'r', encoding='utf-8') as f:
    README = f.read()
with open('HISTORY.rst', 'r', encoding='utf-8') as f:
    HISTORY = f.read()

setup(
    name='scheduledevents',
    version=VERSION,
    description='Microsoft Azure Command-Line Tools Scheduled Events Extension: see, handle and approve '
                'VM maintenance events from the Instance Metadata Service.',
    long_description=README + '\n\n' + HISTORY,
    long_description_content_type='text/markdown',
    license='MIT',
    author='Microsoft Corporation',
    author_email='azpycli@microsoft.com',
    url='https://github.com/Azure/azure-cli-extensions/tree/main/src/scheduledevents',
    classifiers=CLASSIFIERS,
    # The tests (and the fake Azure Resource Manager that lives with them) stay out of the wheel.
    packages=find_packages(exclude=['*.tests', '*.tests.*']),
    package_data={'azext_scheduledevents': ['azext_metadata.json', 'emulator/scenarios/*.json']},
    install_requires=DEPENDENCIES,
)
