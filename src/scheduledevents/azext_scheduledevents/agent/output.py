# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""A command's answer as az prints it: ``-o json`` (az's default) byte for byte, or ``-o table``.

    render_json([{'EventId': '...'}])           # knack's format_json: sorted keys, two-space indent
    render_table(transform_event_table(rows))   # knack's table of the same rows
"""

import json

# knack's table leaves these columns out (case matters: 'Type' stays).
_SKIPPED_COLUMNS = ('id', 'type', 'etag')
# A column is at least this much wider than its header; columns are two spaces apart.
_HEADER_PADDING = 2


def render_json(result):
    """The text ``az ... -o json`` prints for ``result``."""
    return json.dumps(result, ensure_ascii=False, indent=2, sort_keys=True, separators=(',', ': ')) + '\n'


def render_table(rows):
    """The text ``az ... -o table`` prints for rows that went through the command's table transformer:
    scalar values only (None, lists and dicts are left out), columns in first-seen order, left-aligned,
    lines without trailing blanks (knack's ``_TableOutput`` over tabulate's "simple" format)."""
    items = [{key[:1].upper() + key[1:]: value for key, value in row.items()
              if key not in _SKIPPED_COLUMNS and value is not None and not isinstance(value, (list, dict, set))}
             for row in rows]
    columns = list(dict.fromkeys(key for item in items for key in item))
    if not columns:
        return '\n'
    cells = [[str(item.get(column, '')) for column in columns] for item in items]
    widths = [max([len(column) + _HEADER_PADDING] + [len(line[i]) for line in cells])
              for i, column in enumerate(columns)]
    lines = [columns, ['-' * width for width in widths]] + cells
    return ''.join('  '.join(text.ljust(width) for text, width in zip(line, widths)).rstrip() + '\n'
                   for line in lines)
