"""The chat-robot request builder: body shapes, signatures, truncation and escaping (no database, no network).

Signatures are recomputed here independently, following each platform's published sample code, and
checked against fixed vectors computed with OpenSSL (the docs publish sample code but no sample outputs):

    printf '%s\\n%s' 1714555800123 "$SECRET" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
    K=$(printf '%s\\n%s' 1714555800 "$SECRET" | xxd -p | tr -d '\\n')
    printf '' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$K -binary | base64
"""

import base64
import datetime
import hashlib
import hmac
import json
import urllib.parse
import zoneinfo

import pytest

from notifications.webhooks import WebhookLine, build_request, dingtalk_sign, feishu_sign

NOW = datetime.datetime(2024, 5, 1, 9, 30, 0, 123000, tzinfo=datetime.UTC)
NOW_MS = "1714555800123"  # date -u -d 2024-05-01T09:30:00Z +%s, plus the 123 ms
NOW_S = "1714555800"

DINGTALK_URL = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef"
DINGTALK_SECRET = "SECa1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"
DINGTALK_SIGN_AT_NOW = "9e/xVkzU8XFfqdgd83th0B19F/14aJKbVOSlJMYcDsE="  # OpenSSL, see the module docstring

FEISHU_URL = "https://open.feishu.cn/open-apis/bot/v2/hook/5e3d587e-d78e-4a07-bd07-265f269f86fd"
FEISHU_SECRET = "bEVt0ShEjMvGxQEJ4WSa1b"
FEISHU_SIGN_AT_NOW = "Vg1HQp6BrHmvNB0PRbcmQ2LTPpwA2fzcyeeSzoXCc+s="  # OpenSSL, see the module docstring

WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXX"

LINE = WebhookLine(
    kind="stage_overdue",
    text="GROW-42 新用户首单红包 is 2 days over its design SLA",
    link="https://ops.example.com/r/GROW-42/",
    requirement_key="GROW-42",
)
EVIL = WebhookLine(
    kind="mentioned",
    text="**x** <script> [evil](http://x) & more",
    link="https://ops.example.com/r/GROW-7/",
    requirement_key="GROW-7",
)


def build(
    fmt, *, url="https://example.com/hook", secret="", title="opsteam · 增长组", lines=(LINE,), now=NOW
):
    return build_request(fmt=fmt, url=url, secret=secret, title=title, lines=list(lines), now=now)


def body_of(fmt, **kwargs):
    _url, body, _headers = build(fmt, **kwargs)
    return json.loads(body.decode("utf-8"))


# --------------------------------------------------------------------------- common


def test_unknown_format_raises_value_error():
    with pytest.raises(ValueError, match="unknown webhook format"):
        build("teams")


def test_naive_now_raises_value_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        build("generic", now=datetime.datetime(2024, 5, 1, 9, 30))  # naive on purpose


def test_headers_are_json_utf8():
    _url, _body, headers = build("slack")

    assert headers == {"Content-Type": "application/json; charset=utf-8"}


def test_body_is_utf8_json_with_chinese_kept_readable():
    _url, body, _headers = build("generic")

    assert "新用户首单红包".encode() in body


# --------------------------------------------------------------------------- generic


def test_generic_body_shape():
    shanghai = NOW.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai"))

    assert body_of("generic", now=shanghai) == {
        "source": "opsteam",
        "title": "opsteam · 增长组",
        "sent_at": "2024-05-01T17:30:00.123000+08:00",
        "items": [
            {
                "kind": "stage_overdue",
                "text": "GROW-42 新用户首单红包 is 2 days over its design SLA",
                "link": "https://ops.example.com/r/GROW-42/",
                "requirement": "GROW-42",
            }
        ],
    }


def test_generic_url_is_unchanged():
    url, _body, _headers = build("generic", url="https://hooks.example.com/in?x=1", secret="s3cret")

    assert url == "https://hooks.example.com/in?x=1"


# --------------------------------------------------------------------------- WeCom


