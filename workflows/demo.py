"""The demo team `manage.py seed_demo` builds: 增长运营组 Growth Ops (GROW), nine people and forty
requirements with six months of history, made through the services so the event log is exactly what
the product would have recorded (only the wall-clock stamps the tracking-plan and analysis services set
are backdated afterwards). Other apps add their side of the demo through settings.OPSTEAM_DEMO_HOOKS.

Each requirement is a script: who proposes it, its fields, the path it took through the default
workflow, the tracking plan of each loop and the conclusion of each analysis. The times of the moves are
planned backwards from where the requirement ends up (closed some days ago, or sitting in its stage for
some multiple of the stage's SLA), so a fixed `now` gives the same history every time."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from roles import services as role_services
from roles.models import Team

from . import services
from .defaults import DEFAULT_STAGES
from .models import IterationLoop, Requirement, StageEvent, TrackingEvent

TEAM_NAME = "增长运营组 Growth Ops"
KEY_PREFIX = "GROW"
TIME_ZONE = "Asia/Shanghai"
DEMO_USERNAME = "demo"
HISTORY = dt.timedelta(days=178)

SLA_HOURS: dict[str, int] = {slug: hours for slug, _name, _owners, hours in DEFAULT_STAGES}
STAGE_ORDER: list[str] = [slug for slug, _name, _owners, _hours in DEFAULT_STAGES]


class Writer(Protocol):
    def write(self, text: str) -> Any: ...


@dataclass(frozen=True)
class Person:
    username: str
    first_name: str
    last_name: str
    roles: tuple[str, ...]


PEOPLE: tuple[Person, ...] = (
    Person(DEMO_USERNAME, "Demo", "Lead", ("lead",)),
    Person("li.na", "娜", "李", ("ops",)),  # user ops
    Person("chen.jie", "洁", "陈", ("ops", "analyst")),  # community ops who reads her own data
    Person("david.lin", "David", "Lin", ("ops",)),  # channel and merchant ops
    Person("zhang.wei", "伟", "张", ("pm",)),  # platform PM
    Person("emily.zhou", "Emily", "Zhou", ("pm",)),  # marketing PM
    Person("liu.yang", "洋", "刘", ("engineer",)),  # back end
    Person("tom.baker", "Tom", "Baker", ("engineer",)),  # front end and QA
    Person("wang.fang", "芳", "王", ("analyst",)),
)
ENGINEERS = ("liu.yang", "tom.baker")


@dataclass(frozen=True)
class Script:
    """One requirement's story.

    `path` lists the moves after creation: a stage slug, `iterate` or `close`; `!` before a move makes
    the lead do it, `~2.5` after it says the requirement sat 2.5× the SLA of the stage it leaves (otherwise
    the time is drawn at random, mostly within the SLA). `analyses` holds (verdict, conclusion, next step)
    for each analyze → optimize move, and `checks` the three checks of each conclusion as y/n for core metric
    moved, user behaviour moved, feedback positive (by default what its verdict implies). `tracking` is the
    tracking plan each loop adds when it reaches instrument: (event name, trigger, properties). A closed
    requirement closed `closed_days_ago`; an open one has been in its current stage `stuck` × that stage's
    SLA."""

    title: str
    ops: str
    aarrr_stage: str
    hypothesis: str
    target_metric: str
    background: str
    plan: tuple[str, ...]
    path: str
    analyses: tuple[tuple[str, str, str], ...] = ()
    outcome: str = ""
    closed_days_ago: float = 0
    stuck: float = 0.3
    close_note: str = ""
    priority: str = "P2"
    incident_kind: str = ""
    work_type: str = "base"
    labels: tuple[str, ...] = ()
    pace: float = 1.0
    due_in_days: int = 30
    people: str = ""
    budget: int | None = None
    other: str = ""
    tracking: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    checks: tuple[str, ...] = ()


LOOP = "design build instrument analyze optimize"

SCRIPTS: tuple[Script, ...] = (
    Script(
        title="新用户首单红包:注册后24小时内下单立减10元",
        ops="li.na",
        aarrr_stage="activation",
        hypothesis="新用户在注册后24小时内拿到首单红包,注册→首单转化率从8%提升到12%。",
        target_metric="注册→首单转化率",
        background="新注册用户中只有8%在7天内完成首单,大部分人浏览两三个商品后就离开了。",
        plan=(
            "注册成功页和首页弹窗展示红包",
            "红包24小时内有效,到期前2小时推送提醒",
            "与风控对齐,同一设备只发一次",
        ),
        path=f"{LOOP} iterate {LOOP} iterate {LOOP} close",
        analyses=(
            (
                "flat",
                "首单转化率8.1%,与对照组无显著差异;知道有红包的用户不到三成。",
                "把红包入口前置到注册成功页",
            ),
            (
                "improved",
                "入口前置后首单转化率10.2%(+2.1pt),但红包核销集中在低价商品。",
                "红包改为满39可用,引导凑单",
            ),
            ("improved", "满39可用后首单转化率12.4%,客单价持平,达成目标。", ""),
        ),
        outcome="done",
        closed_days_ago=20,
        labels=("新客", "红包"),
        people="前端1人、后端1人",
        budget=50000,
        other="风控规则配置;短信通道额度",
        tracking=(
            (
                "coupon_popup_show",
                "注册成功页或首页弹出新人红包弹窗时",
                ("user_id", "page", "coupon_id", "channel"),
            ),
            ("coupon_claim", "用户点击“立即领取”并领取成功时", ("user_id", "coupon_id", "amount")),
            (
                "first_order_submit",
                "新用户提交首笔订单时",
                ("user_id", "order_id", "order_amount", "coupon_id"),
            ),
            ("coupon_expiry_push_send", "红包到期前2小时发送提醒推送时", ("user_id", "coupon_id", "push_id")),
        ),
    ),
    Script(
        title="次日留存:新手任务与福利礼包",
        ops="li.na",
        aarrr_stage="retention",
        hypothesis="新手任务引导用户在首日完成收藏、关注、下单三个核心动作,D1留存从20%提升到30%。",
        target_metric="D1 留存率",
        background="注册用户次日留存率不足20%,行为漏斗显示多数新用户首日只打开过首页。",
        plan=(
            "首页顶部新手任务卡,完成三步领福利礼包",
            "第二天早上推送未完成任务提醒",
            "埋点:任务曝光、每一步完成、礼包领取",
        ),
        path=f"{LOOP} iterate design build instrument analyze",
        analyses=(
            (
                "improved",
                "D1留存从19.6%提升到24.8%,完成全部任务的用户D1留存41%。",
                "礼包改为分三天发放,拉长到D3",
            ),
        ),
        stuck=0.4,
        labels=("新客", "留存"),
        work_type="innovation",
        due_in_days=60,
        people="前端1人、后端1人、设计0.5人",
        budget=20000,
        tracking=(
            (
                "newbie_task_card_show",
                "首页顶部新手任务卡曝光时",
                ("user_id", "task_step", "days_since_register"),
            ),
            (
                "newbie_task_step_done",
                "用户完成收藏、关注、下单中的任一步时",
                ("user_id", "task_name", "step_index"),
            ),
            ("welcome_pack_claim", "三步全部完成并领取福利礼包时", ("user_id", "pack_id", "day_index")),
        ),
    ),
    Script(
        title="渠道投放:信息流广告落地页 A/B 测试",
        ops="david.lin",
        aarrr_stage="acquisition",
        hypothesis="落地页首屏直接展示新人福利和一键注册,落地页注册转化率从3%提升到4.5%,获客成本下降20%。",
        target_metric="落地页注册转化率 / 获客成本 CAC",
        background="信息流渠道获客成本达到每人200元,落地页跳出率72%。",
        plan=("两版落地页各分50%流量", "首屏福利+手机号一键注册", "按渠道、素材拆分转化数据"),
        path=f"{LOOP} close",
        analyses=(("improved", "新版落地页注册转化4.7%,CAC从200元降到150元,全量上线。", ""),),
        outcome="done",
        closed_days_ago=128,
        labels=("投放", "A/B测试"),
        budget=80000,
        other="信息流渠道预算",
        tracking=(
            (
                "landing_page_view",
                "用户打开信息流广告落地页时",
                ("variant", "channel", "creative_id", "utm_source"),
            ),
            (
                "one_tap_register_click",
                "用户点击落地页首屏“一键注册”按钮时",
                ("variant", "channel", "creative_id"),
            ),
            ("register_success", "落地页来源的用户注册成功时", ("user_id", "variant", "channel")),
        ),
    ),
    Script(
        title="社群裂变:老带新拼团,邀请3人成团享5折",
        ops="chen.jie",
        aarrr_stage="referral",
        hypothesis="老用户为拿5折主动在微信群和朋友圈分享拼团,转介绍率从2%提升到6%。",
        target_metric="转介绍率(新客中被邀请注册的占比)",
        background="社群里老用户活跃但很少主动拉新,转介绍带来的新客只占2%。",
        plan=("拼团商品池每周更新", "分享卡片带邀请码", "成团失败自动退款并补发优惠券"),
        path=(
            f"{LOOP} iterate {LOOP} iterate design build instrument analyze instrument analyze optimize "
            f"iterate {LOOP} close"
        ),
        analyses=(
            ("flat", "转介绍率2.3%,成团率只有18%,多数团差1人。", "成团人数从3人降为2人"),
            ("improved", "成团率升到46%,转介绍率3.9%。", "分享卡片改版,突出省多少钱"),
            ("improved", "转介绍率5.1%;修复安卓重复上报后数据可信。", "拼团商品池加入高频日用品"),
            ("improved", "转介绍率6.3%,达成目标,转为常规活动。", ""),
        ),
        outcome="done",
        closed_days_ago=6,
        labels=("社群", "裂变"),
        work_type="innovation",
        people="前端1人、后端1人",
        budget=30000,
        tracking=(
            (
                "group_buy_share",
                "用户在拼团页点击分享到微信群或朋友圈时",
                ("user_id", "group_id", "share_target", "sku_id"),
            ),
            (
                "group_buy_join",
                "被邀请用户打开分享卡片并参团时",
                ("user_id", "group_id", "inviter_id", "is_new_user"),
            ),
            (
                "group_buy_complete",
                "拼团人数凑齐、成团成功时",
                ("group_id", "member_count", "minutes_to_complete"),
            ),
        ),
    ),
    Script(
        title="会员复购:按 RFM 分层推送专属优惠券",
        ops="li.na",
        aarrr_stage="revenue",
        hypothesis="按最近一次消费、消费频率、消费金额把会员分层,分别推送不同面额的券,30日复购率从18%提升到23%。",
        target_metric="30日复购率",
        background="所有会员收到同样的券,高价值用户嫌面额低,沉睡用户根本不打开推送。",
        plan=(
            "RFM 模型把会员分为高价值、潜力、沉睡三层",
            "高价值:专属客服和优先体验;潜力:限时折扣;沉睡:召回短信",
            "每层留5%对照组",
        ),
        path=f"{LOOP} iterate design build",
        analyses=(("improved", "潜力用户复购率+4.2pt,沉睡用户几乎无变化。", "沉睡用户改用短信+专属福利"),),
        stuck=0.5,
        labels=("会员", "复购"),
        due_in_days=75,
        people="后端1人、数据0.5人",
        budget=40000,
        tracking=(
            ("rfm_segment_assign", "每天凌晨按 RFM 模型给会员分层时", ("user_id", "segment", "recency_days")),
            (
                "member_coupon_send",
                "按分层推送专属优惠券时",
                ("user_id", "segment", "coupon_id", "is_control"),
            ),
            (
                "member_coupon_redeem",
                "会员使用专属优惠券下单时",
                ("user_id", "segment", "coupon_id", "order_id"),
            ),
        ),
    ),
    Script(
        title="降低配送投诉率:超时自动补偿优惠券",
        ops="david.lin",
        aarrr_stage="retention",
        hypothesis="配送超时30分钟自动补偿5元券并致歉,配送相关投诉率从4.8%降到3%以下。",
        target_metric="投诉率",
        background="上月投诉率连续多天接近5%的预警线,其中六成与配送超时有关。",
        plan=("配送超时自动判定", "站内信+短信致歉并发券", "客服后台可查看补偿记录"),
        path="design build instrument~1.4 analyze optimize close",
        analyses=(("improved", "超时订单投诉率从11%降到4%,整体投诉率2.7%。", ""),),
        outcome="done",
        closed_days_ago=95,
        priority="P1",
        labels=("客诉",),
        budget=15000,
        tracking=(
            (
                "delivery_overdue_detect",
                "订单超过承诺送达时间30分钟、被系统判定超时时",
                ("order_id", "overdue_minutes", "rider_id"),
            ),
            (
                "compensation_coupon_send",
                "超时订单自动发放5元补偿券并致歉时",
                ("order_id", "user_id", "coupon_id"),
            ),
            (
                "complaint_submit",
                "用户在订单页或客服入口提交投诉时",
                ("order_id", "user_id", "complaint_type"),
            ),
        ),
    ),
    Script(
        title="商家入驻流程简化:资质上传从5步减到3步",
        ops="david.lin",
        aarrr_stage="acquisition",
        hypothesis="合并资质上传步骤并支持营业执照 OCR,商家入驻完成率从35%提升到50%。",
        target_metric="商家入驻完成率",
        background="商家入驻要填5页表单,一半的商家在上传资质这一步放弃。",
        plan=("营业执照拍照自动识别", "法人信息与执照合并为一步", "审核进度短信通知"),
        path="design propose design",
        stuck=0.6,
        labels=("商家",),
        due_in_days=45,
        people="前端1人、后端1人",
    ),
    Script(
        title="内容审核:社区违规内容24小时内下架",
        ops="chen.jie",
        aarrr_stage="retention",
        hypothesis="关键词+图片识别预审,人工复核,违规内容平均存活时间从3天降到24小时内。",
        target_metric="违规内容平均存活时长",
        background="社区出现违规广告帖被用户截图投诉,监管要求立即整改。",
        plan=("发帖即过关键词与图片识别", "疑似违规进入人工复核队列", "违规账号阶梯处罚"),
        path="!build instrument analyze optimize close",
        analyses=(("improved", "违规内容平均存活时长从71小时降到6小时,误杀率0.8%。", ""),),
        outcome="done",
        closed_days_ago=60,
        close_note="整改完成,已向监管报备。",
        priority="P0",
        incident_kind="content_violation",
        labels=("内容安全",),
        pace=0.15,
        due_in_days=2,
        tracking=(
            (
                "post_precheck_result",
                "发帖经过关键词与图片识别预审、得出结果时",
                ("post_id", "result", "hit_rule"),
            ),
            (
                "manual_review_done",
                "人工复核完成、给出通过或下架结论时",
                ("post_id", "reviewer_id", "decision", "wait_minutes"),
            ),
            ("violation_post_takedown", "违规内容被下架时", ("post_id", "online_hours", "penalty_level")),
        ),
    ),
    Script(
        title="P0:支付回调失败导致首单红包未发放",
        ops="li.na",
        aarrr_stage="activation",
        hypothesis="修复支付回调重试并补发红包后,首单红包发放成功率恢复到99.9%以上。",
        target_metric="首单红包发放成功率",
        background="支付渠道升级后回调超时,过去两天约1,200名新用户下单后没有收到红包,客服进线激增。",
        plan=("回调失败进入重试队列,最多重试5次", "补发遗漏的红包并短信致歉", "增加发放成功率监控告警"),
        path=f"{LOOP} close",
        analyses=(("improved", "发放成功率99.95%,补发1,187个红包,相关投诉清零。", ""),),
        outcome="done",
        closed_days_ago=41,
        priority="P0",
        incident_kind="system_failure",
        labels=("新客", "红包", "故障"),
        pace=0.1,
        due_in_days=1,
        tracking=(
            (
                "payment_callback_retry",
                "支付回调失败进入重试队列、每次重试时",
                ("order_id", "attempt", "error_code"),
            ),
            ("first_order_coupon_grant", "首单红包发放成功或失败时", ("order_id", "user_id", "result")),
        ),
    ),
    Script(
        title="P0:在线客服排队超过10分钟",
        ops="li.na",
        aarrr_stage="retention",
        hypothesis="高峰期分流到智能客服并增加人工坐席,平均排队时长降到2分钟以内。",
        target_metric="客服平均排队时长",
        background="大促后咨询量翻倍,客服平均排队12分钟,投诉率三天超过5%。",
        plan=("高峰期常见问题先由机器人回答", "排队超过3分钟提示回电", "坐席排班按小时咨询量调整"),
        path="design build instrument",
        stuck=1.8,
        priority="P0",
        incident_kind="service_delay",
        labels=("客诉", "客服"),
        pace=0.2,
        due_in_days=3,
        people="客服主管、后端1人",
        tracking=(
            ("cs_queue_enter", "用户进入人工客服排队时", ("session_id", "queue_length", "entry_page")),
            ("cs_bot_answer", "智能客服回答常见问题时", ("session_id", "question_id", "resolved")),
            ("cs_callback_request", "排队超过3分钟、用户选择回电时", ("session_id", "wait_seconds")),
        ),
    ),
    Script(
        title="Push reminder before coupons expire",
        ops="li.na",
        aarrr_stage="retention",
        hypothesis="A push two days and two hours before a coupon expires brings back lapsed users: "
        "coupon redemption +5pt, 30-day churn −2pt.",
        target_metric="Coupon redemption rate",
        background="60% of churned users left unused coupons behind; they simply forgot them.",
        plan=(
            "Push and SMS two days before expiry",
            "Second push two hours before expiry",
            "Deep link to the cart",
        ),
        path=f"{LOOP} iterate {LOOP} close",
        analyses=(
            (
                "flat",
                "Redemption +0.8pt; most pushes were sent at night and never opened.",
                "Send at 12:00 and 19:00",
            ),
            ("improved", "Redemption +5.6pt and recall rate +15% after moving the send times.", ""),
        ),
        outcome="done",
        closed_days_ago=33,
        labels=("召回", "推送"),
        tracking=(
            (
                "coupon_expiry_push_send",
                "When the expiry push or SMS is sent",
                ("user_id", "coupon_id", "hours_to_expiry", "channel"),
            ),
            (
                "coupon_expiry_push_open",
                "When the user opens the push and lands in the cart",
                ("user_id", "coupon_id", "push_id"),
            ),
            ("coupon_redeem", "When an order is paid with the coupon", ("user_id", "coupon_id", "order_id")),
        ),
    ),
    Script(
        title="积分商城上线:积分兑换优惠券和实物",
        ops="chen.jie",
        aarrr_stage="retention",
        hypothesis="有了积分的去处,月活用户中每周登录2次以上的比例从30%提升到38%。",
        target_metric="周活跃2次以上用户占比",
        background="用户积分只能抵扣运费,八成积分从未使用,积分对活跃没有拉动。",
        plan=("积分兑换券和少量实物", "每日签到、评价、分享得积分", "积分过期前提醒"),
        path="design build",
        stuck=1.6,
        labels=("会员", "积分"),
        work_type="innovation",
        due_in_days=10,
        people="前端2人、后端1人",
        budget=60000,
        other="实物礼品采购",
    ),
    Script(
        title="用户等级特权体系",
        ops="li.na",
        aarrr_stage="retention",
        hypothesis="按累计消费划分四个等级并给予专属特权,高等级用户90日流失率下降5pt。",
        target_metric="90日流失率",
        background="高价值用户和普通用户享受一样的服务,竞品已经推出会员等级。",
        plan=("四个等级,按近12个月消费计算", "特权:专属客服、生日礼、免运费"),
        path="",
        stuck=0.3,
        labels=("会员",),
        work_type="innovation",
        due_in_days=90,
    ),
    Script(
        title="打卡挑战:连续7天打卡得优惠券",
        ops="chen.jie",
        aarrr_stage="activation",
        hypothesis="连续打卡激励让新用户养成每日打开的习惯,DAU/MAU 从15%提升到20%。",
        target_metric="DAU/MAU",
        background="新用户注册后一周内平均只打开2次。",
        plan=("打卡日历放在个人中心", "第3天和第7天发券"),
        path=f"{LOOP} close",
        analyses=(("worse", "DAU/MAU 持平,领券后第8天活跃反而下降;用户只为领券打卡。", ""),),
        outcome="wont_do",
        closed_days_ago=112,
        close_note="只带来领券行为,不是真实活跃,停止投入。",
        labels=("活动",),
        tracking=(
            ("checkin_calendar_view", "用户打开个人中心的打卡日历时", ("user_id", "streak_days")),
            ("checkin_submit", "用户完成当天打卡时", ("user_id", "streak_days")),
            (
                "checkin_coupon_claim",
                "连续打卡第3天、第7天领取优惠券时",
                ("user_id", "streak_days", "coupon_id"),
            ),
        ),
    ),
    Script(
        title="618大促预热:短信 + App 弹窗分层触达",
        ops="li.na",
        aarrr_stage="revenue",
        hypothesis="提前两周按用户分层预热,大促首日 GMV 比去年同期增长30%。",
        target_metric="大促首日 GMV",
        background="去年大促预热只有首页 banner,首日流量主要来自老用户。",
        plan=("潜在用户:短信+新人券", "活跃用户:App 弹窗+满减预告", "沉睡用户:召回短信"),
        path="design build~1.2 instrument analyze optimize close",
        analyses=(("improved", "首日 GMV 同比+34%,短信召回用户占首日下单用户的12%。", ""),),
        outcome="done",
        closed_days_ago=72,
        priority="P1",
        labels=("大促", "推送"),
        budget=120000,
        other="短信通道额度;大促会场设计",
        tracking=(
            ("promo_sms_send", "按用户分层发送预热短信时", ("user_id", "segment", "template_id")),
            ("promo_popup_show", "App 启动后展示大促预热弹窗时", ("user_id", "segment", "popup_id")),
            ("promo_venue_view", "用户进入大促会场页时", ("user_id", "source", "segment")),
            ("promo_order_pay", "大促期间订单支付成功时", ("order_id", "user_id", "order_amount", "source")),
        ),
    ),
    Script(
        title="沉睡用户召回短信",
        ops="david.lin",
        aarrr_stage="retention",
        hypothesis="对30天未登录用户发送专属福利短信,召回率达到8%。",
        target_metric="沉睡用户召回率",
        background="30天未登录的用户占注册用户的45%,一直没有召回手段。",
        plan=("按最近一次消费金额分组", "短信带专属福利链接", "召回后7日内再推一次新品"),
        path=f"{LOOP} iterate {LOOP} close",
        analyses=(
            ("flat", "召回率3.1%,链接打开率低,很多号码已停机。", "先清洗号码,文案突出福利金额"),
            ("improved", "召回率8.6%,召回用户7日复购率21%。", ""),
        ),
        outcome="done",
        closed_days_ago=85,
        labels=("召回",),
        budget=10000,
        tracking=(
            (
                "winback_sms_send",
                "给30天未登录的用户发送召回短信时",
                ("user_id", "spend_group", "template_id"),
            ),
            ("winback_link_open", "用户点击短信里的专属福利链接时", ("user_id", "template_id")),
            ("winback_order_submit", "被召回用户7日内下单时", ("user_id", "order_id", "days_since_sms")),
        ),
    ),
    Script(
        title="注册流程简化:手机号一键登录",
        ops="li.na",
        aarrr_stage="activation",
        hypothesis="运营商一键登录替代短信验证码,注册完成率从62%提升到80%。",
        target_metric="注册完成率",
        background="注册页短信验证码到达慢,38%的用户在等验证码时离开。",
        plan=("接入运营商一键登录", "失败时回退到验证码"),
        path="design build design build instrument analyze optimize close",
        analyses=(("improved", "注册完成率81.5%,验证码短信费用下降60%。", ""),),
        outcome="done",
        closed_days_ago=140,
        labels=("新客",),
        people="前端1人、后端1人",
        tracking=(
            ("one_tap_login_show", "注册页展示运营商一键登录时", ("carrier", "os")),
            ("one_tap_login_result", "一键登录成功或失败时", ("carrier", "result", "error_code")),
            ("sms_code_fallback", "一键登录失败、回退到短信验证码时", ("carrier", "reason")),
        ),
    ),
    Script(
        title="邀请返利:邀请人和被邀请人各得5元",
        ops="chen.jie",
        aarrr_stage="referral",
        hypothesis="双向奖励比单向奖励更容易被转发,K 因子从0.15提升到0.3。",
        target_metric="K 因子",
        background="现有邀请只奖励邀请人,被邀请人没有动力接受邀请。",
        plan=("双向5元无门槛券", "邀请排行榜每周更新"),
        path=LOOP,
        analyses=(("improved", "K 因子0.27,但有12%的邀请来自同一设备,疑似刷单。", "加设备指纹去重后再评估"),),
        stuck=0.5,
        labels=("裂变",),
        budget=25000,
        tracking=(
            ("invite_link_share", "邀请人分享邀请链接时", ("inviter_id", "share_target")),
            ("invite_accept", "被邀请人通过链接注册时", ("user_id", "inviter_id", "device_id")),
            (
                "invite_reward_grant",
                "邀请双方各得5元券、发放成功时",
                ("inviter_id", "invitee_id", "coupon_id"),
            ),
        ),
    ),
    Script(
        title="KOL 达人社群:旅行达人、美食达人带动内容",
        ops="chen.jie",
        aarrr_stage="referral",
        hypothesis="每个品类培养5名达人带动社群,社群月均发言量提升3倍,社群用户转介绍率提升2pt。",
        target_metric="社群月均发言量",
        background="社群建了40个,但大部分只有运营在发消息。",
        plan=("招募达人并给予专属标识", "每周主题分享会", "达人内容同步到社区首页"),
        path="design build instrument analyze",
        stuck=1.4,
        labels=("社群", "内容"),
        work_type="innovation",
        due_in_days=14,
        budget=20000,
        tracking=(
            ("kol_post_publish", "达人在社群或社区发布内容时", ("kol_id", "category", "post_id")),
            ("community_message_send", "社群内用户发言时", ("group_id", "user_id", "is_kol")),
            ("kol_post_feature", "达人内容同步到社区首页时", ("post_id", "kol_id")),
        ),
    ),
    Script(
        title="搜索结果页增加“猜你喜欢”",
        ops="li.na",
        aarrr_stage="activation",
        hypothesis="搜索无结果或结果少时展示推荐,搜索后下单率提升3pt。",
        target_metric="搜索后下单率",
        background="14%的搜索没有结果,用户直接离开。",
        plan=("无结果时展示同类热销", "结果少于5条时补充推荐"),
        path=f"{LOOP} close",
        analyses=(("worse", "搜索后下单率−0.6pt,推荐商品与搜索词不相关,用户反感。", ""),),
        outcome="wont_do",
        closed_days_ago=102,
        close_note="推荐质量不够,先补齐商品标签再说。",
        labels=("搜索",),
        tracking=(
            ("search_result_show", "搜索结果页展示时", ("query", "result_count", "has_recommend")),
            ("search_recommend_click", "用户点击“猜你喜欢”推荐商品时", ("query", "sku_id", "position")),
            ("search_order_submit", "从搜索进入商品并下单时", ("query", "order_id", "from_recommend")),
        ),
        checks=("nnn",),
    ),
    Script(
        title="Onboarding checklist for new merchants",
        ops="david.lin",
        aarrr_stage="activation",
        hypothesis="A five-step checklist on the merchant dashboard gets 60% of new merchants to their first "
        "listed product within 7 days (today 38%).",
        target_metric="Merchants listing a product within 7 days",
        background="New merchants finish registration and then stall: 62% have no product listed after a week.",
        plan=(
            "Checklist card on the dashboard",
            "Reminder SMS on day 2 and day 5",
            "Merchant ops calls the stuck ones",
        ),
        path="design build instrument build instrument",
        stuck=0.5,
        labels=("商家",),
        due_in_days=14,
        tracking=(
            (
                "merchant_checklist_view",
                "When a new merchant opens the dashboard checklist",
                ("merchant_id", "steps_done"),
            ),
            ("merchant_checklist_step_done", "When a checklist step is completed", ("merchant_id", "step")),
            (
                "merchant_first_product_listed",
                "When the merchant's first product goes live",
                ("merchant_id", "days_since_signup"),
            ),
        ),
    ),
    Script(
        title="商家经营诊断周报",
        ops="david.lin",
        aarrr_stage="retention",
        hypothesis="每周给商家推送经营诊断和改进建议,活跃商家占比从55%提升到65%。",
        target_metric="活跃商家占比",
        background="商家不知道自己的转化率比同类低多少,商家运营一个个打电话效率很低。",
        plan=("周报:流量、转化、客单价与同类对比", "给出三条可执行的建议", "商家可一键报名平台活动"),
        path="design",
        stuck=2.4,
        labels=("商家",),
        due_in_days=5,
    ),
    Script(
        title="提升客单价:满99减15 + 凑单推荐",
        ops="li.na",
        aarrr_stage="revenue",
        hypothesis="满减门槛略高于当前客单价并推荐凑单商品,平均客单价从78元提升到95元。",
        target_metric="平均客单价",
        background="平均客单价78元,大量订单停在60~80元之间。",
        plan=("购物车显示还差多少可减", "凑单推荐低价高频商品"),
        path=f"{LOOP} iterate {LOOP} iterate {LOOP} close",
        analyses=(
            ("flat", "客单价80元,凑单推荐点击率低。", "凑单推荐改成价格区间筛选"),
            ("improved", "客单价88元。", "门槛从99调到109做对比"),
            ("improved", "客单价96元,毛利率持平,门槛定为99。", ""),
        ),
        outcome="done",
        closed_days_ago=12,
        labels=("客单价", "A/B测试"),
        budget=50000,
        tracking=(
            (
                "cart_threshold_tip_show",
                "购物车展示“还差X元可减”提示时",
                ("user_id", "cart_amount", "gap_amount"),
            ),
            ("add_on_item_click", "用户点击凑单推荐商品时", ("user_id", "sku_id", "price_band")),
            ("order_submit", "用户提交订单时", ("order_id", "order_amount", "discount_amount", "threshold")),
        ),
    ),
    Script(
        title="DAU 提升:每日个性化内容推送",
        ops="chen.jie",
        aarrr_stage="activation",
        hypothesis="按兴趣推送个性化内容,DAU/MAU 从15%提升到25%。",
        target_metric="DAU/MAU",
        background="每日推送所有人同一条内容,打开率1.2%。",
        plan=("按最近7天浏览品类选内容", "每人每天最多一条"),
        path=f"{LOOP} iterate {LOOP} iterate design build instrument analyze",
        analyses=(
            ("improved", "推送打开率3.4%,DAU/MAU 18%。", "加入周末主题活动推送"),
            ("improved", "DAU/MAU 21%,周末主题活动效果好。", "每月更新一次核心玩法"),
        ),
        stuck=0.6,
        labels=("推送", "内容"),
        work_type="innovation",
        due_in_days=120,
        tracking=(
            ("content_push_send", "个性化内容推送发出时", ("user_id", "content_id", "category")),
            ("content_push_open", "用户点击推送打开 App 时", ("user_id", "content_id", "push_id")),
            ("app_launch", "App 启动时", ("user_id", "source", "is_weekend")),
        ),
    ),
    Script(
        title="新人专享价商品池",
        ops="li.na",
        aarrr_stage="activation",
        hypothesis="新人专享价商品池让新用户首单更容易,首单转化率提升2pt。",
        target_metric="首单转化率",
        background="新用户首页看到的都是常规价商品,缺少下单理由。",
        plan=("20个高频低价商品做新人价", "仅限首单使用"),
        path=f"{LOOP} close",
        analyses=(("improved", "首单转化率+2.6pt,新人价商品占首单的40%。", ""),),
        outcome="done",
        closed_days_ago=150,
        labels=("新客",),
        budget=30000,
        tracking=(
            ("newcomer_price_view", "新用户浏览新人专享价商品时", ("user_id", "sku_id", "price")),
            ("first_order_submit", "新用户提交首笔订单时", ("user_id", "order_id", "has_newcomer_sku")),
        ),
    ),
    Script(
        title="评价晒单返积分",
        ops="chen.jie",
        aarrr_stage="referral",
        hypothesis="带图评价返50积分,带图评价率从4%提升到10%,商品详情页转化率提升。",
        target_metric="带图评价率",
        background="商品详情页缺少真实买家图,咨询量大。",
        plan=("带图评价返50积分", "优质评价置顶并额外奖励"),
        path="design build instrument analyze instrument analyze optimize close",
        analyses=(("improved", "带图评价率11.2%,详情页转化率+0.9pt。", ""),),
        outcome="done",
        closed_days_ago=48,
        labels=("积分", "内容"),
        tracking=(
            ("review_submit", "用户提交商品评价时", ("order_id", "sku_id", "image_count")),
            ("review_points_grant", "带图评价审核通过、发放50积分时", ("review_id", "user_id", "points")),
            ("review_pin", "优质评价被置顶时", ("review_id", "sku_id")),
        ),
    ),
    Script(
        title="App 启动页广告位优化",
        ops="david.lin",
        aarrr_stage="revenue",
        hypothesis="启动页展示个性化活动而非品牌广告,启动页点击率从0.5%提升到2%。",
        target_metric="启动页点击率",
        background="启动页一直投放品牌广告,点击率0.5%,且用户反馈启动慢。",
        plan=("按用户分层展示活动", "展示时长从5秒降到3秒"),
        path=f"{LOOP} iterate {LOOP} close",
        analyses=(
            ("flat", "点击率0.9%,提升有限。", "换成动态素材再试一轮"),
            ("worse", "点击率1.0%,应用商店差评“开屏广告多”增加。", ""),
        ),
        outcome="wont_do",
        closed_days_ago=25,
        close_note="用户反馈负面,启动页恢复为纯品牌展示。",
        labels=("广告",),
        tracking=(
            ("splash_show", "App 启动页展示时", ("user_id", "creative_id", "segment", "duration_ms")),
            ("splash_click", "用户点击启动页素材时", ("user_id", "creative_id", "segment")),
            ("splash_skip", "用户点击“跳过”时", ("user_id", "creative_id", "shown_ms")),
        ),
    ),
    Script(
        title="渠道归因:UTM 参数规范与渠道看板",
        ops="david.lin",
        aarrr_stage="acquisition",
        hypothesis="统一 UTM 参数后,渠道 ROI 可按天计算,低效渠道预算可在一周内调整。",
        target_metric="可归因新客占比",
        background="40%的新客来源无法归因,投放预算按感觉分配。",
        plan=("制定 UTM 命名规范", "渠道看板:新客、CAC、首单、7日 ROI"),
        path=f"{LOOP} close",
        analyses=(("improved", "可归因新客占比从60%到93%,两个渠道被停投。", ""),),
        outcome="done",
        closed_days_ago=118,
        labels=("投放", "数据"),
        tracking=(
            (
                "app_install_attributed",
                "新安装用户首次打开并匹配到渠道参数时",
                ("utm_source", "utm_medium", "utm_campaign"),
            ),
            ("register_success", "用户注册成功时", ("user_id", "utm_source", "utm_campaign")),
        ),
    ),
    Script(
        title="首页改版:核心功能入口前置",
        ops="li.na",
        aarrr_stage="activation",
        hypothesis="把搜索、分类和新人福利放在首屏,首页到商品详情的点击率提升15%。",
        target_metric="首页→详情页点击率",
        background="首页首屏被轮播图占满,核心入口需要下滑才能看到。",
        plan=("首屏:搜索、八大分类、新人福利", "轮播图高度减半"),
        path="design build",
        stuck=0.4,
        labels=("首页",),
        due_in_days=25,
        people="前端2人、设计1人",
    ),
    Script(
        title="流失预警:7日未登录触发关怀",
        ops="li.na",
        aarrr_stage="retention",
        hypothesis="在注册后7天、付费后30天等关键节点识别流失风险并关怀,30日流失率下降3pt。",
        target_metric="30日流失率",
        background="流失率已连续3个月上升,流失前没有任何干预。",
        plan=("定义流失风险分", "高风险用户推送专属福利"),
        path="",
        stuck=0.5,
        labels=("留存", "召回"),
        due_in_days=60,
    ),
    Script(
        title="会员付费月卡试点",
        ops="li.na",
        aarrr_stage="revenue",
        hypothesis="9.9元月卡(每月4张免运费券+会员价),开卡用户月消费频次提升30%。",
        target_metric="开卡用户月消费频次",
        background="运费是下单放弃的第二大原因,竞品月卡渗透率已超过10%。",
        plan=("月卡权益:免运费券、会员价", "首月1元试用"),
        path="design",
        stuck=0.5,
        labels=("会员", "付费"),
        work_type="innovation",
        due_in_days=45,
        budget=30000,
    ),
    Script(
        title="团长分销体系:社区团长佣金",
        ops="chen.jie",
        aarrr_stage="referral",
        hypothesis="社区团长按订单拿佣金,团长带来的订单占比达到15%。",
        target_metric="团长带来的订单占比",
        background="社群里已有一批热心用户自发帮邻居下单。",
        plan=("团长申请与审核", "团长专属商品链接和佣金结算"),
        path=f"design propose design build instrument analyze optimize iterate {LOOP} close",
        analyses=(
            ("improved", "团长订单占比9%,结算延迟引起团长不满。", "佣金改为T+1结算"),
            ("improved", "团长订单占比16%,团长留存率90%。", ""),
        ),
        outcome="done",
        closed_days_ago=15,
        labels=("社群", "分销"),
        work_type="innovation",
        budget=40000,
        tracking=(
            ("leader_apply_submit", "用户提交团长申请时", ("user_id", "community_id")),
            ("leader_link_order", "通过团长专属链接下单时", ("order_id", "leader_id", "order_amount")),
            ("leader_commission_settle", "团长佣金结算到账时", ("leader_id", "amount", "settle_days")),
        ),
        checks=("yyn", "yyy"),
    ),
    Script(
        title="内容运营:每天话题栏目",
        ops="chen.jie",
        aarrr_stage="activation",
        hypothesis="每天一个有奖话题(最美跑者、最快夜跑)刺激用户晒运动记录,话题参与率达到5%。",
        target_metric="话题参与率",
        background="运动圈几乎没有人发内容,用户宁愿截图发微信朋友圈。",
        plan=("每天一个话题,评选前几名发奖", "话题入口放在社区首页"),
        path=f"{LOOP} iterate {LOOP} iterate {LOOP} close",
        analyses=(
            ("flat", "参与率0.8%;话题阅读量也很低。", "话题入口加到运动结束页"),
            (
                "flat",
                "参与人数/阅读人数高达30%,问题是知道活动的人太少。",
                "运动结束弹出轨迹时询问是否参加当天话题",
            ),
            ("improved", "参与率6.2%,社区日均发帖量提升5倍。", ""),
        ),
        outcome="done",
        closed_days_ago=3,
        labels=("内容", "社区"),
        budget=5000,
        tracking=(
            ("topic_entry_click", "用户点击社区首页或运动结束页的话题入口时", ("topic_id", "entry")),
            ("topic_post_publish", "用户发布带话题的运动记录时", ("topic_id", "user_id", "sport_type")),
            ("topic_prompt_show", "运动结束、弹出“参加今日话题”提示时", ("topic_id", "user_id")),
        ),
        checks=("nny", "nyy", "yyy"),
    ),
    Script(
        title="高校渠道试点:校园大使计划",
        ops="david.lin",
        aarrr_stage="acquisition",
        hypothesis="在10所高校招募校园大使,单个新客获取成本低于30元。",
        target_metric="高校渠道 CAC",
        background="运动用品和高校人群重合度高,线上投放获客成本已超过80元。",
        plan=("每校2名大使,按有效新客结算", "校园专属邀请码"),
        path=f"{LOOP} iterate {LOOP}",
        analyses=(
            ("improved", "CAC 42元,有效新客集中在3所学校。", "集中资源做3所学校,加开学季活动"),
            ("improved", "CAC 28元,但寒假期间新客几乎为零。", "决定是否扩到更多学校"),
        ),
        stuck=2.5,
        labels=("投放", "校园"),
        due_in_days=25,
        budget=30000,
        tracking=(
            (
                "campus_invite_code_use",
                "新用户注册时填写校园邀请码时",
                ("user_id", "school_id", "ambassador_id"),
            ),
            ("campus_first_order", "校园渠道新客完成首单时", ("user_id", "school_id", "order_id")),
        ),
    ),
    Script(
        title="Landing page speed: first paint under 1.5 s",
        ops="david.lin",
        aarrr_stage="acquisition",
        hypothesis="Cutting first paint from 3.8 s to under 1.5 s on 4G lowers landing-page bounce from 72% to 60%.",
        target_metric="Landing page bounce rate",
        background="Ad landing pages load 3.8 s on 4G; half of the bounces happen before first paint.",
        plan=(
            "Server-side render the first screen",
            "Compress and lazy-load images",
            "Drop two third-party scripts",
        ),
        path=f"{LOOP} close",
        analyses=(("improved", "First paint 1.3 s, bounce 61%, CAC −9%.", ""),),
        outcome="done",
        closed_days_ago=55,
        labels=("投放", "性能"),
        tracking=(
            (
                "landing_first_paint",
                "When the landing page's first screen has painted",
                ("page_id", "first_paint_ms", "network"),
            ),
            (
                "landing_bounce",
                "When a visitor leaves without any interaction",
                ("page_id", "seconds_on_page", "channel"),
            ),
        ),
    ),
    Script(
        title="NPS 调研:订单完成后问卷",
        ops="li.na",
        aarrr_stage="retention",
        hypothesis="订单完成后3天内推送一题 NPS 问卷,每月收集有效回答3,000份,找出主要不满原因。",
        target_metric="NPS 有效回答数",
        background="用户满意度只靠应用商店评分判断,无法定位问题。",
        plan=("一题 NPS + 一题开放原因", "每月汇总原因分布"),
        path=f"{LOOP} close",
        analyses=(("improved", "月回答4,200份,NPS 32;主要不满:配送慢、客服慢。", ""),),
        outcome="done",
        closed_days_ago=165,
        labels=("调研",),
        tracking=(
            ("nps_survey_push", "订单完成后第3天推送 NPS 问卷时", ("order_id", "user_id")),
            ("nps_answer_submit", "用户提交问卷时", ("user_id", "score", "reason_tag")),
        ),
    ),
    Script(
        title="客服机器人自动回复常见问题",
        ops="david.lin",
        aarrr_stage="retention",
        hypothesis="机器人回答退款、物流等高频问题,人工进线量下降30%,满意度不低于85%。",
        target_metric="人工进线量",
        background="70%的咨询是退款进度和物流查询。",
        plan=("覆盖前20个高频问题", "三轮答不上转人工"),
        path=f"{LOOP} close",
        analyses=(("flat", "人工进线量−6%,满意度降到79%,用户倾向直接转人工。", ""),),
        outcome="wont_do",
        closed_days_ago=64,
        close_note="满意度低于85%的底线,改为在订单页直接展示进度。",
        labels=("客服",),
        tracking=(
            ("cs_bot_question", "用户向客服机器人提问时", ("session_id", "question_id", "matched")),
            ("cs_transfer_human", "三轮未解决、转人工时", ("session_id", "rounds")),
            ("cs_session_rate", "会话结束、用户评价满意度时", ("session_id", "score", "handled_by")),
        ),
        checks=("nyn",),
    ),
    Script(
        title="优惠券叠加规则调整",
        ops="li.na",
        aarrr_stage="revenue",
        hypothesis="店铺券与平台券允许叠加,客单价提升5%,补贴率不超过8%。",
        target_metric="补贴率",
        background="商家反馈平台券不能叠加店铺券,大促期间用户下单犹豫。",
        plan=("店铺券+平台券可叠加,封顶30元",),
        path="",
        stuck=3.0,
        labels=("券", "商家"),
        due_in_days=3,
    ),
    Script(
        title="Referral share card redesign",
        ops="chen.jie",
        aarrr_stage="referral",
        hypothesis="A share card that shows how much the friend saves gets shared twice as often.",
        target_metric="Share card shares per 100 buyers",
        background="The share card shows the product only; users say it looks like an ad.",
        plan=("Show the saving in large type", "Personal note from the sharer", "Mini-program preview"),
        path=f"{LOOP} iterate design build instrument",
        analyses=(
            ("improved", "Shares per 100 buyers from 3.1 to 5.4.", "Try three card styles as an A/B/C test"),
        ),
        stuck=0.4,
        labels=("裂变", "A/B测试"),
        due_in_days=50,
        tracking=(
            (
                "share_card_show",
                "When the share card is shown after payment",
                ("order_id", "card_style", "saving_amount"),
            ),
            (
                "share_card_send",
                "When the buyer sends the card to a chat",
                ("order_id", "card_style", "target"),
            ),
            (
                "share_card_open",
                "When a friend opens the card's mini-program preview",
                ("card_id", "viewer_is_new"),
            ),
        ),
    ),
    Script(
        title="直播带货试点",
        ops="david.lin",
        aarrr_stage="revenue",
        hypothesis="每周两场商家直播,直播间转化率达到5%。",
        target_metric="直播间下单转化率",
        background="竞品直播带货占 GMV 的8%。",
        plan=("先选5个头部商家试播",),
        path="!close",
        outcome="wont_do",
        closed_days_ago=90,
        close_note="本季度资源集中在留存,直播暂缓,下季度再评估。",
        work_type="innovation",
        labels=("直播",),
    ),
)

FORWARD_NOTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("propose", "design"): ("需求评审通过", "已和产品对齐目标人群", "Reviewed in the weekly ops meeting"),
    ("design", "build"): ("PRD 和打点方案已评审", "Spec and tracking plan signed off", "交互稿已确认"),
    ("build", "instrument"): ("已上线,灰度10%", "Shipped behind a feature flag", "测试通过,已全量发布"),
    ("instrument", "analyze"): ("埋点全部校验通过", "All tracking events verified", "数据看板已配置"),
    ("analyze", "optimize"): ("分析报告已发到群里", "Analysis shared in the team channel"),
}
REWORK_NOTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("design", "propose"): ("目标人群和预算没写清楚,请补充后再评审", "需求信息不全:缺少对照组设计"),
    ("build", "design"): (
        "接口方案与风控规则冲突,需产品重新设计",
        "Spec misses refunded orders; back to design",
    ),
    ("instrument", "build"): (
        "埋点校验未通过:order_submit 缺少 coupon_id",
        "Tracking check failed: duplicate events",
    ),
    ("analyze", "instrument"): (
        "数据异常:安卓端埋点重复上报,需重新校验",
        "Data is broken: mini-program events missing",
    ),
}
DONE_NOTES = ("目标达成,转为常规运营", "Target met; handed over to daily operations")
# The three checks of a conclusion (core metric moved, user behaviour moved, feedback positive) that a
# verdict implies unless the script says otherwise: a loop improved only if its core metric moved.
CHECKS_BY_VERDICT = {"improved": "yyy", "flat": "nny", "worse": "nyn"}
# How far an open requirement sitting in instrument has got with its tracking plan, event by event: a
# long wait shows a plan half done, a recent arrival one barely started.
UNFINISHED_PLAN = {"long": ("verified", "implemented"), "recent": ("implemented",)}
TRACKING_ORDER = ("planned", "implemented", "verified")


@dataclass(frozen=True)
class Step:
    """One planned transition: the stage it leaves, where it goes, who makes it (lead or the stage's
    owner), when, and with what note."""

    from_stage: str
    target: str
    by_lead: bool
    at: dt.datetime
    note: str


@dataclass(frozen=True)
class Plan:
    engineer: str
    start: dt.datetime
    steps: list[Step]
    final_stage: str  # where the requirement is at the end (for a closed one, the stage it closed from)
    closed: bool


def seed_demo(
    *,
    now: dt.datetime | None = None,
    stdout: Writer | None = None,
    password: str = "demo",  # noqa: S107 (a demo login, documented in the command's help)
) -> Team:
    """Build the demo team with history up to `now` (default: the present). When the team exists, leave it
    as it is and only reset the demo login's password."""
    now = now or timezone.now()
    existing = Team.objects.filter(key_prefix=KEY_PREFIX).first()
    if existing is not None:
        demo = get_user_model().objects.filter(username=DEMO_USERNAME).first()
        if demo is not None:
            demo.set_password(password)
            demo.save(update_fields=["password"])
        _write(
            stdout, f"Team {KEY_PREFIX} exists already; left as it is, password of “{DEMO_USERNAME}” reset."
        )
        _write(stdout, summary(existing))
        return existing

    tz = zoneinfo.ZoneInfo(TIME_ZONE)
    rng = random.Random(42)
    # Plan every script first so the random draws happen in one fixed order.
    plans = [(script, _plan(script, index, rng, now, tz)) for index, script in enumerate(SCRIPTS)]
    with transaction.atomic():
        people = _people(password)
        team = services.team_setup(
            name=TEAM_NAME, key_prefix=KEY_PREFIX, creator=people[DEMO_USERNAME], time_zone=TIME_ZONE
        )
        for person in PEOPLE:
            if person.username != DEMO_USERNAME:
                role_services.membership_add(
                    team=team, user=people[person.username], roles=person.roles, actor=None
                )
        for script, plan in plans:
            _play(team=team, script=script, plan=plan, people=people, now=now, tz=tz)
        # Apps above this one add their side of the demo (the data loop's metrics, watches and goals)
        # without this app importing them.
        for hook in settings.OPSTEAM_DEMO_HOOKS:
            import_string(hook)(team=team, people=people, now=now, tz=tz)
    _write(stdout, summary(team))
    _write(stdout, f"Log in as “{DEMO_USERNAME}” (lead of {KEY_PREFIX}, site staff).")
    return team


