# --------------------------------------------------------------------------------------------
# Copyright (c) Microsoft Corporation. All rights reserved.
# Licensed under the MIT License. See License.txt in the project root for license information.
# --------------------------------------------------------------------------------------------
"""The one table from the core's errors to az's: each core error leaves as one ``azclierror`` class, whose
one-line message az prints, with a recommendation that names the fix."""

from contextlib import contextmanager

from azure.cli.core import azclierror

from azext_scheduledevents.core import errors
from azext_scheduledevents.core.config import EMULATOR_PORT

RECOMMEND_LIST = 'Run "az scheduled-events list" to see the events in the current document.'
RECOMMEND_ENDPOINT = ('Run this on an Azure VM, or point az at an emulator: '
                      f'az config set scheduled_events.imds_endpoint=http://127.0.0.1:{EMULATOR_PORT}')


def _target_not_found(ex):
    if ex.vmss_name:
        return f'See its instances with: az vmss list-instances -g {ex.resource_group} -n {ex.vmss_name} -o table'
    if ex.availability_set:
        return f'See the availability sets with: az vm availability-set list -g {ex.resource_group} -o table'
    if ex.resource_group:
        return f'See the scale sets and VMs with: az vmss list -g {ex.resource_group} -o table; ' \
               f'az vm list -g {ex.resource_group} -o table'
    return 'Check the names with: az vmss list -o table'


def _state_locked(ex):
    holder = f'kill {ex.pid}' if ex.pid else 'stop it'
    return ('Only one watcher may use a state directory: stop the other one (sudo systemctl stop '
            f'scheduled-events-watch, or {holder}), or give this one its own --state-dir.')


def _blob(ex):
    if ex.code == errors.BlobError.NO_MANAGED_IDENTITY:
        return ('Give the VM a managed identity (az vm identity assign -g <group> -n <vm>, or az vmss identity '
                'assign), or name the user-assigned one by its client id.')
    if ex.code in ('AuthenticationFailed', 'NoAuthenticationInformation', 'InvalidAuthenticationInfo'):
        return ('The storage account refused the credential: make a new SAS (whole, not expired, with the read, '
                'add, create, write, delete and list permissions), or use the VM\'s managed identity.')
    if ex.status in (401, 403):
        return ('Give the identity a data role on the storage account, such as Storage Blob Data Contributor: '
                'az role assignment create --assignee <principal id> --role "Storage Blob Data Contributor" '
                '--scope <storage account id>; check that the account\'s firewall lets this VM in.')
    if ex.code == 'ContainerNotFound':
        return 'Create the container: az storage container create --account-name <account> --name <container> ' \
               '--auth-mode login'
    if ex.status is None:
        return ('Check the container URL, and that this VM reaches the storage account (DNS, firewall, '
                'private endpoint).')
    return 'Run the command again with --debug to see each request.'


# Most specific first: the first class the error is an instance of decides.
ERROR_TABLE = (
    (errors.InvalidEndpointError, azclierror.InvalidArgumentValueError,
     'Fix it with: az config set scheduled_events.imds_endpoint=http://HOST:PORT'),
    (errors.EventNotScheduledError, azclierror.InvalidArgumentValueError,
     'See each event\'s status with: az scheduled-events list -g <group> --vmss-name <name> --route control-plane '
     '--status Scheduled Started Completed Canceled'),
    (errors.EventNotFoundError, azclierror.ResourceNotFoundError, RECOMMEND_LIST),
    (errors.PartialApprovalError, azclierror.AzureResponseError,
     'Approve the failed ids again, or see their status with: az scheduled-events list --route control-plane'),
    (errors.InvalidEventIdError, azclierror.InvalidArgumentValueError, RECOMMEND_LIST),
    (errors.ImdsUnreachableError, azclierror.AzureConnectionError, RECOMMEND_ENDPOINT),
    (errors.ImdsTimeoutError, azclierror.AzureConnectionError, 'Try again with a larger --timeout.'),
    (errors.ImdsRejectedError, azclierror.BadRequestError,
     'Use an api-version IMDS knows, such as --api-version 2020-07-01.'),
    (errors.ImdsProtocolError, azclierror.AzureResponseError,
     'Check that the endpoint is IMDS or the emulator: az config get scheduled_events.imds_endpoint'),
    (errors.ImdsResponseError, azclierror.AzureResponseError, 'IMDS had a fault: try again in a minute.'),
    (errors.ImdsError, azclierror.AzureConnectionError, 'Run the command again with --debug to see each request.'),
    (errors.TargetNotFoundError, azclierror.ResourceNotFoundError, _target_not_found),
    (errors.AcknowledgeForbiddenError, azclierror.ForbiddenError,
     'The login needs the Scheduled Events Contributor role on the target: az role assignment create '
     '--assignee <principal> --role "Scheduled Events Contributor" --scope <scale set, VM or availability set id>'),
    (errors.PreviewNotEnabledError, azclierror.ValidationError,
     'Register the preview and let the target publish: az feature register --namespace Microsoft.Compute '
     '--name SendScheduledEventsPolicy; then see what else it needs with: az scheduled-events policy show'),
    (errors.GraphQueryError, azclierror.AzureResponseError,
     'Resource Graph refused the query this tool built: run again with --debug and report it.'),
    (errors.ArmAuthorizationError, azclierror.ForbiddenError,
     'The login needs a role that allows Run Command and instance actions on the target, such as Virtual '
     'Machine Contributor: az role assignment create --assignee <principal> --role "Virtual Machine '
     'Contributor" --scope <scale set or VM id>'),
    (errors.ArmError, azclierror.AzureResponseError, 'Run the command again with --debug to see the whole answer.'),
    (errors.BlobError, azclierror.AzureResponseError, _blob),
    (errors.RunCommandOutputError, azclierror.AzureResponseError,
     'Read the instance with: az vmss run-command invoke --command-id RunShellScript --scripts '
     '"curl -sH Metadata:true http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01"'),
    (errors.PreflightError, azclierror.ValidationError,
     'Make every instance healthy first, or pass --ignore-initial-health; see the plan with --dry-run.'),
    (errors.CycleError, azclierror.UnclassifiedUserFault,
     'See where each instance is with: az vmss list-instances -g <group> -n <scale set> -o table'),
    (errors.StateLockedError, azclierror.FileOperationError, _state_locked),
    (errors.HandlerConfigError, azclierror.InvalidArgumentValueError,
     'Give each handler as a program on PATH or an absolute path, with its arguments: '
     '--on-scheduled "/usr/local/bin/drain --grace 20"; keep secrets in the environment.'),
    (errors.WatchError, azclierror.ValidationError, 'See the options with: az scheduled-events watch --help'),
    (errors.InvalidSettingError, azclierror.InvalidArgumentValueError,
     "See each option's range with --help."),
    (errors.ScenarioError, azclierror.InvalidArgumentValueError,
     'See the built-in scenarios and the file format with: az scheduled-events emulator --help'),
    (errors.ScheduledEventsError, azclierror.UnclassifiedUserFault, 'Run the command again with --debug.'),
)


def az_error(ex):
    """The ``azclierror`` for one core error, with its recommendation."""
    for core_class, az_class, recommendation in ERROR_TABLE:
        if isinstance(ex, core_class):
            text = recommendation(ex) if callable(recommendation) else recommendation
            return az_class(str(ex), text)
    raise TypeError(f'{type(ex).__name__} is not a core error')


@contextmanager
def az_errors():
    """Core errors raised inside leave as az errors, each in one line."""
    try:
        yield
    except errors.ScheduledEventsError as ex:
        raise az_error(ex) from None
