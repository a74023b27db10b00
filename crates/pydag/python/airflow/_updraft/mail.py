"""send_email: one message over the SMTP server configured in Updraft's `[smtp]` settings
(handed to the task in its spec)."""

import os
import smtplib
import ssl
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate

from . import state
from .exceptions import AirflowException


def get_email_address_list(addresses):
    if addresses is None:
        return []
    if isinstance(addresses, str):
        for sep in (",", ";"):
            if sep in addresses:
                return [a.strip() for a in addresses.split(sep) if a.strip()]
        return [addresses.strip()] if addresses.strip() else []
    return [a for a in addresses]


def build_mime_message(mail_from, to, subject, html_content, files=None, cc=None, bcc=None,
                       mime_subtype="mixed", mime_charset="utf-8", custom_headers=None):
    to = get_email_address_list(to)
    msg = MIMEMultipart(mime_subtype)
    msg["Subject"] = subject
    msg["From"] = mail_from
    msg["To"] = ", ".join(to)
    recipients = list(to)
    if cc:
        cc = get_email_address_list(cc)
        msg["CC"] = ", ".join(cc)
        recipients += cc
    if bcc:
        recipients += get_email_address_list(bcc)
    msg["Date"] = formatdate(localtime=True)
    msg.attach(MIMEText(html_content or "", "html", mime_charset))
    for path in files or []:
        with open(path, "rb") as f:
            part = MIMEApplication(f.read(), Name=os.path.basename(path))
        part["Content-Disposition"] = 'attachment; filename="%s"' % os.path.basename(path)
        msg.attach(part)
    for name, value in (custom_headers or {}).items():
        msg[name] = value
    return msg, recipients


def _settings():
    smtp = state.smtp
    if not smtp or not smtp.get("host"):
        raise AirflowException(
            "send_email needs an SMTP server: set [smtp] host (and port, user, password, "
            "starttls, ssl, from) in updraft.toml, or UPDRAFT__SMTP__HOST"
        )
    return smtp


def send_email(to, subject, html_content, files=None, dryrun=False, cc=None, bcc=None,
               mime_subtype="mixed", mime_charset="utf-8", conn_id=None, custom_headers=None,
               from_email=None, **kwargs):
    smtp = _settings()
    mail_from = from_email or smtp.get("from") or "updraft@localhost"
    msg, recipients = build_mime_message(
        mail_from, to, subject, html_content, files, cc, bcc, mime_subtype, mime_charset, custom_headers
    )
    if dryrun:
        return
    send_mime_email(mail_from, recipients, msg)


def send_mime_email(e_from, e_to, mime_msg, conn_id=None, dryrun=False):
    smtp = _settings()
    if dryrun:
        return
    host = smtp["host"]
    port = int(smtp.get("port") or (465 if smtp.get("ssl") else 25))
    timeout = float(smtp.get("timeout") or 30)
    if smtp.get("ssl"):
        server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if smtp.get("starttls") and not smtp.get("ssl"):
            server.starttls(context=ssl.create_default_context())
        if smtp.get("user"):
            server.login(smtp["user"], smtp.get("password") or "")
        server.sendmail(e_from, e_to, mime_msg.as_string())
        print("Sent an email to %s" % ", ".join(e_to))
    finally:
        try:
            server.quit()
        except smtplib.SMTPException:
            pass
