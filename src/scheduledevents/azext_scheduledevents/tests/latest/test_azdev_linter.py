# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""azdev linter's HIGH and MEDIUM rules, applied offline to the extension's real command table and help.

azure-cli-extensions' CI runs ``azdev linter --include-whl-extensions scheduledevents``. azdev cannot run here:
importing its linter downloads a file from a code host, ``azdev setup`` wants a clone of azure-cli, and a few
rules fetch URLs or read git diffs. So the command table is loaded in-process the way azdev loads it
(azure.cli.core's ``create_invoker_and_load_cmds_and_args`` and ``get_all_help``, on an AzCli whose config
directory is a throwaway one) and each rule of azdev 0.2.13 (azdev/operations/linter/rules/) is stated again
under azdev's own name, with azdev's semantics, honouring ``linter_exclusions.yml`` as azdev does; so is the
show-command pylint plugin that ``azdev linter`` also runs. Offline, broken_site_link_* can only flag links that
cannot answer CI at all (loopback, link-local, private, reserved names); the rest are not fetched.
"""

import argparse
import ast
import importlib
import ipaddress
import json
import re
import shlex
from datetime import datetime
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml
from knack.deprecation import Deprecated
from knack.help_files import helps

from azure.cli.core import AzCli, AzCommandsLoader, MainCommandsLoader, __version__ as core_version
from azure.cli.core._config import ENV_VAR_PREFIX
from azure.cli.core._help import AzCliHelp
from azure.cli.core._output import AzOutputProducer
from azure.cli.core.azlogging import AzCliLogging
from azure.cli.core.commands import AzCliCommandInvoker, CliCommandType, ExtensionCommandSource
from azure.cli.core.file_util import create_invoker_and_load_cmds_and_args, get_all_help
from azure.cli.core.parser import AzCliCommandParser

REPO = Path(__file__).resolve().parents[5]
EXTENSION_SRC = Path(__file__).resolve().parents[3]
# azdev merges the extension's own file (src/<ext>/) and the repository's global one.
EXCLUSION_FILES = (EXTENSION_SRC / 'linter_exclusions.yml', REPO / 'linter_exclusions.yml')

# azdev rules this file does not state again, and why; an exclusion may still name them.
NOT_MIRRORED = {
    'group_delete_commands_should_confirm': 'LOW',
    'id_params_only_for_guid': 'LOW',
    'missing_command_test_coverage': 'MEDIUM, needs the PR git diff and self.cmd() scenario tests',
    'missing_parameter_test_coverage': 'MEDIUM, needs the PR git diff and self.cmd() scenario tests',
}


# ---------------------------------------------------------------- loading, as azdev does

def _loader_for(extension_name, loader_cls):
    """MainCommandsLoader that loads one extension's loader only (and marks its commands as that extension's)."""

    class OneExtensionLoader(MainCommandsLoader):
        def load_command_table(self, args):
            self.command_table.clear()
            self.command_group_table.clear()
            # The full load leaves a command string behind (azure-cli's storage module sets one); the global
            # argument contexts that load_arguments() opens need it to be a string.
            self.cli_ctx.invocation.data['command_string'] = ''
            loader = loader_cls(cli_ctx=self.cli_ctx)
            table = loader.load_command_table(args)
            for name, command in table.items():
                command.command_source = ExtensionCommandSource(extension_name=extension_name)
                self.cmd_to_loader_map.setdefault(name, []).append(loader)
            self.loaders.append(loader)
            self.command_table.update(table)
            self.command_group_table.update(loader.command_group_table)
            return self.command_table

    return OneExtensionLoader


def _offline_config_dir(path):
    """A config directory with telemetry off and the version check pre-seeded: AzCli() probes a blob host without."""
    path.mkdir(parents=True, exist_ok=True)
    (path / 'config').write_text('[core]\ncollect_telemetry = false\n')
    (path / 'versionCheck.json').write_text(json.dumps({
        'versions': {'azure-cli': {'local': core_version}, 'core': {'local': core_version}},
        'update_time': datetime.now().strftime('%Y-%m-%d %H:%M:%S.%f')}))
    return path


class Model:
    """What azdev's Linter reads: command table, groups, loaded help, the YAML help entries, the parser."""

    def __init__(self, config_dir, extension_name, loader_cls, help_entries):
        with pytest.MonkeyPatch.context() as env:
            env.setenv('AZURE_CONFIG_DIR', str(config_dir))
            env.setenv('AZURE_CORE_COLLECT_TELEMETRY', 'false')
            cli = AzCli(cli_name='az', config_dir=str(config_dir), config_env_var_prefix=ENV_VAR_PREFIX,
                        commands_loader_cls=_loader_for(extension_name, loader_cls),
                        invocation_cls=AzCliCommandInvoker, parser_cls=AzCliCommandParser,
                        logging_cls=AzCliLogging, output_cls=AzOutputProducer, help_cls=AzCliHelp)
            create_invoker_and_load_cmds_and_args(cli)
            self.loaded_help = {h.command: h for h in get_all_help(cli) if h.command}
        self.loader = loader = cli.invocation.commands_loader
        self.commands = loader.command_table
        self.group_table = loader.command_group_table
        self.groups = sorted({' '.join(g.split()[:n]) for g in self.group_table for n in range(1, len(g.split()) + 1)})
        self.help_entries = {name: yaml.safe_load(text) for name, text in help_entries.items()}
        self.parser = cli.invocation.parser

    def settings(self, command, param):
        return self.commands[command].arguments[param].type.settings

    def options(self, command, param):
        return self.settings(command, param).get('options_list')

    def summary(self, name):
        entry = self.loaded_help.get(name)
        return entry and (entry.short_summary or entry.long_summary)

    def param_help_entry(self, command, param):
        options = self.options(command, param) or []
        return next((p for p in getattr(self.loaded_help.get(command), 'parameters', [])
                     if any(o in options for o in p.name.split())), None)

    def param_help(self, command, param):
        entry = self.param_help_entry(command, param)
        if entry is None:  # as azdev: arguments without a help entry (--ids) fall back to the registered text
            return self.settings(command, param).get('help')
        return entry.short_summary or entry.long_summary

    def command_expired(self, command):
        info = self.commands[command].deprecate_info
        return bool(info and info.expired())