def test_wecom_body_shape():
    assert body_of("wecom", url=WECOM_URL) == {
        "msgtype": "markdown",
        "markdown": {
            "content": "### opsteam · 增长组\n"
            "- GROW-42 新用户首单红包 is 2 days over its design SLA [GROW-42](https://ops.example.com/r/GROW-42/)"
        },
    }


def test_wecom_url_is_unchanged_and_not_signed():
    url, _body, _headers = build("wecom", url=WECOM_URL, secret="ignored")

    assert url == WECOM_URL


def test_wecom_truncates_chinese_content_under_4096_bytes_with_a_count_of_the_rest():
    lines = [
        WebhookLine(
            "due_soon",
            f"GROW-{n} 新用户首单红包活动页面改版，需要设计评审",
            f"https://ops.example.com/r/{n}/",
            "",
        )
        for n in range(200)
    ]

    content = body_of("wecom", url=WECOM_URL, lines=lines)["markdown"]["content"]
    shown = content.count("\n- GROW-")

    assert len(content.encode("utf-8")) <= 4096
    assert 0 < shown < 200
    assert content.endswith(f"\n…and {200 - shown} more items")


def test_wecom_truncation_keeps_whole_items():
    lines = [
        WebhookLine("due_soon", "长" * 250, f"https://ops.example.com/r/{n}/", f"GROW-{n}") for n in range(40)
    ]

    content = body_of("wecom", url=WECOM_URL, lines=lines)["markdown"]["content"]
    items = content.split("\n")[1:-1]

    assert items == [f"- {'长' * 250} [GROW-{n}](https://ops.example.com/r/{n}/)" for n in range(len(items))]


def test_wecom_no_ellipsis_when_everything_fits():
    content = body_of("wecom", url=WECOM_URL, lines=[LINE, LINE])["markdown"]["content"]

    assert "more item" not in content


def test_wecom_escapes_markdown_injection():
    content = body_of("wecom", url=WECOM_URL, lines=[EVIL])["markdown"]["content"]

    assert content.splitlines()[1] == (
        r"- \*\*x\*\* \<script\> \[evil\](http://x) \& more [GROW-7](https://ops.example.com/r/GROW-7/)"
    )


def test_wecom_escapes_a_leading_block_marker():
    line = WebhookLine("mentioned", "# 标题 > quote", "", "")

    content = body_of("wecom", url=WECOM_URL, lines=[line])["markdown"]["content"]

    assert content.splitlines()[1] == r"- \# 标题 \> quote"


def test_wecom_collapses_line_breaks_so_text_cannot_start_a_new_block():
    line = WebhookLine("mentioned", "第一行\n# 第二行", "", "")

    content = body_of("wecom", url=WECOM_URL, lines=[line])["markdown"]["content"]

    assert content.splitlines()[1:] == ["- 第一行 # 第二行"]


def test_markdown_link_url_cannot_close_the_link():
    line = WebhookLine("mentioned", "x", "https://ops.example.com/r/a) [b](http://evil", "K-1")

    content = body_of("wecom", url=WECOM_URL, lines=[line])["markdown"]["content"]

    assert content.splitlines()[1] == "- x [K-1](https://ops.example.com/r/a%29%20[b]%28http://evil)"


def test_markdown_drops_non_http_links():
    line = WebhookLine("mentioned", "x", "javascript:alert(1)", "K-1")

    content = body_of("wecom", url=WECOM_URL, lines=[line])["markdown"]["content"]

    assert content.splitlines()[1] == "- x"


# --------------------------------------------------------------------------- DingTalk


def test_dingtalk_body_shape():
    assert body_of("dingtalk", url=DINGTALK_URL) == {
        "msgtype": "markdown",
        "markdown": {
            "title": "opsteam · 增长组",
            "text": "### opsteam · 增长组\n\n"
            "- GROW-42 新用户首单红包 is 2 days over its design SLA [GROW-42](https://ops.example.com/r/GROW-42/)",
        },
    }


def test_dingtalk_without_secret_leaves_url_unchanged():
    url, _body, _headers = build("dingtalk", url=DINGTALK_URL)

    assert url == DINGTALK_URL


