"""Airflow's exception classes, with the meaning Updraft's runtime gives them."""


class AirflowException(Exception):
    """The base of Airflow's errors; raised from a task it fails the try."""

    status_code = 500


class AirflowBadRequest(AirflowException):
    status_code = 400


class AirflowNotFoundException(AirflowException):
    status_code = 404


class AirflowConfigException(AirflowException):
    pass


class AirflowSkipException(AirflowException):
    """Raised from a task: the task ends skipped (exit code 99)."""


class AirflowFailException(AirflowException):
    """Raised from a task: the task fails (Updraft still applies its retries)."""


class AirflowSensorTimeout(AirflowException):
    """A sensor's condition was not met within its timeout."""


class AirflowTaskTimeout(AirflowException):
    pass


class AirflowTaskTerminated(AirflowException):
    pass


class AirflowRescheduleException(AirflowException):
    def __init__(self, reschedule_date=None):
        super().__init__("reschedule requested for %s" % (reschedule_date,))
        self.reschedule_date = reschedule_date


class TaskDeferred(AirflowException):
    """Deferrable operators need a triggerer, which Updraft does not have."""

    def __init__(self, *args, **kwargs):
        super().__init__("deferring a task (TaskDeferred) is not supported by Updraft")


class DuplicateTaskIdFound(AirflowException):
    pass


class TaskAlreadyInTaskGroup(AirflowException):
    pass


class ParamValidationError(AirflowException):
    pass


class DagNotFound(AirflowNotFoundException):
    pass


class TaskNotFound(AirflowNotFoundException):
    pass


class AirflowDagCycleException(AirflowException):
    pass


class RemovedInAirflow3Warning(DeprecationWarning):
    pass


class AirflowProviderDeprecationWarning(DeprecationWarning):
    pass