def _our_help_entries(help_module):
    """The knack help entries that the help module itself defines (azdev lints these YAML texts)."""
    with mock.patch.dict(helps, clear=True):
        importlib.reload(importlib.import_module(help_module))
        return dict(helps)


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    from azext_scheduledevents import ScheduledEventsCommandsLoader
    return Model(_offline_config_dir(tmp_path_factory.mktemp('azcfg')), 'scheduledevents',
                 ScheduledEventsCommandsLoader, _our_help_entries('azext_scheduledevents._help'))


def load_exclusions(paths=EXCLUSION_FILES):
    """azdev's merge of linter_exclusions.yml files: rule lists per command and per command parameter."""
    merged = {}
    for path in paths:
        for entity, value in ((yaml.safe_load(path.read_text()) if path.is_file() else None) or {}).items():
            target = merged.setdefault(entity, {})
            target.setdefault('rule_exclusions', []).extend(value.get('rule_exclusions', []))
            for param, rules in value.get('parameters', {}).items():
                target.setdefault('parameters', {}).setdefault(param, []).extend(rules.get('rule_exclusions', []))
    return merged


# ---------------------------------------------------------------- the rules

RULES = {}


def rule(severity, kind):
    """Register a check under the azdev rule name it mirrors; kind says what it iterates, as azdev's decorators."""
    def register(func):
        RULES[func.__name__] = (severity, kind, func)
        return func
    return register


