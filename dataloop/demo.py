"""The data side of the demo team, added by `manage.py seed_demo` through settings.OPSTEAM_DEMO_HOOKS once
workflows.demo has played the requirements out: the metric catalogue with six months of daily observations
shaped by what the requirements shipped, the three preset watches (two of which fire), and goals broken
into strategies carried by the demo requirements.

Every figure is drawn from one seeded random generator in a fixed order and every date is counted back
from `now`, so the same `now` gives the same data. The steps in a requirement's target metric follow its
conclusions (a loop judged improved moves the metric by about what its conclusion says), so the before and
after values on the conclusions read like the analyst's text."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils.translation import gettext as _

from roles.models import Team
from workflows.models import IterationLoop, Requirement, StageEvent

from . import rules, services
from .models import Metric, Observation, Source
from .presets import DEFAULT_METRICS, WATCH_PRESETS

DAYS = 180  # of daily observations, up to yesterday
RAMP_DAYS = 3  # a shipped change reaches its full effect over a few days
SURGE_DAYS = 6  # the support surge after the last promotion: complaints above 5% for the last three days
ANALYST = "wang.fang"
LEAD = "demo"
DEFAULT_KEYS = frozenset(name for name, _unit, _direction, _description in DEFAULT_METRICS)


@dataclass(frozen=True)
class Series:
    """How a metric behaves: its level at the start of the 180 days, its drift over them, its day-to-day
    noise (relative standard deviation), its weekend lift (relative) and the decimal places it is read
    to. `kind` says how it is produced: daily, derived from other series, weekly, monthly, or not at
    all (the feature it measures does not exist yet)."""

    unit: str
    direction: str
    level: float = 0.0
    drift: float = 0.0
    noise: float = 0.02
    weekend: float = 0.0
    places: int = 2
    kind: str = "daily"
    description: str = ""


# The catalogue: the default metrics (keyed by their untranslated names) and every demo requirement's
# target metric. A target metric that means a default metric is in ALIASES and gets the same values.
SERIES: dict[str, Series] = {
    "MAU": Series("users", "up", level=38_000, drift=6_500, noise=0.004, places=0),
    "DAU/MAU": Series("%", "up", level=15.0, drift=0.4, noise=0.025, weekend=0.07),
    "DAU": Series("users", "up", places=0, kind="derived"),
    "D1 retention": Series("%", "up", level=19.6, drift=0.3, noise=0.03),
    "D7 retention": Series("%", "up", noise=0.03, kind="derived"),
    "D30 retention": Series("%", "up", level=5.8, drift=0.4, noise=0.04),
    "Conversion rate": Series("%", "up", level=2.9, drift=0.5, noise=0.04, weekend=0.05),
    "ARPU": Series("¥", "up", level=9.4, drift=1.3, noise=0.015),
    "LTV": Series("¥", "up", level=162, drift=21, noise=0.005, places=1),
    "Complaint rate": Series("%", "down", level=4.2, noise=0.035, weekend=0.04),
    "NPS": Series("", "up", level=29, drift=5, places=0, kind="weekly"),
    "Churn rate": Series("%", "down", places=1, kind="monthly"),
    "日订单量": Series(
        "单",
        "up",
        level=118,
        drift=12,
        noise=0.03,
        weekend=0.06,
        places=0,
        description="每天支付成功的订单数。",
    ),
    "注册→首单转化率": Series(
        "%", "up", level=8.0, noise=0.03, description="注册后7天内完成首单的新用户占比。"
    ),
    "落地页注册转化率 / 获客成本 CAC": Series(
        "%", "up", level=3.0, noise=0.05, description="信息流广告落地页访客中完成注册的占比。"
    ),
    "转介绍率(新客中被邀请注册的占比)": Series("%", "up", level=2.0, noise=0.05),
    "30日复购率": Series("%", "up", level=18.0, noise=0.02, description="首单后30天内再次下单的用户占比。"),
    "商家入驻完成率": Series("%", "up", level=35.0, noise=0.05),
    "违规内容平均存活时长": Series("小时", "down", level=71, noise=0.08, places=1),
    "首单红包发放成功率": Series("%", "up", level=99.9, noise=0.0003),
    "客服平均排队时长": Series("分钟", "down", level=2.4, noise=0.08, places=1),
    "Coupon redemption rate": Series(
        "%", "up", level=12.0, noise=0.04, description="Coupons used before they expire."
    ),
    "周活跃2次以上用户占比": Series("%", "up", level=30.0, noise=0.02),
    "90日流失率": Series("%", "down", level=23.5, drift=1.5, noise=0.015),
    "大促首日 GMV": Series("¥", "up", level=11_500, drift=1_500, noise=0.06, weekend=0.12, places=0),
    "沉睡用户召回率": Series("%", "up", level=2.8, noise=0.06),
    "注册完成率": Series("%", "up", level=62.0, noise=0.02),
    "K 因子": Series("", "up", level=0.15, noise=0.05, places=3),
    "社群月均发言量": Series("条", "up", level=1_200, noise=0.02, places=0),
    "搜索后下单率": Series("%", "up", level=6.5, noise=0.04),
    "Merchants listing a product within 7 days": Series("%", "up", level=38.0, noise=0.04, places=1),
    "活跃商家占比": Series("%", "up", level=55.0, noise=0.02, places=1),
    "平均客单价": Series("¥", "up", level=78.0, noise=0.03),
    "首单转化率": Series("%", "up", level=5.0, noise=0.04, description="访客中完成首单的占比。"),
    "带图评价率": Series("%", "up", level=4.0, noise=0.05),
    "启动页点击率": Series("%", "up", level=0.5, noise=0.08),
    "可归因新客占比": Series("%", "up", level=60.0, noise=0.02, places=1),
    "首页→详情页点击率": Series("%", "up", level=22.0, noise=0.03),
    "30日流失率": Series("%", "down", level=27.5, drift=3.2, noise=0.015),
    "开卡用户月消费频次": Series("次", "up", kind="none"),
    "团长带来的订单占比": Series("%", "up", noise=0.04),
    "话题参与率": Series("%", "up", level=0.3, noise=0.08),
    "高校渠道 CAC": Series("¥", "down", level=80.0, noise=0.05, places=1),
    "Landing page bounce rate": Series("%", "down", level=72.0, noise=0.02, places=1),
    "NPS 有效回答数": Series("份", "up", level=20, noise=0.1, places=0),
    "人工进线量": Series("次", "down", level=1_800, noise=0.05, weekend=0.15, places=0),
    "补贴率": Series("%", "down", level=7.2, noise=0.03),
    "Share card shares per 100 buyers": Series("", "up", level=3.1, noise=0.05),
    "直播间下单转化率": Series("%", "up", kind="none"),
}
ALIASES: dict[str, str] = {"D1 留存率": "D1 retention", "投诉率": "Complaint rate"}

# How much each launched loop of a requirement moved its target metric, loop by loop (the loops that
# reached instrument); the figures follow the conclusions in workflows.demo.
LOOP_EFFECTS: dict[str, tuple[float, ...]] = {
    "新用户首单红包:注册后24小时内下单立减10元": (0.1, 2.1, 2.2),
    "次日留存:新手任务与福利礼包": (5.2, 2.4),
    "渠道投放:信息流广告落地页 A/B 测试": (1.7,),
    "社群裂变:老带新拼团,邀请3人成团享5折": (0.3, 1.6, 1.2, 1.2),
    "会员复购:按 RFM 分层推送专属优惠券": (2.4,),
    "降低配送投诉率:超时自动补偿优惠券": (-1.6,),
    "内容审核:社区违规内容24小时内下架": (-65.0,),
    "P0:支付回调失败导致首单红包未发放": (0.05,),
    "P0:在线客服排队超过10分钟": (-4.0,),
    "Push reminder before coupons expire": (0.8, 4.8),
    "打卡挑战:连续7天打卡得优惠券": (-0.3,),
    "618大促预热:短信 + App 弹窗分层触达": (600.0,),
    "沉睡用户召回短信": (0.3, 5.5),
    "注册流程简化:手机号一键登录": (19.5,),
    "邀请返利:邀请人和被邀请人各得5元": (0.12,),
    "KOL 达人社群:旅行达人、美食达人带动内容": (1_400.0,),
    "搜索结果页增加“猜你喜欢”": (-0.6,),
    "Onboarding checklist for new merchants": (3.5,),
    "提升客单价:满99减15 + 凑单推荐": (2.0, 8.0, 8.0),
    "DAU 提升:每日个性化内容推送": (3.0, 3.0, 1.5),
    "新人专享价商品池": (2.6,),
    "评价晒单返积分": (7.2,),
    "App 启动页广告位优化": (0.4, 0.1),
    "渠道归因:UTM 参数规范与渠道看板": (33.0,),
    "团长分销体系:社区团长佣金": (9.0, 7.0),
    "内容运营:每天话题栏目": (0.5, 0.3, 5.1),
    "高校渠道试点:校园大使计划": (-38.0, -14.0),
    "Landing page speed: first paint under 1.5 s": (-11.0,),
    "NPS 调研:订单完成后问卷": (120.0,),
    "客服机器人自动回复常见问题": (-110.0,),
    "Referral share card redesign": (2.3, 0.4),
}
SUPPORT_INCIDENT = "P0:在线客服排队超过10分钟"
PAYMENT_INCIDENT = "P0:支付回调失败导致首单红包未发放"
PROMOTION = "618大促预热:短信 + App 弹窗分层触达"
NPS_SURVEY = "NPS 调研:订单完成后问卷"
# The complaint rate over the last SURGE_DAYS days, and the monthly churn rate over the last six whole
# months: rising for the last three.
COMPLAINT_SURGE = (3.6, 4.3, 4.9, 5.4, 5.8, 6.2)
CHURN = (7.9, 7.7, 8.2, 8.8, 9.5, 10.3)
WATCH_ASSIGNEES = {"complaints": "david.lin"}
# Orders a day that each improved loop of a requirement carrying the order goal adds.
ORDER_LIFT = 3.0

GOALS: tuple[dict[str, Any], ...] = (
    {
        "by": LEAD,
        "title": "日订单达到200单",
        "metric": "日订单量",
        "target": "200",
        "days": (-90, 90),
        "description": "核心指标是日订单量;一级指标:流量(DAU)、首单转化率、复购率、转介绍率、平均客单价。"
        "按当前增速,需要四条策略同时推进才能在期末达到每天200单。",
        "first_level": ("DAU", "首单转化率", "30日复购率", "转介绍率(新客中被邀请注册的占比)", "平均客单价"),
        "strategies": (
            (
                "拉新裂变",
                "老带新拼团、双向邀请返利和社区团长,让老用户带来新用户。",
                "转介绍率(新客中被邀请注册的占比)",
                (
                    "社群裂变:老带新拼团,邀请3人成团享5折",
                    "邀请返利:邀请人和被邀请人各得5元",
                    "团长分销体系:社区团长佣金",
                    "Referral share card redesign",
                ),
            ),
            (
                "首单转化",
                "降低新用户第一单的门槛:红包、新人价、更短的路径。",
                "首单转化率",
                (
                    "新用户首单红包:注册后24小时内下单立减10元",
                    "新人专享价商品池",
                    "首页改版:核心功能入口前置",
                ),
            ),
            (
                "复购召回",
                "分层运营老用户,在流失前把他们叫回来。",
                "30日复购率",
                (
                    "会员复购:按 RFM 分层推送专属优惠券",
                    "Push reminder before coupons expire",
                    "沉睡用户召回短信",
                    "流失预警:7日未登录触发关怀",
                    "watch:churn-rising",
                ),
            ),
            (
                "客单价提升",
                "满减门槛、凑单推荐和会员权益,让每一单多买一点。",
                "平均客单价",
                ("提升客单价:满99减15 + 凑单推荐", "优惠券叠加规则调整", "会员付费月卡试点"),
            ),
        ),
    },
    {
        "by": "li.na",
        "title": "新用户次日留存达到30%",
        "metric": "D1 留存率",
        "target": "30",
        "days": (-60, 30),
        "description": "新用户首日养成习惯:任务引导和每天值得打开的内容。",
        "first_level": ("D7 retention", "DAU/MAU"),
        "strategies": (
            (
                "新手引导",
                "首日带新用户完成收藏、关注、下单三个核心动作。",
                "D1 留存率",
                ("次日留存:新手任务与福利礼包", "打卡挑战:连续7天打卡得优惠券"),
            ),
            (
                "内容与社区",
                "每天都有值得打开的内容和可以参与的话题。",
                "DAU/MAU",
                (
                    "DAU 提升:每日个性化内容推送",
                    "内容运营:每天话题栏目",
                    "KOL 达人社群:旅行达人、美食达人带动内容",
                ),
            ),
        ),
    },
)


@dataclass(frozen=True)
class Launch:
    """A loop that shipped: its id, its launch date and the verdict of its analysis (if any yet)."""

    requirement_id: int
    loop_id: int
    date: dt.date
    verdict: str


@dataclass(frozen=True)
class Effect:
    """A change to a series from `start` (ramped in over RAMP_DAYS when `ramp`) until `end` (excluded;
    None: for good)."""

    start: dt.date
    delta: float
    end: dt.date | None = None
    ramp: bool = True

    def at(self, day: dt.date) -> float:
        if day < self.start or (self.end is not None and day >= self.end):
            return 0.0
        if not self.ramp:
            return self.delta
        return self.delta * min(1.0, ((day - self.start).days + 1) / RAMP_DAYS)


def seed(*, team: Team, people: Mapping[str, AbstractBaseUser], now: dt.datetime, tz: dt.tzinfo) -> None:
    """Add the data loop to the demo team (a demo hook: called inside seed_demo's transaction)."""
    today = now.astimezone(tz).date()
    days = [today - dt.timedelta(days=DAYS - offset) for offset in range(DAYS)]
    analyst = people[ANALYST]
    rng = random.Random(618)

    metrics = _catalogue(team=team, analyst=analyst)
    requirements = {r.title: r for r in Requirement.objects.filter(team=team)}
    launches = _launches(team=team, tz=tz)
    values = _values(days=days, rng=rng, requirements=requirements, launches=launches, tz=tz)
    rows = _observations(
        metrics=metrics, values=values, rng=rng, requirements=requirements, launches=launches
    )
    # Six months of a few dozen metrics are thousands of rows: one bulk insert instead of a service call
    # (and a watch evaluation) each. Demo data only; the observation below shows the service path.
    last = rows.pop()
    Observation.objects.bulk_create(rows, batch_size=1000)
    services.observation_record(
        actor=analyst,
        metric_id=last.metric_id,
        date=last.date,
        value=last.value,
        segment=last.segment,
        loop_id=last.loop_id,
    )
    _analyses_read(team=team, metrics=metrics, launches=launches)
    watch_requirements = _watches(team=team, people=people, metrics=metrics, now=now)
    _goals(team=team, people=people, metrics=metrics, today=today, watch_requirements=watch_requirements)


def _name(key: str) -> str:
    """A metric's name in the catalogue: defaults are named in the language the team was set up in."""
    return _(key) if key in DEFAULT_KEYS else key


def _key(name: str) -> str | None:
    """The series a metric name (a requirement's target metric) reads."""
    if name in ALIASES:
        return ALIASES[name]
    for key in SERIES:
        if _name(key) == name:
            return key
    return None


def _catalogue(*, team: Team, analyst: AbstractBaseUser) -> dict[str, Metric]:
    """The default metrics, every series above and every requirement's target metric, by name."""
    services.metrics_prefill(team=team)
    known = {metric.name.casefold(): metric for metric in Metric.objects.filter(team=team)}
    targets = (
        Requirement.objects.filter(team=team)
        .exclude(target_metric="")
        .values_list("target_metric", flat=True)
    )
    wanted = [_name(key) for key in SERIES] + sorted(set(targets))
    for name in wanted:
        if name.casefold() in known:
            continue
        key = _key(name)
        spec = SERIES[key] if key else Series("", "up")
        metric = services.metric_create(
            actor=analyst,
            team_id=team.pk,
            name=name,
            unit=spec.unit,
            direction=spec.direction,
            description=spec.description,
        )
        known[name.casefold()] = metric
    return {metric.name: metric for metric in known.values()}


def _launches(*, team: Team, tz: dt.tzinfo) -> dict[tuple[int, int], Launch]:
    """The loops that shipped, by (requirement id, loop number), oldest launch first. A loop's launch
    date is the day of its last build → instrument move: workflows.demo sets the requirement's launch
    date then."""
    launches: dict[tuple[int, int], Launch] = {}
    for requirement_id, number, loop_id, verdict, at in (
        StageEvent.objects.filter(requirement__team=team, from_stage="build", to_stage="instrument")
        .order_by("at", "id")
        .values_list("requirement_id", "loop__number", "loop_id", "loop__verdict", "at")
    ):
        launches.pop((requirement_id, number), None)
        launches[(requirement_id, number)] = Launch(
            requirement_id, loop_id, at.astimezone(tz).date(), verdict
        )
    return launches


def _effects(
    *,
    requirements: Mapping[str, Requirement],
    launches: Mapping[tuple[int, int], Launch],
    today: dt.date,
    tz: dt.tzinfo,
) -> dict[str, list[Effect]]:
    """Per series: the steps the requirements' launches made, and the incidents and promotions."""
    effects: dict[str, list[Effect]] = {}
    for title, deltas in LOOP_EFFECTS.items():
        requirement = requirements[title]
        dates = [launch.date for key, launch in sorted(launches.items()) if key[0] == requirement.pk]
        if len(dates) != len(deltas):
            raise ValueError(f"{title}: {len(dates)} launched loops but {len(deltas)} effects.")
        key = _key(requirement.target_metric)
        if key is None:
            raise ValueError(f"{title}: no series for “{requirement.target_metric}”.")
        effects.setdefault(key, []).extend(
            Effect(date, delta) for date, delta in zip(dates, deltas, strict=True)
        )

    # Orders grow with every loop that improved a requirement carrying the order goal.
    carrying = {
        requirements[title].pk
        for *_text, titles in GOALS[0]["strategies"]
        for title in titles
        if title in requirements
    }
    effects["日订单量"] = [
        Effect(launch.date, ORDER_LIFT)
        for launch in launches.values()
        if launch.requirement_id in carrying and launch.verdict == "improved"
    ]

    def launch_of(title: str) -> dt.date:
        return launches[(requirements[title].pk, 1)].date

    surge = today - dt.timedelta(days=SURGE_DAYS)
    effects["客服平均排队时长"].append(Effect(surge, 9.6, ramp=False))
    effects["人工进线量"].append(Effect(surge, 1_300, ramp=False))
    # Payment callbacks failed for two days before the incident was opened.
    opened = requirements[PAYMENT_INCIDENT].created_at.astimezone(tz).date()
    effects["首单红包发放成功率"].append(
        Effect(opened - dt.timedelta(days=2), -2.9, end=launch_of(PAYMENT_INCIDENT), ramp=False)
    )
    # The promotion's first three days.
    promotion = launch_of(PROMOTION)
    for key, delta in (("大促首日 GMV", 5_200.0), ("日订单量", 45.0)):
        effects[key].append(Effect(promotion, delta, end=promotion + dt.timedelta(days=3), ramp=False))
    return effects


def _values(
    *,
    days: list[dt.date],
    rng: random.Random,
    requirements: Mapping[str, Requirement],
    launches: Mapping[tuple[int, int], Launch],
    tz: dt.tzinfo,
) -> dict[str, list[tuple[dt.date, float]]]:
    """Every series as (day, value), oldest first; days without a value are left out."""
    today = days[-1] + dt.timedelta(days=1)
    effects = _effects(requirements=requirements, launches=launches, today=today, tz=tz)
    values: dict[str, list[tuple[dt.date, float]]] = {}
    for key, spec in SERIES.items():
        if spec.kind != "daily":
            continue
        series = []
        for index, day in enumerate(days):
            value = spec.level + spec.drift * index / (len(days) - 1)
            value += sum(effect.at(day) for effect in effects.get(key, []))
            if day.weekday() >= 5:
                value *= 1 + spec.weekend
            value *= 1 + rng.gauss(0, spec.noise)
            series.append((day, max(value, 0.0)))
        values[key] = series

    # The support surge: complaints climb past 5% and stay there (the complaint watch fires on it).
    surge = dict(zip(days[-len(COMPLAINT_SURGE) :], COMPLAINT_SURGE, strict=True))
    values["Complaint rate"] = [
        (day, surge[day] * (1 + rng.gauss(0, 0.01)) if day in surge else value)
        for day, value in values["Complaint rate"]
    ]
    # DAU follows from MAU and stickiness; D7 retention tracks D1 (the D7 watch's 25% is far above it).
    values["DAU"] = [
        (day, mau * ratio / 100)
        for (day, mau), (_day, ratio) in zip(values["MAU"], values["DAU/MAU"], strict=True)
    ]
    values["D7 retention"] = [
        (day, d1 * 0.48 * (1 + rng.gauss(0, 0.03))) for day, d1 in values["D1 retention"]
    ]
    # NPS is read weekly, from the first week of the NPS survey on.
    survey = launches[(requirements[NPS_SURVEY].pk, 1)].date
    mondays = [day for day in days if day.weekday() == 0 and day >= survey]
    nps = SERIES["NPS"]
    values["NPS"] = [
        (day, nps.level + nps.drift * index / max(len(mondays) - 1, 1) + rng.gauss(0, 1.5))
        for index, day in enumerate(mondays)
    ]
    # Churn is read monthly, dated the first of the month it measures: the last six whole months.
    month = today.replace(day=1)
    months: list[dt.date] = []
    for _month in CHURN:
        month = (month - dt.timedelta(days=1)).replace(day=1)
        months.insert(0, month)
    values["Churn rate"] = [(day, rate + rng.gauss(0, 0.05)) for day, rate in zip(months, CHURN, strict=True)]
    return values


def _decimal(value: float, places: int) -> Decimal:
    return Decimal(f"{value:.{places}f}")


def _observations(
    *,
    metrics: Mapping[str, Metric],
    values: Mapping[str, list[tuple[dt.date, float]]],
    rng: random.Random,
    requirements: Mapping[str, Requirement],
    launches: Mapping[tuple[int, int], Launch],
) -> list[Observation]:
    """The rows to store: each series on its metric (and its aliases), a few segments, and the week from
    each launch linked to the loop that launched, on the loop's target metric (a later launch wins)."""
    target_of = {requirement.pk: requirement.target_metric for requirement in requirements.values()}
    links: dict[tuple[int, dt.date], int] = {}
    for launch in launches.values():
        metric = metrics.get(target_of[launch.requirement_id])
        if metric is not None:
            for offset in range(rules.BEFORE_AFTER_DAYS):
                links[(metric.pk, launch.date + dt.timedelta(days=offset))] = launch.loop_id

    def row(metric: Metric, day: dt.date, value: Decimal, segment: str = "") -> Observation:
        return Observation(
            metric=metric,
            date=day,
            segment=segment,
            value=value,
            loop_id=links.get((metric.pk, day)) if not segment else None,
            source=Source.IMPORT,
            recorded_by=None,
        )

    rows: list[Observation] = []
    for key, series in values.items():
        spec = SERIES[key]
        names = [_name(key), *(alias for alias, target in ALIASES.items() if target == key)]
        targets = {metrics[name].pk: metrics[name] for name in names if name in metrics}
        for metric in targets.values():
            rows.extend(row(metric, day, _decimal(value, spec.places)) for day, value in series)

    # By platform: DAU for the last four weeks, D1 retention for the last two.
    dau = metrics[_name("DAU")]
    for day, value in values["DAU"][-28:]:
        ios = round(value * (0.41 + rng.gauss(0, 0.01)))
        rows.append(row(dau, day, Decimal(ios), "iOS"))
        rows.append(row(dau, day, Decimal(round(value) - ios), "Android"))
    d1 = metrics["D1 留存率"]
    for day, value in values["D1 retention"][-14:]:
        rows.append(row(d1, day, _decimal(value + 2.1 + rng.gauss(0, 0.4), 2), "iOS"))
        rows.append(row(d1, day, _decimal(value - 1.4 + rng.gauss(0, 0.4), 2), "Android"))
    return rows


def _analyses_read(
    *, team: Team, metrics: Mapping[str, Metric], launches: Mapping[tuple[int, int], Launch]
) -> None:
    """Give every conclusion the target metric's mean in the week before and the week from its launch.
    The conclusions were written while the requirements were played out, before these observations
    existed; conclusion_record reads them, but only for an open requirement's current loop."""
    loops = (
        IterationLoop.objects.filter(requirement__team=team)
        .exclude(verdict="")
        .select_related("requirement")
        .order_by("requirement__number", "number")
    )
    for loop in loops:
        requirement = loop.requirement
        metric = metrics.get(requirement.target_metric)
        if metric is None:
            continue
        if loop.closed_at is None:
            # The loop is open: write its conclusion again through the service, which reads the figures
            # itself; keep the time it was first written.
            analyzed_at = loop.analyzed_at
            services.conclusion_record(
                requirement_id=requirement.pk,
                actor=loop.analyzed_by,
                conclusion=loop.conclusion,
                verdict=loop.verdict,
                core_metric_moved=loop.core_metric_moved,
                behaviour_moved=loop.behaviour_moved,
                feedback_positive=loop.feedback_positive,
            )
            IterationLoop.objects.filter(pk=loop.pk).update(analyzed_at=analyzed_at)
            continue
        launch = launches[(requirement.pk, loop.number)].date
        window = dt.timedelta(days=rules.BEFORE_AFTER_DAYS)
        rows = Observation.objects.filter(
            metric=metric, segment="", date__gte=launch - window, date__lt=launch + window
        ).values_list("date", "value")
        reading = rules.before_after(rows, launch=launch)
        # A closed loop is history no service rewrites; demo data backfills it directly.
        IterationLoop.objects.filter(pk=loop.pk).update(
            metric_name=metric.name,
            metric_before=_reading(reading.before),
            metric_after=_reading(reading.after),
        )


def _reading(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.0001"))


def _watches(
    *, team: Team, people: Mapping[str, AbstractBaseUser], metrics: Mapping[str, Metric], now: dt.datetime
) -> dict[str, Requirement]:
    """The three preset watches, evaluated now: the requirements they opened, by preset key."""
    opened: dict[str, Requirement] = {}
    for preset in WATCH_PRESETS:
        assignee = WATCH_ASSIGNEES.get(str(preset["key"]))
        watch = services.watch_create(
            actor=people[ANALYST],
            team_id=team.pk,
            name=_(str(preset["name"])),
            metric=metrics[_(str(preset["metric"]))].pk,
            comparison=preset["comparison"],
            threshold=preset["threshold"],
            periods=preset["periods"],
            period=preset["period"],
            title=_(str(preset["title"])),
            aarrr_stage=preset["aarrr_stage"],
            priority=preset["priority"],
            owner_role=preset["owner_role"],
            description=_(str(preset["description"])),
            assignee=people[assignee].pk if assignee else None,
        )
        firing = services.watch_evaluate(watch_id=watch.pk, now=now)
        if firing is not None and firing.requirement is not None:
            opened[str(preset["key"])] = firing.requirement
    return opened


def _goals(
    *,
    team: Team,
    people: Mapping[str, AbstractBaseUser],
    metrics: Mapping[str, Metric],
    today: dt.date,
    watch_requirements: Mapping[str, Requirement],
) -> None:
    keys = dict(Requirement.objects.filter(team=team).values_list("title", "key"))
    keys.update({f"watch:{preset}": requirement.key for preset, requirement in watch_requirements.items()})
    for spec in GOALS:
        actor = people[spec["by"]]
        start, end = (today + dt.timedelta(days=offset) for offset in spec["days"])
        goal = services.goal_create(
            actor=actor,
            team_id=team.pk,
            title=spec["title"],
            metric=metrics[spec["metric"]].pk,
            target=spec["target"],
            start=start,
            end=end,
            description=spec["description"],
            first_level_metrics=[metrics[_name(name)].pk for name in spec["first_level"]],
        )
        for title, description, metric, carried_by in spec["strategies"]:
            services.strategy_create(
                actor=actor,
                goal_id=goal.pk,
                title=title,
                description=description,
                metric=metrics[_name(metric)].pk,
                # A watch that did not fire opened nothing to carry the strategy.
                requirements=[keys[ref] for ref in carried_by if ref in keys or not ref.startswith("watch:")],
            )
