# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""``python -m azext_scheduledevents.emulator``: the same emulator as ``az scheduled-events emulator``."""

import argparse
import sys

from .imds import DEFAULT_RATE_LIMIT_PER_SECOND, ImdsEmulator, serve_until_stopped
from .scenarios import ScenarioError, builtin_scenarios, parse_terminate_notice

DEFAULT_PORT = 8169


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m azext_scheduledevents.emulator', description=__doc__)
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on (default 127.0.0.1)')
    parser.add_argument('--port', type=int, default=DEFAULT_PORT, help=f'port (default {DEFAULT_PORT}; 0: any free)')
    parser.add_argument('--scenario', default='empty',
                        help=f'a scenario file, or one of: {", ".join(builtin_scenarios())} (default empty)')
    parser.add_argument('--speed', type=float, default=1.0, help='time compression factor (default 1)')
    parser.add_argument('--vm-name', default='web_0', help='compute.name of the emulated VM (default web_0)')
    parser.add_argument('--terminate-notice', default='PT5M', help='Terminate notice, PT5M..PT15M (default PT5M)')
    parser.add_argument('--rate-limit', type=int, default=DEFAULT_RATE_LIMIT_PER_SECOND,
                        help=f'requests a second before 429 (default {DEFAULT_RATE_LIMIT_PER_SECOND}; 0: none)')
    parser.add_argument('--control-socket', help='also serve the API on this Unix socket (for namespaces)')
    args = parser.parse_args(argv)
    try:
        emulator = ImdsEmulator.from_scenario(
            args.scenario, host=args.host, port=args.port, vm_name=args.vm_name, speed=args.speed,
            terminate_notice=parse_terminate_notice(args.terminate_notice), rate_limit=args.rate_limit,
            control_socket=args.control_socket)
    except (ScenarioError, ValueError, OSError) as ex:
        parser.exit(2, f'error: {ex}\n')
    serve_until_stopped(emulator, describe=f' (scenario {args.scenario}, speed {args.speed:g})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