# An azdev 'kind' -> what the rule runs on and how its violation is labelled.
ENTITIES = {
    'help_entries': (lambda m: sorted(m.help_entries), 'Help-Entry: `{}`'),
    'command_groups': (lambda m: m.groups, 'Command-Group: `{}`'),
    'commands': (lambda m: sorted(m.commands), 'Command: `{}`'),
    'params': (lambda m: [(c, p) for c in sorted(m.commands) for p in m.commands[c].arguments],
               'Parameter: `{}`, `{}`'),
}


def run_rule(name, model, exclusions):
    """The violations of one rule, less what linter_exclusions.yml excludes, as 'entity - message' lines."""
    _, kind, check = RULES[name]
    entities, label = ENTITIES[kind]
    found = []
    for entity in entities(model):
        if kind == 'params':
            excluded = exclusions.get(entity[0], {}).get('parameters', {}).get(entity[1], [])
        else:
            excluded = exclusions.get(entity, {}).get('rule_exclusions', [])
        if name in excluded:
            continue
        message = check(model, *entity) if kind == 'params' else check(model, entity)
        if message:
            found.append(label.format(*(entity if kind == 'params' else [entity])) + ' - ' + message)
    return found


# Allowed HTML tags of Microsoft Learn, which azdev's disallowed_html_tag_* rules use; closing tags too.
_ALLOWED_TAGS = set('''a address article b blockquote button br caption center cite code col colgroup dd del details
    div dl dt em figcaption figure form h1 h2 h3 h4 head hr i iframe image img input ins kbd label li nav nobr ol p
    pre rgn s section source span strike strong sub summary sup table tbody td tfoot th thead tr u ul wbr'''.split())
_ALLOWED_TAGS |= {'/' + t for t in _ALLOWED_TAGS} | {'br /', 'br/'}
_TAG = re.compile(r'<([^\n>]+)>')
_URL = re.compile(r'(?<!`)(https?://[^\s`]+)(?!`)')


def disallowed_tags(text):
    """<...> placeholders that are not allowed tags; azdev lets one pass when a backtick stands before and after it."""
    bad = set()
    for match in _TAG.finditer(text or ''):
        wrapped = '`' in text[:match.start()] and '`' in text[match.end():]
        if match.group(1) not in _ALLOWED_TAGS and not wrapped:
            bad.add(match.group(0))
    return sorted(bad)


def unreachable_links(text):
    """Links azdev would fetch (its regex and trimming) that cannot answer 200 to CI: loopback, link-local and
    private addresses, localhost and reserved names. Offline, other links are not fetched, so not judged."""
    bad = []
    for url in _URL.findall(text or ''):
        url = re.sub(r'[.")\'\s]*$', '', url)
        host = urlsplit(url).hostname or ''
        try:
            local = not ipaddress.ip_address(host).is_global
        except ValueError:
            local = host == 'localhost' or host.endswith(('.localhost', '.test', '.example', '.invalid'))
        if local:
            bad.append(url)
    return bad


def _summaries_check(entry, find, what):
    for part in ('short_summary', 'long_summary'):
        found = entry and find(getattr(entry, part, None))
        if found:
            return f'{what} {found} in {part.replace("_", " ")}'
    return None


@rule('HIGH', 'commands')
def missing_command_help(m, command):
    return None if m.summary(command) or m.command_expired(command) else 'Missing help'


@rule('HIGH', 'commands')
def no_ids_for_list_commands(m, command):
    if command.split()[-1] == 'list' and 'ids' in m.commands[command].arguments:
        return 'List commands should not expose --ids argument'
    return None


@rule('HIGH', 'commands')
def expired_command(m, command):
    return 'Deprecated command is expired and should be removed.' if m.command_expired(command) else None


@rule('HIGH', 'commands')
def disallowed_html_tag_from_command(m, command):
    return _summaries_check(m.loaded_help.get(command), disallowed_tags, 'Disallowed html tags')