def test_dingtalk_signature_matches_the_docs_sample_code():
    # DingTalk's Python sample: hmac.new(secret_enc, f"{timestamp}\n{secret}", sha256), base64, quote_plus.
    secret_enc = DINGTALK_SECRET.encode("utf-8")
    string_to_sign_enc = f"{NOW_MS}\n{DINGTALK_SECRET}".encode()
    hmac_code = hmac.new(secret_enc, string_to_sign_enc, digestmod=hashlib.sha256).digest()
    expected_sign = urllib.parse.quote_plus(base64.b64encode(hmac_code))

    url, _body, _headers = build("dingtalk", url=DINGTALK_URL, secret=DINGTALK_SECRET)

    assert urllib.parse.urlsplit(url).query.split("&")[1:] == [f"timestamp={NOW_MS}", f"sign={expected_sign}"]


def test_dingtalk_signed_url_keeps_access_token():
    url, _body, _headers = build("dingtalk", url=DINGTALK_URL, secret=DINGTALK_SECRET)

    assert url.startswith("https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef&")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["access_token"] == ["0123456789abcdef"]


def test_dingtalk_sign_query_value_decodes_to_the_known_answer():
    url, _body, _headers = build("dingtalk", url=DINGTALK_URL, secret=DINGTALK_SECRET)

    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["sign"] == [DINGTALK_SIGN_AT_NOW]


def test_dingtalk_sign_known_answer():
    assert dingtalk_sign(int(NOW_MS), DINGTALK_SECRET) == DINGTALK_SIGN_AT_NOW


def test_dingtalk_timestamp_is_epoch_milliseconds_whatever_the_offset():
    shanghai = NOW.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai"))

    url, _body, _headers = build("dingtalk", url=DINGTALK_URL, secret=DINGTALK_SECRET, now=shanghai)

    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["timestamp"] == [NOW_MS]


def test_dingtalk_resigning_replaces_an_old_timestamp_and_sign():
    stale = DINGTALK_URL + "&timestamp=1&sign=old"

    url, _body, _headers = build("dingtalk", url=stale, secret=DINGTALK_SECRET)

    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query) == {
        "access_token": ["0123456789abcdef"],
        "timestamp": [NOW_MS],
        "sign": [DINGTALK_SIGN_AT_NOW],
    }


def test_dingtalk_escapes_markdown_injection():
    text = body_of("dingtalk", url=DINGTALK_URL, lines=[EVIL])["markdown"]["text"]

    assert text.splitlines()[-1] == (
        r"- \*\*x\*\* \<script\> \[evil\](http://x) \& more [GROW-7](https://ops.example.com/r/GROW-7/)"
    )


# --------------------------------------------------------------------------- Feishu


def test_feishu_body_shape_unsigned():
    assert body_of("feishu", url=FEISHU_URL) == {
        "msg_type": "post",
        "content": {
            "post": {
                "zh_cn": {
                    "title": "opsteam · 增长组",
                    "content": [
                        [
                            {"tag": "text", "text": "GROW-42 新用户首单红包 is 2 days over its design SLA"},
                            {"tag": "text", "text": " "},
                            {"tag": "a", "text": "GROW-42", "href": "https://ops.example.com/r/GROW-42/"},
                        ]
                    ],
                }
            }
        },
    }


def test_feishu_url_is_unchanged_when_signed():
    url, _body, _headers = build("feishu", url=FEISHU_URL, secret=FEISHU_SECRET)

    assert url == FEISHU_URL


def test_feishu_signature_matches_the_docs_sample_code():
    # Feishu's Python sample: key = f'{timestamp}\n{secret}', hmac.new(key_enc, b"", sha256), base64.
    key_enc = f"{NOW_S}\n{FEISHU_SECRET}".encode()
    hmac_code = hmac.new(key_enc, b"", digestmod=hashlib.sha256).digest()
    expected_sign = base64.b64encode(hmac_code).decode("utf-8")

    body = body_of("feishu", url=FEISHU_URL, secret=FEISHU_SECRET)

    assert (body["timestamp"], body["sign"]) == (NOW_S, expected_sign)


