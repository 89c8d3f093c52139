# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------

from azext_scheduledevents._format import (transform_agent_status_table, transform_approval_table,
                                           transform_cycle_table, transform_event_table, transform_policy_table)
from azext_scheduledevents._validators import (validate_agent_fleet, validate_agent_install, validate_approve,
                                               validate_emulator, validate_imds_options, validate_cycle,
                                               validate_list, validate_policy_target, validate_watch)


def load_command_table(self, _):
    with self.command_group('scheduled-events', is_preview=True) as g:
        g.custom_command('list', 'list_events', validator=validate_list,
                         table_transformer=transform_event_table)
        g.custom_show_command('show', 'show_event', validator=validate_imds_options,
                              table_transformer=transform_event_table)
        g.custom_command('approve', 'approve_events', validator=validate_approve,
                         table_transformer=transform_approval_table)
        g.custom_command('watch', 'watch_events', validator=validate_watch)
        g.custom_command('cycle', 'cycle_scale_set', validator=validate_cycle, table_transformer=transform_cycle_table)
        g.custom_command('emulator', 'run_emulator', validator=validate_emulator)

    with self.command_group('scheduled-events policy', is_preview=True) as g:
        g.custom_show_command('show', 'show_policy', validator=validate_policy_target,
                              table_transformer=transform_policy_table)

    with self.command_group('scheduled-events agent', is_preview=True) as g:
        g.custom_command('package', 'agent_package')
        g.custom_command('install', 'agent_install', validator=validate_agent_install)
        g.custom_command('status', 'agent_status', validator=validate_agent_fleet,
                         table_transformer=transform_agent_status_table)
        g.custom_command('uninstall', 'agent_uninstall', validator=validate_agent_fleet)