@rule('MEDIUM', 'commands')
def broken_site_link_from_command(m, command):
    return _summaries_check(m.loaded_help.get(command), unreachable_links, 'Broken links')


# azdev's bundled cmd_example_config.json: examples required by command-name suffix (substring match, in
# this order); 1 for any other command. azdev counts every command a PR adds to commands.py: for a new
# extension, all of them.
_EXAMPLES_NEEDED = {'create': 1, 'add': 1, 'update': 1, 'list': 0, 'delete': 0, 'remove': 0, 'show': 0, 'wait': 0}


@rule('HIGH', 'commands')
def missing_command_example(m, command):
    entry = m.loaded_help.get(command)
    suffix = command.split()[-1]
    needed = next((n for key, n in _EXAMPLES_NEEDED.items() if key in suffix), 1)
    if entry is None or not needed or not getattr(entry, 'parameters', None):
        return None
    if len(getattr(entry, 'examples', None) or []) < needed:
        return f'Command `{command}` should have at least {needed} example(s)'
    return None


def _group_expired(m, group):
    info = getattr(m.group_table.get(group), 'group_kwargs', {}).get('deprecate_info')
    return bool(info and info.expired())


@rule('HIGH', 'command_groups')
def missing_group_help(m, group):
    return None if m.summary(group) or _group_expired(m, group) else 'Missing help'


@rule('HIGH', 'command_groups')
def expired_command_group(m, group):
    return 'Deprecated command group is expired and should be removed.' if _group_expired(m, group) else None


@rule('MEDIUM', 'command_groups')
def require_wait_command_if_no_wait(m, group):
    children = [c for c in m.commands if c.startswith(group) and len(c.split()) == len(group.split()) + 1]
    if any(c.split()[-1].lower() == 'wait' for c in children):
        return None
    no_wait = [c for c in children if m.commands[c].supports_no_wait]
    return f"Group does not have a 'wait' command, yet '{no_wait[0]}' exposes '--no-wait'" if no_wait else None


@rule('HIGH', 'command_groups')
def disallowed_html_tag_from_command_group(m, group):
    return _summaries_check(m.loaded_help.get(group), disallowed_tags, 'Disallowed html tags')


@rule('MEDIUM', 'command_groups')
def broken_site_link_from_command_group(m, group):
    return _summaries_check(m.loaded_help.get(group), unreachable_links, 'Broken links')


def _live_options(m, command, param):
    return [o for o in m.options(command, param) or [] if not isinstance(o, Deprecated)]


@rule('HIGH', 'params')
def missing_parameter_help(m, command, param):
    return None if m.param_help(command, param) or m.command_expired(command) else 'Missing help'


@rule('HIGH', 'params')
def expired_parameter(m, command, param):
    info = m.settings(command, param).get('deprecate_info')
    return 'Deprecated parameter is expired and should be removed.' if info and info.expired() else None


@rule('HIGH', 'params')
def expired_option(m, command, param):
    expired = [o.target for o in m.options(command, param) or [] if isinstance(o, Deprecated) and o.expired()]
    return f"Deprecated options '{', '.join(expired)}' are expired and should be removed." if expired else None


@rule('HIGH', 'params')
def bad_short_option(m, command, param):
    bad = [o for o in _live_options(m, command, param) if not o.startswith('--') and len(o) != 2]
    return f'Found multi-character short options: {" | ".join(bad)}.' if bad else None


@rule('MEDIUM', 'params')
def parameter_should_not_end_in_resource_group(m, command, param):
    bad = [o for o in _live_options(m, command, param) if o != '--resource-group'
           and o.endswith(('resource-group', 'resourcegroup', 'resource-group-name'))]
    return f"Only '--resource-group' may name the resource group, not {' | '.join(bad)}" if bad else None


@rule('HIGH', 'params')
def no_positional_parameters(m, command, param):
    return None if m.options(command, param) else f"Parameter '{param}' is positional"


