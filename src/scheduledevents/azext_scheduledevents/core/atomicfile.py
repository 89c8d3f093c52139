# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""Files that are replaced whole or not at all: a SIGKILL or a power cut at any moment leaves the old
content or the new one, never half of each.

    write_atomic('/var/lib/azure-scheduled-events/events/C7061BAC-....json', b'{...}')
"""

import os
import tempfile

# Temp files start with this, so a reader of the folder can tell them from real files (and drop the ones
# a crash left behind: the file each was replacing is still whole).
TEMP_PREFIX = '.tmp-'


def write_atomic(path, data, *, mode=0o700, file_mode=0o600):
    """Write ``data`` (bytes) to ``path``: a temp file in the same folder, fsync, rename, fsync of the folder.

    The folder is made (with ``mode``) if missing; the file gets ``file_mode`` before it is renamed, so it is
    never seen with other permissions. The rename is atomic on POSIX filesystems; the fsyncs make it
    durable before this returns.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=mode, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as handle:
            os.fchmod(handle.fileno(), file_mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def is_temp_file(name):
    """True for the name of a temp file ``write_atomic`` makes (one a crash may have left)."""
    return name.startswith(TEMP_PREFIX)
