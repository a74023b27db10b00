"""Cron timetables: `CronTriggerTimetable` (Airflow 3's default meaning of a cron schedule)
and `CronDataIntervalTimetable` (Airflow 2's, Updraft's `data_intervals: true`)."""

from .timeutil import tz_name


class _CronTimetable:
    data_intervals = False

    def __init__(self, cron, timezone="UTC", **kwargs):
        if not isinstance(cron, str):
            raise TypeError("the cron expression of %s must be a string" % type(self).__name__)
        self._updraft_cron = cron
        self.timezone = timezone if isinstance(timezone, str) else tz_name(timezone)
        if kwargs.get("interval"):
            raise NotImplementedError("%s(interval=...) is not supported by Updraft" % type(self).__name__)

    def __repr__(self):
        return "%s(%r, timezone=%r)" % (type(self).__name__, self._updraft_cron, self.timezone)


class CronTriggerTimetable(_CronTimetable):
    pass


class CronDataIntervalTimetable(_CronTimetable):
    data_intervals = True