@rule('HIGH', 'params')
def no_parameter_defaults_for_update_commands(m, command, param):
    default = m.settings(command, param).get('default')
    if command.split()[-1].lower() == 'update' and default:
        return f"Update commands should not have parameters with default values; default '{default}'"
    return None


@rule('MEDIUM', 'params')
def no_required_location_param(m, command, param):
    is_location = param.lower() == 'location' or param.endswith('location')
    if is_location and 'resource_group_name' in m.commands[command].arguments \
            and m.settings(command, param).get('required'):
        return 'Location parameters should not be required; default to the resource group location'
    return None


@rule('HIGH', 'params')
def option_length_too_long(m, command, param):
    """azdev: the SHORTEST option, without its leading dashes, longer than 22 characters."""
    options = m.options(command, param) or []
    if any(isinstance(o, Deprecated) or o.startswith('--__') for o in options):
        return None
    shortest = min((len(o) - (2 if o.startswith('--') else 1 if o.startswith('-') else 0) for o in options), default=0)
    return f'All options {options} are longer than 22 characters: add a shorter one' if shortest > 22 else None


@rule('HIGH', 'params')
def option_should_not_contain_under_score(m, command, param):
    for option in m.options(command, param) or []:
        if isinstance(option, Deprecated) or option.startswith('--__'):
            return None  # azdev stops at the first deprecated or internal option
        if '_' in option:
            return f"Option {option} contains '_', which should be '-'"
    return None


@rule('HIGH', 'params')
def disallowed_html_tag_from_parameter(m, command, param):
    if m.command_expired(command):
        return None
    return _summaries_check(m.param_help_entry(command, param), disallowed_tags, 'Disallowed html tags')


@rule('MEDIUM', 'params')
def broken_site_link_from_parameter(m, command, param):
    if m.command_expired(command):
        return None
    return _summaries_check(m.param_help_entry(command, param), unreachable_links, 'Broken links')


@rule('HIGH', 'help_entries')
def unrecognized_help_entry_rule(m, entry):
    return None if entry in m.commands or entry in m.groups else 'Not a recognized command or command-group'


@rule('HIGH', 'help_entries')
def faulty_help_type_rule(m, entry):
    kind = m.help_entries[entry].get('type')
    if entry in m.groups and kind != 'group':
        return 'Command-group should be of help-type `group`'
    if entry in m.commands and kind != 'command':
        return 'Command should be of help-type `command`'
    return None


@rule('HIGH', 'help_entries')
def unrecognized_help_parameter_rule(m, entry):
    if entry not in m.commands:
        return None
    known = {p.name for p in getattr(m.loaded_help.get(entry), 'parameters', [])}
    bad = [p.get('name') for p in m.help_entries[entry].get('parameters', []) if p.get('name') not in known]
    return f'The following parameter help names are invalid: {" | ".join(map(str, bad))}' if bad else None


def _examples(m, entry):
    return m.help_entries[entry].get('examples') or []


@rule('HIGH', 'help_entries')
def faulty_help_example_rule(m, entry):
    bad = [str(i) for i, ex in enumerate(_examples(m, entry)) if f'az {entry}' not in ex.get('text', '')]
    return f'Example entries {" | ".join(bad)} do not include the command' if bad else None


_SUBSTITUTED_AZ = re.compile(r'\$\(\s*(az\s[^)]*)\)|`\s*(az\s[^`]*)`')


def example_commands(text):
    """The az commands of an example, as azdev reads them: continued lines joined, each line that starts with az,
    az commands in $(...) or backticks, and each az command after &&, || or |."""
    joined, quote = '', None
    for line in text.splitlines():
        for char in line:
            quote = (char if char in '"\'' else None) if quote is None else (None if char == quote else quote)
        if quote is None and line.endswith('\\'):
            joined += line[:-1] + ' '
        else:
            joined += line if quote is not None else line + '\n'
    commands = []
    for line in joined.replace('\\ ', ' ').splitlines():
        if line.startswith('az'):
            commands.append(line)
        commands += [a or b for a, b in _SUBSTITUTED_AZ.findall(line)]
    return commands


