"""Template macros, also available as `macros` in the task context."""

import datetime as _datetime_module
import json
import random
import time
import uuid
from datetime import timedelta

from airflow._updraft.timeutil import ds_add, ds_format

datetime = _datetime_module.datetime

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
