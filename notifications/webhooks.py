"""Build the HTTP request a team-chat robot expects (pure: no Django, no network, no database).

``build_request`` returns ``(url, body, headers)`` for a POST. Five formats:

- ``generic``: our own JSON.
- ``wecom``: WeCom (企业微信) group robot, markdown message.
- ``dingtalk``: DingTalk (钉钉) custom robot, markdown message, optional "加签" signature in the URL.
- ``feishu``: Feishu (飞书) custom bot, "post" rich text, optional signature in the body.
- ``slack``: Slack incoming webhook, Block Kit sections in mrkdwn.

Text that comes from users (requirement titles end up in ``WebhookLine.text``) is neutralised wherever the
platform renders markup, so a title like ``[evil](http://x)`` or ``<script>`` stays literal text.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["FORMATS", "WebhookLine", "build_request", "dingtalk_sign", "feishu_sign"]

FORMATS = ("generic", "wecom", "dingtalk", "feishu", "slack")

HEADERS = {"Content-Type": "application/json; charset=utf-8"}

# WeCom: "markdown内容，最长不超过4096个字节，必须是utf8编码".
WECOM_MARKDOWN_MAX_BYTES = 4096
# Feishu: "发送消息时，请求体的数据大小不能超过 20 KB"; the doc does not say 1000 or 1024, so stay under both.
FEISHU_BODY_MAX_BYTES = 19_000
# Slack: at most 50 blocks per message; a section's text is at most 3000 characters.
SLACK_MAX_BLOCKS = 50
# One notification is one line; cap it so that a single huge title cannot eat a whole message.
MAX_LINE_CHARS = 300
MAX_TITLE_CHARS = 100

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

# What each format builder returns: the final URL and the JSON payload.
_Built = tuple[str, dict[str, object]]


@dataclass(frozen=True)
class WebhookLine:
    kind: str  # your_turn, mentioned, stage_overdue, escalation, due_soon, due_today, daily_digest
    text: str  # one line of plain text
    link: str  # absolute URL of the requirement (may be "")
    requirement_key: str  # e.g. "GROW-42" (may be "")


def build_request(
    *,
    fmt: str,
    url: str,
    secret: str,
    title: str,
    lines: list[WebhookLine],
    now: datetime.datetime,
) -> tuple[str, bytes, dict[str, str]]:
    """Return (final URL, UTF-8 JSON body, headers) for a POST."""
    builder = _BUILDERS.get(fmt)
    if builder is None:
        raise ValueError(f"unknown webhook format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    final_url, payload = builder(url, secret.strip(), title, list(lines), now)
    return final_url, _dumps(payload), dict(HEADERS)


# --------------------------------------------------------------------------- signatures


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """DingTalk "加签": Base64(HmacSHA256(key=secret, msg=f"{timestamp}\\n{secret}")), not yet URL-encoded.

    https://open.dingtalk.com/document/robots/customize-robot-security-settings
    """
    string_to_sign = f"{timestamp_ms}\n{secret}"
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def feishu_sign(timestamp_s: int, secret: str) -> str:
    """Feishu "签名校验": Base64(HmacSHA256(key=f"{timestamp}\\n{secret}", msg=b"")).

    Feishu's sample code uses the string to sign as the HMAC *key* over an empty message (the inverse of
    DingTalk). https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
    """
    string_to_sign = f"{timestamp_s}\n{secret}"
    digest = hmac.new(string_to_sign.encode("utf-8"), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _epoch_ms(now: datetime.datetime) -> int:
    return (now - _EPOCH) // datetime.timedelta(milliseconds=1)


def _epoch_s(now: datetime.datetime) -> int:
    return (now - _EPOCH) // datetime.timedelta(seconds=1)


# --------------------------------------------------------------------------- text helpers


def _dumps_str(payload: object) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _dumps(payload: object) -> bytes:
    return _dumps_str(payload).encode("utf-8")


def _one_line(text: str, limit: int) -> str:
    """Collapse line breaks (they would start new markdown blocks) and cap the length at a character."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


def _safe_link(link: str) -> str:
    """An http(s) URL with the characters that could close a markdown/Slack link percent-encoded, or ""."""
    link = link.strip()
    if urllib.parse.urlsplit(link).scheme.lower() not in ("http", "https"):
        return ""
    # Keep the URL's own reserved characters (and existing %-escapes); encode spaces, quotes, ( ) < > | etc.
    return urllib.parse.quote(link, safe=":/?#[]@!$&'*+,;=%~")


