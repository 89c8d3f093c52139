# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The subset of KQL (Kusto) that the fake Resource Graph runs, over rows that are plain dicts.

    run('maintenanceresources | where properties.EventStatus == "Scheduled" | project id, name',
        {'maintenanceresources': rows})          # -> Result(columns=['id', 'name'], rows=[{...}, ...])

The subset, as Kusto means it (everything else raises KqlError, as Resource Graph answers 400):

- a table first (the name case-insensitive, as Resource Graph allows ``Resources``), then operators:
  ``where P``, ``extend N = E, ...``, ``project C, N = E, ...``, ``order by E [asc|desc], ...`` (also
  ``sort by``; desc by default, nulls last when descending and first when ascending), ``take N``, ``limit N``;
- scalar expressions: string literals ('single' or "double" quoted, backslash escapes), numbers,
  ``true``/``false``/``null``; columns and properties (``properties.EventStatus``, ``properties['x']``,
  ``properties.Resources[0]``: names are case-SENSITIVE, as Kusto's are); parentheses;
  ``==`` ``!=`` (case-sensitive), ``=~`` ``!~`` (case-insensitive), ``<`` ``<=`` ``>`` ``>=``,
  ``has`` ``!has`` (a whole term, case-insensitive), ``in (...)`` ``!in (...)`` ``in~ (...)`` ``!in~ (...)``,
  ``and``, ``or``; functions ``not()``, ``tostring()``, ``toint()``, ``tolower()``, ``toupper()``,
  ``isempty()``, ``isnotempty()``.

Nulls propagate as Kusto's do: a missing property is null, a comparison with null is null, and ``where``
keeps a row only when its predicate is true. A dynamic value (a list or an object) becomes its compact JSON
text where a string is needed (so ``properties.Resources has "web_3"`` works, as in Kusto).
"""

import json
import re
from dataclasses import dataclass

# Resource Graph's columns. The scheduled-events rows carry the ones the contract documents.
RESOURCES_COLUMNS = ('id', 'name', 'type', 'tenantId', 'kind', 'location', 'resourceGroup', 'subscriptionId',
                     'managedBy', 'sku', 'plan', 'properties', 'tags', 'identity', 'zones', 'extendedLocation')
MAINTENANCE_COLUMNS = ('id', 'name', 'type', 'tenantId', 'location', 'resourceGroup', 'subscriptionId',
                       'zones', 'properties')
RESOURCE_GRAPH_TABLES = {'resources': RESOURCES_COLUMNS, 'maintenanceresources': MAINTENANCE_COLUMNS}

_TOKEN = re.compile(r'''
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<op>!in~|!in\b|in~|!has\b|==|!=|=~|!~|<=|>=|[<>=|(),.\[\]-])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z_][A-Za-z0-9_]*)*)
''', re.VERBOSE)
_ESCAPES = {'n': '\n', 't': '\t', 'r': '\r', '\\': '\\', "'": "'", '"': '"'}
_ALNUM = re.compile(r'[A-Za-z0-9]')


class KqlError(ValueError):
    """The query is outside the subset (or not KQL at all); the message says where and why."""


@dataclass(frozen=True)
class Result:
    columns: list     # the output's column names, in order
    rows: list        # one dict per row, with exactly those keys


def run(query, tables, schemas=None):
    """Run ``query`` over ``tables`` ({name: [row dict, ...]}); ``schemas`` ({name: columns}, default
    Resource Graph's) names each table's columns, so an unknown column is an error even with no rows."""
    schemas = {k.lower(): v for k, v in (schemas or RESOURCE_GRAPH_TABLES).items()}
    return _Parser(query, schemas).parse().run({k.lower(): v for k, v in tables.items()})


def to_string(value):
    """Kusto's tostring(): null -> "", a bool -> "true"/"false", dynamic -> its compact JSON."""
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(',', ':'))
    return str(value)


def has_term(text, term):
    """Kusto's ``has``: ``term`` appears in ``text`` on term boundaries (ASCII letters and digits make terms)."""
    text, term = to_string(text), to_string(term)
    pattern = re.escape(term)
    if term[:1] and _ALNUM.match(term[:1]):
        pattern = '(?<![A-Za-z0-9])' + pattern
    if term[-1:] and _ALNUM.match(term[-1:]):
        pattern += '(?![A-Za-z0-9])'
    return re.search(pattern, text, re.IGNORECASE) is not None


def _to_int(value):
    if value is None or isinstance(value, (list, dict)):
        return None
    try:
        return int(float(value)) if not isinstance(value, bool) else int(value)
    except (ValueError, OverflowError):
        return None


def _null_safe(compare):
    return lambda a, b: None if a is None or b is None else compare(a, b)


def _ordered(compare):
    def check(a, b):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) or isinstance(a, str) and isinstance(b, str):
            return compare(a, b)
        return None
    return _null_safe(check)


