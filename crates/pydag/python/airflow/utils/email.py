"""Sending email from tasks and callbacks."""

from airflow._updraft.mail import build_mime_message, get_email_address_list, send_email, send_mime_email

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