# CommonMark lets any ASCII punctuation be backslash-escaped. Inside one line these are the characters that
# can open or close inline markup: emphasis/strike (* _ ~), code (`), links and images ([ ] — so "(url)"
# after them stays literal), raw HTML and entities (< > &), and the escape character itself.
_MARKDOWN_INLINE = set("\\`*_~[]<>&")
# At the start of a list item these would open a nested block (heading, quote, list, setext/table line).
_MARKDOWN_BLOCK_START = set("#>+-=|")
_ORDERED_LIST_START = re.compile(r"^(\d+)([.)])")


def _escape_markdown(text: str) -> str:
    escaped = "".join("\\" + ch if ch in _MARKDOWN_INLINE else ch for ch in text)
    if escaped[:1] in _MARKDOWN_BLOCK_START:
        escaped = "\\" + escaped
    return _ORDERED_LIST_START.sub(r"\1\\\2", escaped)


def _escape_slack(text: str) -> str:
    # https://api.slack.com/reference/surfaces/formatting#escaping : only &, < and > are control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _more_label(count: int) -> str:
    return f"…and {count} more item{'s' if count != 1 else ''}"


def _fit(pieces: Sequence[str], budget: int, footer: Callable[[int], str]) -> list[str]:
    """Keep pieces in order while ``sum(bytes) + footer bytes`` stays within ``budget``.

    Each piece's size is its UTF-8 length plus one for a separating newline. When some are left out, the
    footer (given how many) is appended; room for it is always reserved before a piece is accepted.
    """

    def size(text: str) -> int:
        return len(text.encode("utf-8")) + 1

    kept: list[str] = []
    used = 0
    for index, piece in enumerate(pieces):
        remaining_after = len(pieces) - index - 1
        reserve = size(footer(remaining_after)) if remaining_after else 0
        if used + size(piece) + reserve > budget:
            break
        kept.append(piece)
        used += size(piece)
    left_out = len(pieces) - len(kept)
    if left_out:
        kept.append(footer(left_out))
    return kept


# --------------------------------------------------------------------------- formats


def _generic(url: str, secret: str, title: str, lines: list[WebhookLine], now: datetime.datetime) -> _Built:
    # Our own JSON; consumers get the raw values and do their own escaping.
    payload: dict[str, object] = {
        "source": "opsteam",
        "title": title,
        "sent_at": now.isoformat(),
        "items": [
            {"kind": line.kind, "text": line.text, "link": line.link, "requirement": line.requirement_key}
            for line in lines
        ],
    }
    return url, payload


def _markdown_lines(title: str, lines: list[WebhookLine]) -> tuple[str, list[str]]:
    """Shared by WeCom and DingTalk: a heading and one list item per line, user text escaped."""
    heading = "### " + _escape_markdown(_one_line(title, MAX_TITLE_CHARS))
    items = []
    for line in lines:
        item = "- " + _escape_markdown(_one_line(line.text, MAX_LINE_CHARS))
        link = _safe_link(line.link)
        if link:
            label = _escape_markdown(_one_line(line.requirement_key, 40)) or "link"
            item += f" [{label}]({link})"
        items.append(item)
    return heading, items


def _wecom(url: str, secret: str, title: str, lines: list[WebhookLine], now: datetime.datetime) -> _Built:
    # WeCom group robot ("群机器人配置说明"): {"msgtype": "markdown", "markdown": {"content": ...}},
    # content at most 4096 bytes of UTF-8. No signing: the robot's key is in the webhook URL.
    # https://developer.work.weixin.qq.com/document/path/91770
    heading, items = _markdown_lines(title, lines)
    # The heading is at most a few hundred bytes (MAX_TITLE_CHARS); the items get the rest, whole or not at all.
    body = _fit(items, WECOM_MARKDOWN_MAX_BYTES - len(heading.encode("utf-8")) - 1, _more_label)
    content = "\n".join([heading, *body])
    return url, {"msgtype": "markdown", "markdown": {"content": content}}


def _dingtalk(url: str, secret: str, title: str, lines: list[WebhookLine], now: datetime.datetime) -> _Built:
    # DingTalk custom robot, markdown type: {"msgtype": "markdown", "markdown": {"title": ..., "text": ...}};
    # "title" is the plain preview shown in the conversation list, "text" is the markdown body.
    # https://open.dingtalk.com/document/orgapp/custom-robot-access
    # Signing ("加签"): timestamp in milliseconds, sign = urlEncode(Base64(HmacSHA256(secret, f"{ts}\n{secret}"))),
    # appended to the webhook URL as &timestamp=...&sign=... next to access_token.
    # https://open.dingtalk.com/document/robots/customize-robot-security-settings
    heading, items = _markdown_lines(title, lines)
    payload: dict[str, object] = {
        "msgtype": "markdown",
        "markdown": {
            "title": _one_line(title, MAX_TITLE_CHARS),
            "text": "\n\n".join([heading, "\n".join(items)]),
        },
    }
    if secret:
        timestamp = _epoch_ms(now)
        url = _with_query(url, {"timestamp": str(timestamp), "sign": dingtalk_sign(timestamp, secret)})
    return url, payload