class _Unparsable(Exception):
    pass


def _raise_unparsable(_parser, message):
    raise _Unparsable(message)


def split_pipeline(command):
    """(the az command's own arguments, the az commands that follow it after &&, || or |)."""
    args = shlex.split(command, comments=True)[1:]
    for i, arg in enumerate(args):
        if arg in ('&&', '||', '|'):
            rest = args[i + 1:]
            return args[:i], [shlex.join(rest[rest.index('az'):])] if 'az' in rest else []
    return args, []


def parse_error(parser, args):
    """Why the parser rejects these arguments, or None; values are not checked, only command and option names."""
    with mock.patch.object(AzCliCommandParser, 'error', _raise_unparsable), \
            mock.patch.object(AzCliCommandParser, '_check_value'), \
            mock.patch.object(argparse.ArgumentParser, '_get_value', lambda self, action, value: value):
        try:
            parser.parse_args(args)
        except _Unparsable as ex:
            return str(ex)
    return None


@rule('HIGH', 'help_entries')
def faulty_help_example_parameters_rule(m, entry):
    problems = []
    for example in _examples(m, entry):
        if 'latest' not in example.get('supported-profiles', 'latest') \
                or 'latest' in example.get('unsupported-profiles', ''):
            continue
        pending = example_commands(example.get('text', ''))
        while pending:
            command = pending.pop()
            try:
                args, following = split_pipeline(command)
            except ValueError as ex:  # shlex: no closing quotation
                problems.append(f'"{command}": {ex}')
                continue
            pending += following
            error = parse_error(m.parser, args)
            if error:
                problems.append(f'"{command}" is not a valid command: {error}')
    return '\n\t'.join(['There are violations:'] + problems) if problems else None


# ---------------------------------------------------------------- the tests

@pytest.mark.parametrize('name', sorted(RULES), ids=sorted(RULES))
def test_azdev_rule(name, model):
    """One azdev rule over every command, group, parameter or help entry of the extension."""
    severity = RULES[name][0]
    violations = run_rule(name, model, load_exclusions())
    assert not violations, f'azdev {severity} rule {name}:\n' + '\n'.join('    ' + v for v in violations)


def test_exclusions_name_real_rules_and_arguments(model):
    """An exclusion with a typo in a rule, command or parameter name silently excludes nothing."""
    known_rules = set(RULES) | set(NOT_MIRRORED)
    problems = []
    for entity, value in load_exclusions().items():
        if entity not in model.commands and entity not in model.groups and entity not in model.help_entries:
            problems.append(f'{entity}: not a command, group or help entry of the extension')
        problems += [f'{entity}: unknown rule {r}' for r in value.get('rule_exclusions', []) if r not in known_rules]
        for param, rules in value.get('parameters', {}).items():
            if param not in getattr(model.commands.get(entity), 'arguments', {}):
                problems.append(f'{entity}: no parameter {param} (exclusions name the argument dest)')
            problems += [f'{entity} {param}: unknown rule {r}' for r in rules if r not in known_rules]
    assert not problems, '\n'.join(problems)


def test_show_command_pylint_checker():
    """azdev linter's own pylint plugin, show-command (E5001): a 'show' command is registered with show_command or
    custom_show_command (they turn a missing resource into exit code 3), never with command or custom_command."""
    bad = []
    for path in sorted(EXTENSION_SRC.glob('azext_*/**/*.py')):
        if 'tests' in path.relative_to(EXTENSION_SRC).parts:  # pylintrc: ignore=tests
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            first = node.args[0] if isinstance(node, ast.Call) and node.args else None
            if isinstance(first, ast.Constant) and first.value == 'show' \
                    and getattr(node.func, 'attr', None) in ('command', 'custom_command'):
                bad.append(f'{path.relative_to(EXTENSION_SRC)}:{node.lineno}')
    assert not bad, 'Show command must use show_command or custom_show_command: ' + ', '.join(bad)