def test_feishu_signed_body_keeps_the_message():
    body = body_of("feishu", url=FEISHU_URL, secret=FEISHU_SECRET)

    assert sorted(body) == ["content", "msg_type", "sign", "timestamp"]
    assert body["msg_type"] == "post"


def test_feishu_sign_known_answer():
    assert feishu_sign(int(NOW_S), FEISHU_SECRET) == FEISHU_SIGN_AT_NOW


def test_feishu_sign_is_not_the_dingtalk_construction():
    dingtalk_style = base64.b64encode(
        hmac.new(FEISHU_SECRET.encode(), f"{NOW_S}\n{FEISHU_SECRET}".encode(), hashlib.sha256).digest()
    ).decode()

    assert feishu_sign(int(NOW_S), FEISHU_SECRET) != dingtalk_style


def test_feishu_text_elements_stay_plain_text():
    paragraph = body_of("feishu", url=FEISHU_URL, lines=[EVIL])["content"]["post"]["zh_cn"]["content"][0]

    assert paragraph[0] == {"tag": "text", "text": "**x** <script> [evil](http://x) & more"}


def test_feishu_drops_non_http_links():
    line = WebhookLine("mentioned", "x", "javascript:alert(1)", "K-1")

    paragraph = body_of("feishu", url=FEISHU_URL, lines=[line])["content"]["post"]["zh_cn"]["content"][0]

    assert paragraph == [{"tag": "text", "text": "x"}]


def test_feishu_body_stays_under_20_kb():
    lines = [
        WebhookLine("due_soon", "需要设计评审" * 40, f"https://ops.example.com/r/{n}/", f"G-{n}")
        for n in range(100)
    ]

    _url, body, _headers = build("feishu", url=FEISHU_URL, secret=FEISHU_SECRET, lines=lines)
    paragraphs = json.loads(body)["content"]["post"]["zh_cn"]["content"]

    assert len(body) <= 19_000
    assert paragraphs[-1] == [{"tag": "text", "text": f"…and {100 - (len(paragraphs) - 1)} more items"}]


# --------------------------------------------------------------------------- Slack


def test_slack_body_shape():
    assert body_of("slack", url=SLACK_URL) == {
        "text": "opsteam · 增长组\nGROW-42 新用户首单红包 is 2 days over its design SLA",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*opsteam · 增长组*", "verbatim": True}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "GROW-42 新用户首单红包 is 2 days over its design SLA "
                    "<https://ops.example.com/r/GROW-42/|GROW-42>",
                    "verbatim": True,
                },
            },
        ],
    }


def test_slack_escapes_control_characters():
    line = WebhookLine("mentioned", "a & b <!channel> <http://evil|click>", "", "")

    body = body_of("slack", url=SLACK_URL, lines=[line])

    assert body["blocks"][1]["text"]["text"] == "a &amp; b &lt;!channel&gt; &lt;http://evil|click&gt;"


def test_slack_fallback_text_is_escaped_too():
    line = WebhookLine("mentioned", "<@U123> & co", "", "")

    assert body_of("slack", url=SLACK_URL, lines=[line])["text"] == "opsteam · 增长组\n&lt;@U123&gt; &amp; co"


def test_slack_link_url_is_escaped_and_cannot_close_the_link():
    line = WebhookLine("mentioned", "x", "https://ops.example.com/r/?a=1&b=<2>|3", "K-1")

    body = body_of("slack", url=SLACK_URL, lines=[line])

    assert body["blocks"][1]["text"]["text"] == "x <https://ops.example.com/r/?a=1&amp;b=%3C2%3E%7C3|K-1>"


def test_slack_caps_the_message_at_50_blocks():
    lines = [WebhookLine("due_today", f"item {n}", "", "") for n in range(120)]

    blocks = body_of("slack", url=SLACK_URL, lines=lines)["blocks"]

    assert len(blocks) == 50
    assert blocks[-1]["text"]["text"] == "…and 72 more items"