def _with_query(url: str, extra: dict[str, str]) -> str:
    """Append parameters to the URL's query, keeping every other existing parameter byte for byte."""
    parts = urllib.parse.urlsplit(url)
    kept = [
        piece
        for piece in parts.query.split("&")
        if piece and urllib.parse.unquote_plus(piece.split("=", 1)[0]) not in extra
    ]
    # quote_plus, as in DingTalk's sample code (urllib.parse.quote_plus(base64.b64encode(hmac_code))).
    kept += [f"{key}={urllib.parse.quote_plus(value)}" for key, value in extra.items()]
    return urllib.parse.urlunsplit(parts._replace(query="&".join(kept)))


def _feishu(url: str, secret: str, title: str, lines: list[WebhookLine], now: datetime.datetime) -> _Built:
    # Feishu custom bot, rich text "post": {"msg_type": "post", "content": {"post": {"zh_cn": {"title": ...,
    # "content": [[{"tag": "text", "text": ...}, {"tag": "a", "text": ..., "href": ...}], ...]}}}}.
    # "text" and "a" elements are plain text, so nothing needs markdown escaping.
    # With 签名校验 the body also carries "timestamp" (seconds, string) and "sign".
    # https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
    def paragraph(line: WebhookLine) -> list[dict[str, str]]:
        elements = [{"tag": "text", "text": _one_line(line.text, MAX_LINE_CHARS)}]
        link = _safe_link(line.link)
        if link:
            elements += [
                {"tag": "text", "text": " "},
                {"tag": "a", "text": _one_line(line.requirement_key, 40) or "link", "href": link},
            ]
        return elements

    def footer(count: int) -> str:
        return _dumps_str([{"tag": "text", "text": _more_label(count)}])

    payload: dict[str, object] = {}
    if secret:
        timestamp = _epoch_s(now)
        payload |= {"timestamp": str(timestamp), "sign": feishu_sign(timestamp, secret)}
    post: dict[str, object] = {"title": _one_line(title, MAX_TITLE_CHARS), "content": []}
    payload |= {"msg_type": "post", "content": {"post": {"zh_cn": post}}}
    # Paragraphs are measured as compact JSON, exactly as _dumps will write them (plus one for the comma).
    overhead = len(_dumps(payload))
    paragraphs = [_dumps_str(paragraph(line)) for line in lines]
    post["content"] = [
        json.loads(piece) for piece in _fit(paragraphs, FEISHU_BODY_MAX_BYTES - overhead, footer)
    ]
    return url, payload


def _slack(url: str, secret: str, title: str, lines: list[WebhookLine], now: datetime.datetime) -> _Built:
    # Slack incoming webhook: {"text": fallback, "blocks": [...]}; with blocks, "text" is the notification
    # fallback. https://api.slack.com/messaging/webhooks
    # mrkdwn: escape &, <, > (https://api.slack.com/reference/surfaces/formatting#escaping); links are
    # <url|text>; "verbatim": true stops Slack from auto-linking URLs and names found in user text.
    def section(text: str) -> dict[str, object]:
        return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}

    safe_title = _escape_slack(_one_line(title, MAX_TITLE_CHARS))
    room = SLACK_MAX_BLOCKS - 1  # the title block
    shown = lines if len(lines) <= room else lines[: room - 1]
    blocks = [section(f"*{safe_title}*")]
    fallback = [safe_title]
    for line in shown:
        text = _escape_slack(_one_line(line.text, MAX_LINE_CHARS))
        fallback.append(text)
        link = _safe_link(line.link)
        if link:
            label = _escape_slack(_one_line(line.requirement_key, 40)) or "link"
            text += f" <{_escape_slack(link)}|{label}>"
        blocks.append(section(text))
    if len(shown) < len(lines):
        more = _more_label(len(lines) - len(shown))
        blocks.append(section(more))
        fallback.append(more)
    return url, {"text": "\n".join(fallback), "blocks": blocks}


_BUILDERS = {
    "generic": _generic,
    "wecom": _wecom,
    "dingtalk": _dingtalk,
    "feishu": _feishu,
    "slack": _slack,
}
