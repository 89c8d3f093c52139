# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``python -m azext_scheduledevents.emulator``: the same emulator as ``az scheduled-events emulator``."""

import argparse
import sys

from ..core import config
from ..core.errors import ScenarioError
from .imds import ImdsEmulator, serve_until_stopped
from .scenarios import builtin_scenarios, parse_terminate_notice


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m azext_scheduledevents.emulator', description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--host', default=config.EMULATOR_HOST, help='address to listen on')
    parser.add_argument('--port', type=int, default=config.EMULATOR_PORT, help='port; 0: any free one')
    parser.add_argument('--scenario', default=config.EMULATOR_SCENARIO,
                        help=f'a scenario file, or one of: {", ".join(builtin_scenarios())}')
    parser.add_argument('--speed', type=float, default=config.EMULATOR_SPEED, help='time compression factor')
    parser.add_argument('--vm-name', default=config.EMULATOR_VM_NAME, help='compute.name of the emulated VM')
    parser.add_argument('--terminate-notice', default=config.EMULATOR_TERMINATE_NOTICE,
                        help='Terminate notice, PT5M..PT15M')
    parser.add_argument('--rate-limit', type=int, default=config.EMULATOR_RATE_LIMIT_PER_SECOND,
                        help='requests a second before 429; 0: none')
    parser.add_argument('--control-socket', help='also serve the API on this Unix socket (for namespaces)')
    args = parser.parse_args(argv)
    try:
        emulator = ImdsEmulator.from_scenario(
            args.scenario, host=args.host, port=args.port, vm_name=args.vm_name, speed=args.speed,
            terminate_notice=parse_terminate_notice(args.terminate_notice), rate_limit=args.rate_limit,
            control_socket=args.control_socket)
    except (ScenarioError, OSError) as ex:
        parser.exit(2, f'error: {ex}\n')
    serve_until_stopped(emulator, describe=f' (scenario {args.scenario}, speed {args.speed:g})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