def _fold(value):
    return to_string(value).lower()


_BINARY = {
    '==': _null_safe(lambda a, b: a == b),
    '!=': _null_safe(lambda a, b: a != b),
    '=~': _null_safe(lambda a, b: _fold(a) == _fold(b)),
    '!~': _null_safe(lambda a, b: _fold(a) != _fold(b)),
    '<': _ordered(lambda a, b: a < b),
    '<=': _ordered(lambda a, b: a <= b),
    '>': _ordered(lambda a, b: a > b),
    '>=': _ordered(lambda a, b: a >= b),
    'has': _null_safe(has_term),
    '!has': _null_safe(lambda a, b: not has_term(a, b)),
}
_SET = {
    'in': lambda a, items: a in items,
    '!in': lambda a, items: a not in items,
    'in~': lambda a, items: _fold(a) in {_fold(i) for i in items},
    '!in~': lambda a, items: _fold(a) not in {_fold(i) for i in items},
}
_FUNCTIONS = {
    'not': lambda v: None if v is None else not v,
    'tostring': to_string,
    'toint': _to_int,
    'tolower': lambda v: None if v is None else to_string(v).lower(),
    'toupper': lambda v: None if v is None else to_string(v).upper(),
    'isempty': lambda v: v is None or v == '',
    'isnotempty': lambda v: not (v is None or v == ''),
}


def _and(left, right):
    def evaluate(row):
        a, b = left(row), right(row)
        if a is False or b is False:
            return False
        return None if a is None or b is None else bool(a and b)
    return evaluate


def _or(left, right):
    def evaluate(row):
        a, b = left(row), right(row)
        if a is True or b is True:
            return True
        return None if a is None or b is None else bool(a or b)
    return evaluate


def _membership(member, left, items):
    def evaluate(row):
        value = left(row)
        return None if value is None else member(value, [item(row) for item in items])
    return evaluate


def _sort_key(value):
    """Nulls apart; numbers before strings before dynamic values, so mixed columns still sort."""
    if value is None:
        return (False, 0, 0)
    if isinstance(value, (int, float)):
        return (True, 0, value)
    if isinstance(value, str):
        return (True, 1, value)
    return (True, 2, to_string(value))


class _Query:
    def __init__(self, table, columns):
        self.table, self.table_columns, self.columns, self.steps = table, tuple(columns), list(columns), []

    def run(self, tables):
        rows = [{c: row.get(c) for c in self.table_columns} for row in tables.get(self.table, [])]
        for step in self.steps:
            rows = step(rows)
        return Result(list(self.columns), [{c: row.get(c) for c in self.columns} for row in rows])