def summary(team: Team) -> str:
    requirements = Requirement.objects.filter(team=team)
    open_per_stage = Counter(
        requirements.filter(closed_at__isnull=True).values_list("stage__slug", flat=True)
    )
    closed = requirements.filter(closed_at__isnull=False).count()
    loops = IterationLoop.objects.filter(requirement__team=team).count()
    events = StageEvent.objects.filter(requirement__team=team).count()
    stages = ", ".join(f"{slug} {open_per_stage.get(slug, 0)}" for slug in STAGE_ORDER)
    return (
        f"{team}: {requirements.count()} requirements ({sum(open_per_stage.values())} open, {closed} closed), "
        f"{loops} loops, {events} events.\n"
        f"Open per stage: {stages}."
    )


def _write(stdout: Writer | None, text: str) -> None:
    if stdout is not None:
        stdout.write(text + "\n")


def _people(password: str) -> dict[str, AbstractBaseUser]:
    User = get_user_model()
    people: dict[str, AbstractBaseUser] = {}
    for person in PEOPLE:
        user = User.objects.filter(username=person.username).first()
        if user is None:
            user = User.objects.create_user(
                username=person.username,
                email=f"{person.username}@growth.example.com",
                password=password,
                first_name=person.first_name,
                last_name=person.last_name,
            )
        if person.username == DEMO_USERNAME:
            user.set_password(password)
            user.is_staff = True
            user.save(update_fields=["password", "is_staff"])
        people[person.username] = user
    return people