# A test-local extension full of violations, loaded through the same machinery, proves that the rules bite.

def fake_update(cmd, bad_opt=None, mode='x', undocumented=None, much_too_long_option=None):
    pass


def fake_show(cmd, target):
    pass


class _FakeLoader(AzCommandsLoader):
    def __init__(self, cli_ctx=None):
        super().__init__(cli_ctx=cli_ctx, custom_command_type=CliCommandType(operations_tmpl=__name__ + '#{}'))

    def load_command_table(self, _):
        with self.command_group('fake') as g:
            g.custom_command('update', 'fake_update')
            g.custom_command('show', 'fake_show')
        return self.command_table

    def load_arguments(self, _):
        with self.argument_context('fake update') as c:
            c.argument('bad_opt', options_list=['--bad_opt', '-bo'], help='Bad options.')
            c.argument('mode', options_list=['--mode'], default='x', help='A default on an update command.')
            c.argument('much_too_long_option', options_list=['--much-too-long-option-name'], help='Long.')
        with self.argument_context('fake show') as c:
            c.positional('target', help='A positional.')


_FAKE_HELP = {
    'fake': 'type: group\nshort-summary: Fake.\nlong-summary: Served on http://127.0.0.1:8169/x, see <name>.',
    'fake update': 'type: group\nlong-summary: Update.\nexamples:\n  - name: Wrong option.\n'
                   '    text: az fake update --nope 1\n  - name: Wrong command.\n    text: az fake other',
    'fake bogus': 'type: command\nshort-summary: No such command.',
}

_EXPECTED = {
    'bad_short_option': ['Parameter: `fake update`, `bad_opt`'],
    'option_should_not_contain_under_score': ['Parameter: `fake update`, `bad_opt`'],
    'option_length_too_long': ['Parameter: `fake update`, `much_too_long_option`'],
    'no_parameter_defaults_for_update_commands': ['Parameter: `fake update`, `mode`'],
    'missing_parameter_help': ['Parameter: `fake update`, `undocumented`'],
    'no_positional_parameters': ['Parameter: `fake show`, `target`'],
    'missing_command_help': ['Command: `fake show`'],
    'disallowed_html_tag_from_command_group': ['Command-Group: `fake`'],
    'broken_site_link_from_command_group': ['Command-Group: `fake`'],
    'unrecognized_help_entry_rule': ['Help-Entry: `fake bogus`'],
    'faulty_help_type_rule': ['Help-Entry: `fake update`'],
    'faulty_help_example_rule': ['Help-Entry: `fake update`'],
    'faulty_help_example_parameters_rule': ['Help-Entry: `fake update`'],
}


def test_rules_catch_injected_violations(tmp_path):
    """Each rule fails on a test-local command table built to break it, and an exclusion silences just its entry."""
    with mock.patch.dict(helps, _FAKE_HELP):
        fake = Model(_offline_config_dir(tmp_path), 'fake', _FakeLoader, _FAKE_HELP)
    found = {name: [v.split(' - ')[0] for v in run_rule(name, fake, {})] for name in _EXPECTED}
    assert found == _EXPECTED
    assert 'unrecognized arguments: --nope' in run_rule('faulty_help_example_parameters_rule', fake, {})[0]
    exclusions = {'fake update': {'parameters': {'mode': ['no_parameter_defaults_for_update_commands']}},
                  'fake': {'rule_exclusions': ['broken_site_link_from_command_group']}}
    assert not run_rule('no_parameter_defaults_for_update_commands', fake, exclusions)
    assert not run_rule('broken_site_link_from_command_group', fake, exclusions)
    assert run_rule('disallowed_html_tag_from_command_group', fake, exclusions)