class _Parser:
    """Recursive descent over the tokens; each expression compiles to a function of one row."""

    def __init__(self, text, schemas):
        if not isinstance(text, str) or not text.strip():
            raise KqlError('the query is empty')
        self.text, self.schemas = text, schemas
        self.tokens, self.index = self._tokenize(text), 0

    @staticmethod
    def _tokenize(text):
        tokens, position = [], 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None and text[position] in '\'"':
                raise KqlError(f'unterminated string at position {position}')
            if match is None:
                raise KqlError(f"unexpected character {text[position]!r} at position {position}")
            if match.lastgroup != 'space':
                tokens.append((match.lastgroup, match.group(), position))
            position = match.end()
        tokens.append(('end', '', len(text)))
        return tokens

    # Tokens ----------------------------------------------------------------------------------------------

    def _peek(self, offset=0):
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def _next(self):
        token = self._peek()
        self.index += 1
        return token

    def _is(self, value, offset=0):
        kind, text, _ = self._peek(offset)
        return kind in ('op', 'name') and text == value

    def _expect(self, value, what=None):
        if not self._is(value):
            self._fail(f"expected {what or repr(value)}")
        return self._next()

    def _fail(self, message):
        kind, text, position = self._peek()
        found = 'the end of the query' if kind == 'end' else repr(text)
        raise KqlError(f'{message} at position {position}, found {found}')

    # Tabular operators ---------------------------------------------------------------------------------------

    def parse(self):
        kind, name, _ = self._peek()
        if kind != 'name' or name.lower() not in self.schemas:
            self._fail(f"expected a table ({', '.join(sorted(self.schemas))})")
        self._next()
        query = _Query(name.lower(), self.schemas[name.lower()])
        while self._is('|'):
            self._next()
            self._operator(query)
        if self._peek()[0] != 'end':
            self._fail("expected '|' or the end of the query")
        return query

    def _operator(self, query):
        kind, name, _ = self._peek()
        handler = {'where': self._where, 'extend': self._extend, 'project': self._project, 'order': self._order,
                   'sort': self._order, 'take': self._take, 'limit': self._take}.get(name if kind == 'name' else None)
        if handler is None:
            self._fail('unsupported tabular operator (this fake knows where, extend, project, order by, sort by, '
                       'take, limit)')
        self._next()
        query.steps.append(handler(query))

    def _where(self, query):
        predicate = self._expression(query.columns)
        return lambda rows: [row for row in rows if predicate(row) is True]

    def _assignments(self, query):
        """``N = E, ...`` or ``C, ...`` -> [(name, function)]; unnamed ones are named as Kusto does."""
        items, unnamed = [], 0
        while True:
            if self._peek()[0] == 'name' and self._is('=', 1):
                name = self._next()[1]
                self._next()
                items.append((name, self._expression(query.columns)))
            else:
                start = self.index
                value = self._expression(query.columns)
                name = self._column_name(start)
                if name is None:
                    unnamed += 1
                    name = f'Column{unnamed}'
                items.append((name, value))
            if not self._is(','):
                return items
            self._next()

    def _column_name(self, start):
        """Kusto's name for a projected path: ``properties.EventStatus`` -> ``properties_EventStatus``."""
        parts = []
        for kind, text, _ in self.tokens[start:self.index]:
            if kind == 'name':
                parts.append(text)
            elif kind == 'string':
                parts.append(_unquote(text))
            elif not (kind == 'op' and text in '.[]'):
                return None
        return '_'.join(parts) if parts else None

    def _extend(self, query):
        items = self._assignments(query)
        for name, _ in items:
            if name not in query.columns:
                query.columns.append(name)
        return lambda rows: [dict(row, **{name: value(row) for name, value in items}) for row in rows]

    def _project(self, query):
        items = self._assignments(query)
        query.columns = list(dict.fromkeys(name for name, _ in items))
        return lambda rows: [{name: value(row) for name, value in items} for row in rows]

    def _order(self, query):
        self._expect('by', "'by'")
        keys = []
        while True:
            value = self._expression(query.columns)
            descending = True
            if self._is('asc') or self._is('desc'):
                descending = self._next()[1] == 'desc'
            keys.append((value, descending))
            if not self._is(','):
                break
            self._next()

        def order(rows):
            rows = list(rows)
            for value, descending in reversed(keys):      # stable sorts, the last key first
                rows.sort(key=lambda row, v=value: _sort_key(v(row)), reverse=descending)
            return rows
        return order

    def _take(self, query):
        kind, text, _ = self._peek()
        if kind != 'number' or '.' in text:
            self._fail('expected a whole number of rows')
        self._next()
        count = int(text)
        return lambda rows: rows[:count]

    # Scalar expressions --------------------------------------------------------------------------------------

    def _expression(self, columns):
        left = self._conjunction(columns)
        while self._is('or'):
            self._next()
            left = _or(left, self._conjunction(columns))
        return left

    def _conjunction(self, columns):
        left = self._comparison(columns)
        while self._is('and'):
            self._next()
            left = _and(left, self._comparison(columns))
        return left

    def _comparison(self, columns):
        left = self._primary(columns)
        kind, op, _ = self._peek()
        if kind in ('op', 'name') and op in _BINARY:
            self._next()
            right, compare = self._primary(columns), _BINARY[op]
            return lambda row: compare(left(row), right(row))
        if kind in ('op', 'name') and op in _SET:
            self._next()
            self._expect('(', "'(' after " + op)
            items = [self._primary(columns)]
            while self._is(','):
                self._next()
                items.append(self._primary(columns))
            self._expect(')', "',' or ')'")
            return _membership(_SET[op], left, items)
        if kind == 'name' and op not in ('and', 'or', 'asc', 'desc', 'by'):
            self._fail(f'unsupported operator {op!r}')
        return left

    def _primary(self, columns):
        kind, text, _ = self._peek()
        if kind == 'string':
            self._next()
            value = _unquote(text)
            return lambda row: value
        if kind == 'number':
            self._next()
            value = float(text) if '.' in text else int(text)
            return lambda row: value
        if self._is('-') and self._peek(1)[0] == 'number':
            self._next()
            number = self._next()[1]
            value = -(float(number) if '.' in number else int(number))
            return lambda row: value
        if self._is('('):
            self._next()
            inner = self._expression(columns)
            self._expect(')', "')'")
            return inner
        if kind == 'name' and text in ('true', 'false', 'null'):
            self._next()
            value = {'true': True, 'false': False, 'null': None}[text]
            return lambda row: value
        if kind == 'name' and self._is('(', 1):
            return self._call(columns)
        if kind == 'name':
            return self._path(columns)
        return self._fail('expected a value (a column, a literal or a function call)')

    def _call(self, columns):
        name = self._next()[1]
        function = _FUNCTIONS.get(name)
        if function is None:
            self.index -= 1
            self._fail(f'unsupported function {name}() (this fake knows {", ".join(sorted(_FUNCTIONS))})')
        self._next()
        argument = self._expression(columns)
        self._expect(')', f"')' closing {name}()")
        return lambda row: function(argument(row))

    def _path(self, columns):
        kind, name, _ = self._peek()
        if name not in columns:
            self._fail(f"Failed to resolve scalar expression named '{name}' (columns: {', '.join(columns)})")
        self._next()
        steps = []
        while self._is('.') or self._is('['):
            if self._next()[1] == '.':
                kind, key, _ = self._next()
                if kind != 'name':
                    self.index -= 1
                    self._fail("expected a property name after '.'")
            else:
                kind, key, _ = self._next()
                if kind not in ('string', 'number'):
                    self.index -= 1
                    self._fail("expected a quoted property name or an index in '[...]'")
                key = _unquote(key) if kind == 'string' else int(key)
                self._expect(']', "']'")
            steps.append(key)

        def value(row):
            current = row.get(name)
            for key in steps:
                if isinstance(key, int) and isinstance(current, list):
                    current = current[key] if -len(current) <= key < len(current) else None
                elif isinstance(key, str) and isinstance(current, dict):
                    current = current.get(key)
                else:
                    return None
            return current
        return value


def _unquote(token):
    body = token[1:-1]
    return re.sub(r'\\(.)', lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)