def _plan(script: Script, index: int, rng: random.Random, now: dt.datetime, tz: dt.tzinfo) -> Plan:
    """When and by whom each move of a script is made; no database."""
    engineer = ENGINEERS[index % len(ENGINEERS)]
    moves: list[tuple[str, str, bool, float | None]] = []  # (from, target, by lead, SLA factor)
    stage = "propose"
    for token in script.path.split():
        by_lead = token.startswith("!")
        target, _sep, factor = token.lstrip("!").partition("~")
        moves.append((stage, target, by_lead, float(factor) if factor else None))
        stage = {"iterate": "propose", "close": stage}.get(target, target)
    if sum(1 for m in moves if m[:2] == ("analyze", "optimize")) != len(script.analyses):
        raise ValueError(f"{script.title}: one analysis is needed for each analyze → optimize move.")
    if script.checks and len(script.checks) != len(script.analyses):
        raise ValueError(f"{script.title}: give the checks of every analysis or of none.")
    if any(target == "instrument" for _from, target, _lead, _factor in moves) and not (
        2 <= len(script.tracking) <= 4
    ):
        raise ValueError(f"{script.title}: a requirement that reaches instrument needs 2–4 tracking events.")

    hours = []
    for from_stage, _target, _by_lead, factor in moves:
        if factor is None:
            factor = rng.uniform(1.05, 1.8) if rng.random() < 0.12 else rng.uniform(0.25, 0.9)
            factor *= script.pace
        hours.append(SLA_HOURS[from_stage] * factor)
    closed = bool(moves) and moves[-1][1] == "close"
    end = now - (
        dt.timedelta(days=script.closed_days_ago)
        if closed
        else dt.timedelta(hours=SLA_HOURS[stage] * script.stuck)
    )
    span = dt.timedelta(hours=sum(hours))
    if end - span < now - HISTORY:
        hours = [h * (end - (now - HISTORY)) / span for h in hours]

    times = [end]
    for h in reversed(hours):
        times.append(times[-1] - dt.timedelta(hours=h))
    times = [_office_hours(t, tz, now) for t in reversed(times)]

    analyses = iter(script.analyses)
    next_step = ""
    steps = []
    for (from_stage, target, by_lead, _factor), at in zip(moves, times[1:], strict=True):
        note = ""
        if (from_stage, target) in REWORK_NOTES:
            note = rng.choice(REWORK_NOTES[from_stage, target])
        elif (from_stage, target) in FORWARD_NOTES and rng.random() < 0.35:
            note = rng.choice(FORWARD_NOTES[from_stage, target])
        if (from_stage, target) == ("analyze", "optimize"):
            next_step = next(analyses)[2]
        if target == "iterate":
            note = next_step
        if target == "close":
            note = script.close_note or (rng.choice(DONE_NOTES) if script.outcome == "done" else "")
        steps.append(Step(from_stage=from_stage, target=target, by_lead=by_lead, at=at, note=note))
    return Plan(engineer=engineer, start=times[0], steps=steps, final_stage=stage, closed=closed)


