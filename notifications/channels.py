"""The external channels: email through Django's mail backend, and team chat webhooks over HTTPS."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone, translation

from .models import Channel, Delivery, Kind, Notification, NotificationSettings
from .webhooks import WebhookLine, build_request

WEBHOOK_TIMEOUT = 5


def absolute(link: str) -> str:
    if not link or link.startswith(("http://", "https://")):
        return link
    return settings.OPSTEAM_BASE_URL.rstrip("/") + link


def send(delivery: Delivery, notifications: Sequence[Notification]) -> None:
    """Send one delivery; raise on any failure (the caller counts attempts)."""
    if delivery.channel == Channel.EMAIL:
        _send_email(delivery, notifications)
    else:
        _post_webhook(delivery, notifications)


def _language(recipient: User) -> str:
    """The language the person chose for notifications, else the site's. The settings are read with
    the delivery (select_related) when the caller did so, else here."""
    try:
        chosen = recipient.notification_settings.language
    except NotificationSettings.DoesNotExist:
        chosen = ""
    return chosen or settings.LANGUAGE_CODE


def _send_email(delivery: Delivery, notifications: Sequence[Notification]) -> None:
    recipient = delivery.recipient
    if recipient is None or not recipient.email:
        raise ValueError("the recipient has no email address")
    with translation.override(_language(recipient)):
        context = {
            "recipient": recipient,
            "team": delivery.team,
            "notifications": [
                {"kind": Kind(n.kind).label, "text": n.text, "body": n.body, "link": absolute(n.link)}
                for n in notifications
            ],
            "inbox": absolute("/notifications/"),
        }
        if len(notifications) == 1:
            subject = f"[{delivery.team.key_prefix}] {notifications[0].text}"
        else:
            subject = translation.gettext("[%(team)s] %(count)d updates from opsteam") % {
                "team": delivery.team.key_prefix,
                "count": len(notifications),
            }
        text = render_to_string("emails/notifications.txt", context)
        html = render_to_string("emails/notifications.html", context)
    # A title typed with a line break would make the subject a multi-line header, which Django refuses
    # (BadHeaderError) on every retry; it is one line of text.
    subject = " ".join(subject.split())[:200]
    message = EmailMultiAlternatives(subject=subject, body=text, to=[recipient.email])
    message.attach_alternative(html, "text/html")
    message.send()


def _post_webhook(delivery: Delivery, notifications: Sequence[Notification]) -> None:
    webhook = delivery.webhook
    if webhook is None:
        raise ValueError("the delivery has no webhook")
    lines = [
        WebhookLine(
            kind=n.kind,
            text=n.text,
            link=absolute(n.link),
            requirement_key=n.requirement.key if n.requirement else "",
        )
        for n in notifications
    ]
    url, body, headers = build_request(
        fmt=webhook.format,
        url=webhook.url,
        secret=webhook.secret,
        title=f"opsteam · {delivery.team.name}",
        lines=lines,
        now=timezone.now(),
    )
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (lead-configured URL)
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:  # noqa: S310
        status = response.status
        reply = response.read(4096)
    if status >= 300:
        raise ValueError(f"HTTP {status}: {reply[:200]!r}")
    _check_platform_reply(webhook.format, reply)


def _check_platform_reply(fmt: str, reply: bytes) -> None:
    """WeCom, DingTalk and Feishu answer HTTP 200 with an error code in the body."""
    if fmt not in ("wecom", "dingtalk", "feishu") or not reply:
        return
    try:
        data = json.loads(reply)
    except ValueError:
        return
    code = data.get("errcode", data.get("code", 0))
    if code not in (0, None):
        raise ValueError(f"platform error {code}: {data.get('errmsg') or data.get('msg')}")
