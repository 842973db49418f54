"""Third-party admin pages, adjusted to list without a query per row.

django-celery-beat's schedule pages list the periodic tasks that use the schedule; each
row's title is str(task), which reads the task's schedule again, one query per task.
The same pages, re-registered with the schedules joined. (This app is installed after
django_celery_beat, so its admin module runs after theirs.)
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_celery_beat import admin as beat
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)


class PeriodicTaskInline(beat.PeriodicTaskInline):
    def get_queryset(self, request: HttpRequest) -> QuerySet[PeriodicTask]:
        return (
            super().get_queryset(request).select_related("interval", "crontab", "solar", "clocked")
        )


SCHEDULE_ADMINS: dict[type[Any], type[admin.ModelAdmin]] = {
    ClockedSchedule: beat.ClockedScheduleAdmin,
    CrontabSchedule: beat.CrontabScheduleAdmin,
    SolarSchedule: beat.SolarScheduleAdmin,
    IntervalSchedule: beat.IntervalScheduleAdmin,
}

for schedule, schedule_admin in SCHEDULE_ADMINS.items():
    admin.site.unregister(schedule)
    joined = type(schedule_admin.__name__, (schedule_admin,), {"inlines": [PeriodicTaskInline]})
    admin.site.register(schedule, joined)