def _office_hours(moment: dt.datetime, tz: dt.tzinfo, now: dt.datetime) -> dt.datetime:
    """Squeeze a moment into 09:30–20:00 of its day in the team's time zone, keeping the order of moments,
    so the history reads like a working team's; never later than `now`."""
    local = moment.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    day_fraction = (local - midnight) / dt.timedelta(days=1)
    squeezed = midnight + dt.timedelta(hours=9.5) + day_fraction * dt.timedelta(hours=10.5)
    return min(squeezed.replace(second=0, microsecond=0).astimezone(dt.UTC), now)


def _description(script: Script) -> str:
    english = script.title.isascii()
    headings = ("Background", "Plan", "Success criteria") if english else ("背景", "方案", "验收标准")
    plan = "\n".join(f"- {item}" for item in script.plan)
    criteria = f"- **{script.target_metric}**: {script.hypothesis}"
    return f"## {headings[0]}\n\n{script.background}\n\n## {headings[1]}\n\n{plan}\n\n## {headings[2]}\n\n{criteria}\n"


def _play(
    *,
    team: Team,
    script: Script,
    plan: Plan,
    people: dict[str, AbstractBaseUser],
    now: dt.datetime,
    tz: dt.tzinfo,
) -> None:
    ops = people[script.ops]
    pm = people["emily.zhou" if script.aarrr_stage in ("acquisition", "referral", "revenue") else "zhang.wei"]
    analyst = people["chen.jie" if script.ops == "chen.jie" else "wang.fang"]
    owner = {
        "propose": ops,
        "design": pm,
        "build": people[plan.engineer],
        "instrument": analyst,
        "analyze": analyst,
        "optimize": ops,
    }
    # Assigned from the start to whoever holds it at the end, so "my queue" shows the present.
    assignee = ops if plan.closed else owner[plan.final_stage]
    watchers = {ops, pm, analyst} - {assignee}
    if script.priority == "P0":
        watchers.add(people[DEMO_USERNAME])
    requirement = services.requirement_create(
        team=team,
        actor=ops,
        title=script.title,
        at=plan.start,
        description=_description(script),
        hypothesis=script.hypothesis,
        target_metric=script.target_metric,
        aarrr_stage=script.aarrr_stage,
        priority=script.priority,
        incident_kind=script.incident_kind,
        work_type=script.work_type,
        due_date=plan.start.astimezone(tz).date() + dt.timedelta(days=script.due_in_days),
        labels=list(script.labels),
        resources_people=script.people,
        resources_budget=script.budget,
        resources_other=script.other,
        assignee=assignee,
        watchers=sorted(w.pk for w in watchers),
    )
    engineer = people[plan.engineer]
    analyses = iter(zip(script.analyses, _checks(script), strict=True))
    loop_number = 1
    tracking: dict[int, str] = {}  # the current loop's tracking plan: event id → status
    entered = plan.start  # when the requirement entered the stage it is in
    for step in plan.steps:
        actor = people[DEMO_USERNAME] if step.by_lead else owner[step.from_stage]
        move = (step.from_stage, step.target)
        if move == ("design", "build"):
            services.requirement_update(
                requirement_id=requirement.pk,
                actor=pm,
                design=f"PRD v{loop_number}: https://wiki.growth.example.com/prd/{requirement.key.lower()}-v{loop_number}",
            )
        if move == ("instrument", "build"):
            # The check failed: everything was implemented, and the analyst sends the last event back.
            for event_id in tracking:
                _track(tracking, event_id, "implemented", engineer=engineer, analyst=analyst, at=step.at)
            _track(tracking, max(tracking), "planned", engineer=engineer, analyst=analyst, at=step.at)
        if move == ("instrument", "analyze"):
            implemented_at = entered + (step.at - entered) * 0.4
            verified_at = entered + (step.at - entered) * 0.85
            for event_id in tracking:
                _track(
                    tracking, event_id, "implemented", engineer=engineer, analyst=analyst, at=implemented_at
                )
                _track(tracking, event_id, "verified", engineer=engineer, analyst=analyst, at=verified_at)
        if move == ("analyze", "optimize"):
            (verdict, conclusion, _next_step), checks = next(analyses)
            loop = services.loop_record_analysis(
                requirement_id=requirement.pk,
                actor=analyst,
                conclusion=conclusion,
                verdict=verdict,
                core_metric_moved=checks[0] == "y",
                behaviour_moved=checks[1] == "y",
                feedback_positive=checks[2] == "y",
                metric_name=script.target_metric,
            )
            # The service stamps the wall clock; the demo's history is backdated.
            IterationLoop.objects.filter(pk=loop.pk).update(analyzed_at=step.at)
        services.requirement_transition(
            requirement_id=requirement.pk,
            actor=actor,
            from_stage=step.from_stage,
            to_stage=step.target,
            note=step.note,
            outcome=script.outcome if step.target == "close" else "",
            at=step.at,
        )
        if move == ("build", "instrument"):
            services.requirement_update(
                requirement_id=requirement.pk, actor=engineer, launch_date=step.at.astimezone(tz).date()
            )
            if not tracking:
                # The PM writes the first loop's plan, the analyst those of the loops after it.
                writer = pm if loop_number == 1 else analyst
                for name, trigger, properties in script.tracking:
                    event = services.tracking_event_add(
                        requirement_id=requirement.pk,
                        actor=writer,
                        name=name,
                        trigger=trigger,
                        properties=list(properties),
                        owner=engineer.pk,
                    )
                    TrackingEvent.objects.filter(pk=event.pk).update(created_at=step.at)
                    tracking[event.pk] = event.status
        if move == ("analyze", "instrument"):
            # The data looked wrong: the analyst sends the first event back to be fixed and checked again.
            _track(tracking, min(tracking), "implemented", engineer=engineer, analyst=analyst, at=step.at)
        if step.target == "iterate":
            loop_number += 1
            tracking = {}
        entered = step.at
    if plan.final_stage == "instrument" and not plan.closed:
        # Still being instrumented: the board shows a plan part done.
        progress = UNFINISHED_PLAN["long" if script.stuck >= 1 else "recent"]
        for index, (event_id, status) in enumerate(sorted(tracking.items())):
            wanted = progress[index] if index < len(progress) else "planned"
            if TRACKING_ORDER.index(wanted) > TRACKING_ORDER.index(status):
                at = entered + (now - entered) * (0.3 + 0.2 * index)
                _track(tracking, event_id, wanted, engineer=engineer, analyst=analyst, at=at)


def _checks(script: Script) -> tuple[str, ...]:
    return script.checks or tuple(CHECKS_BY_VERDICT[verdict] for verdict, _text, _next in script.analyses)


def _track(
    tracking: dict[int, str],
    event_id: int,
    status: str,
    *,
    engineer: AbstractBaseUser,
    analyst: AbstractBaseUser,
    at: dt.datetime,
) -> None:
    """Move a tracking event to `status` one step at a time, as the team would: the engineer marks it
    implemented, the analyst verifies it or sends it back."""
    while tracking[event_id] != status:
        current = TRACKING_ORDER.index(tracking[event_id])
        if TRACKING_ORDER.index(status) > current:
            target = TRACKING_ORDER[current + 1]
            actor = engineer if target == "implemented" else analyst
        else:
            target, actor = status, analyst
        services.tracking_event_set_status(event_id=event_id, actor=actor, status=target)
        tracking[event_id] = target
    # The service stamps the wall clock; the demo's history is backdated.
    TrackingEvent.objects.filter(pk=event_id).update(status_changed_at=at.replace(second=0, microsecond=0))
