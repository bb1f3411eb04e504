"""The console's words in Chinese and English: chosen by ``?lang=`` (kept in a cookie), else by
``Accept-Language``, else Chinese (the offices that run alertcast work in it)."""

from __future__ import annotations

from aiohttp import web

__all__ = ["LANG_COOKIE", "WORDS", "Words", "for_script", "language_of", "words_for"]

LANG_COOKIE = "alertcast_lang"
Words = dict[str, str]

_PAIRS: dict[str, tuple[str, str]] = {
    # key: (中文, English)
    "skip": ("跳到正文", "Skip to content"),
    "nav": ("导航", "Navigation"),
    "incidents": ("事件", "Incidents"),
    "compose": ("发布", "Compose"),
    "approvals": ("待审批", "Approvals"),
    "accounts": ("账号", "Accounts"),
    "feeds": ("数据源", "Feeds"),
    "signed_in_as": ("已登录：", "Signed in as"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "token": ("访问令牌", "Access token"),
    "token_hint": (
        "令牌只用于这次登录，不会保存在浏览器里；浏览器只保存一个会话编号。",
        "The token is checked once and never kept in the browser: it holds a session id only.",
    ),
    "wrong_token": ("令牌不正确或未知。", "Unknown or wrong token."),
    "stale_form": (
        "表单已过期或缺少校验码，请重新打开页面再试。",
        "The form is stale or lacks its check token: reload the page and try again.",
    ),
    "lacks": ("{issuer} 没有 {role} 权限。", "{issuer} lacks the {role} role."),
    "refused": ("无法显示", "Not available"),
    "back": ("返回事件列表", "Back to the incidents"),
    "no_incident": (
        "没有事件 {id}（或不在你的权限范围内）。",
        "No incident {id} (or not in your scope).",
    ),
    "new_incident": ("新建事件", "New incident"),
    "no_incidents": ("暂无事件。", "No incidents yet."),
    "recent": ("最近的事件", "Recent incidents"),
    "headline": ("标题", "Headline"),
    "message": ("消息", "Message"),
    "state": ("状态", "State"),
    "kind": ("类型", "Kind"),
    "issuer": ("发布方", "Issuer"),
    "created": ("创建时间", "Created"),
    "status": ("性质", "Status"),
    "status_actual": ("真实", "Actual"),
    "drill_exercise": ("演习", "Exercise"),
    "drill_test": ("测试", "Test"),
    "drill_banner": (
        "演习／测试：只发往标记为演习的账号，每条文字开头都会注明。",
        "DRILL: exercise and test messages go only to exercise accounts, and every text "
        "says so first.",
    ),
    "severity": ("严重程度", "Severity"),
    "sev_unknown": ("未知", "Unknown"),
    "sev_minor": ("轻微", "Minor"),
    "sev_moderate": ("中等", "Moderate"),
    "sev_severe": ("严重", "Severe"),
    "sev_extreme": ("极端", "Extreme"),
    "kind_earthquake": ("地震", "Earthquake"),
    "kind_fire": ("火灾", "Fire"),
    "kind_police": ("警情", "Police"),
    "kind_weather": ("气象", "Weather"),
    "kind_general": ("综合", "General"),
    "msg_alert": ("原始消息", "Alert"),
    "msg_update": ("更新", "Update"),
    "msg_cancel": ("撤销", "Cancellation"),
    "state_awaiting_approval": ("待审批", "Awaiting approval"),
    "state_active": ("生效中", "Active"),
    "state_cancelled": ("已撤销", "Cancelled"),
    "state_expired": ("已过期", "Expired"),
    "state_pending": ("排队中", "Pending"),
    "state_sending": ("发送中", "Sending"),
    "state_delivered": ("已送达", "Delivered"),
    "state_retrying": ("重试中", "Retrying"),
    "state_failed": ("失败", "Failed"),
    "state_dead": ("放弃", "Dead"),
    "state_skipped": ("跳过", "Skipped"),
    "common": ("基本信息", "Common fields"),
    "description": ("描述", "Description"),
    "instruction": ("防护指引", "Instruction"),
    "area_name": ("地区名称", "Area name"),
    "area_codes": ("行政区划代码", "Area codes"),
    "area_codes_hint": (
        "六位代码，逗号分隔，如 510100",
        "Six-digit codes, comma-separated, e.g. 510100",
    ),
    "occurred_at": ("发生时间", "Occurred at"),
    "expires_at": ("失效时间（可选）", "Expires at (optional)"),
    "time_hint": ("ISO 8601，含时区，如 2022-09-05T12:52:18+08:00", "ISO 8601 with an offset"),
    "language": ("语言", "Language"),
    "magnitude": ("震级", "Magnitude"),
    "magnitude_type": ("震级类型", "Magnitude type"),
    "depth_km": ("震源深度（千米）", "Depth (km)"),
    "latitude": ("纬度", "Latitude"),
    "longitude": ("经度", "Longitude"),
    "place": ("震中地点", "Place"),
    "report": ("测定方式", "Report"),
    "report_official": ("正式测定", "Official"),
    "report_automatic": ("自动测定", "Automatic"),
    "source": ("来源", "Source"),
    "event_id": ("事件编号", "Event id"),
    "address": ("地址", "Address"),
    "fire_level": ("火警等级（1–5）", "Fire level (1–5)"),
    "evacuate": ("需要疏散", "Evacuate"),
    "avoid": ("避开的道路或地点", "Avoid"),
    "list_hint": ("逗号分隔", "Comma-separated"),
    "alert_type": ("警情类型", "Alert type"),
    "alert_type_hint": ("小写英文，如 missing_person", "Lower case, e.g. missing_person"),
    "subject": ("对象", "Subject"),
    "contact": ("联系方式", "Contact"),
    "hazard": ("灾害", "Hazard"),
    "weather_level": ("预警颜色", "Warning level"),
    "blue": ("蓝色", "Blue"),
    "yellow": ("黄色", "Yellow"),
    "orange": ("橙色", "Orange"),
    "red": ("红色", "Red"),
    "category": ("类别", "Category"),
    "preview": ("预览", "Preview"),
    "submit": ("提交发布", "Submit"),
    "preview_title": ("各账号的文字", "Every account's text"),
    "preview_hint": (
        "按平台自己的计数方式（微博字数、企业微信字节）；并说明每个账号为何发或不发。",
        "Counted as each platform counts (Weibo units, bytes for WeCom), with why each account "
        "is or is not chosen.",
    ),
    "chosen": ("将发送", "Chosen"),
    "not_chosen": ("不发送", "Not chosen"),
    "no_texts": ("没有账号。", "No account."),
    "chain": ("消息链", "The chain"),
    "deliveries": ("投递", "Deliveries"),
    "grid_caption": ("每个账号、每条消息的投递状态", "Every account's delivery of every message"),
    "account": ("账号", "Account"),
    "attempts": ("尝试", "Attempts"),
    "what_happened": ("经过", "What happened"),
    "actions": ("操作", "Actions"),
    "delivered_at": ("送达于", "Delivered at"),
    "remote_id": ("平台编号", "post id"),
    "last_error": ("最近错误", "Last error"),
    "next_attempt": ("下次尝试", "Next attempt at"),
    "retry": ("重新投递", "Retry"),
    "no_deliveries": ("无投递", "no deliveries"),
    "reason": ("原因", "Reason"),
    "raised_by": ("发布方", "Raised by"),
    "approve": ("批准发布", "Approve"),
    "own_message": (
        "你参与编写了这条消息（{authors}），按双人规则须由另一位审批人批准。",
        "You wrote this ({authors}): under the two-person rule another approver must release it.",
    ),
    "reject": ("驳回", "Reject"),
    "reject_reason": ("驳回原因", "Reason for rejecting"),
    "nothing_held": ("没有待审批的消息。", "Nothing awaits approval."),
    "cancel_title": ("撤销", "Cancel"),
    "cancel_button": ("撤销此事件", "Cancel this incident"),
    "cancel_preview": ("撤销文字预览", "The cancellation's text"),
    "update_title": ("更新", "Update"),
    "update_button": ("发布更新", "Send the update"),
    "accounts_caption": ("账号健康状况", "Account health"),
    "health": ("健康", "Health"),
    "healthy": ("正常", "Healthy"),
    "unhealthy": ("异常", "Unhealthy"),
    "paused": ("暂停", "Paused"),
    "until": ("直到", "until"),
    "failures_in_row": ("连续失败", "Failures in a row"),
    "silent_for": ("距上次成功", "Silent for"),
    "quota_left": ("剩余额度", "Quota left"),
    "quota_mass_sends_today": ("今日群发", "mass sends today"),
    "quota_post_this_hour": ("本小时发帖", "posts this hour"),
    "quota_comment_this_hour": ("本小时评论", "comments this hour"),
    "quota_total_this_hour": ("本小时调用", "calls this hour"),
    "never_sent": ("从未成功", "never delivered"),
    "days": ("天", "days"),
    "sent": ("送达 / 失败", "Delivered / failed"),
    "failed_n": ("失败", "failed"),
    "correction_failed": ("更正未送达", "Correction failed"),
    "exercise_account": ("演习账号", "exercise account"),
    "disabled": ("已停用", "disabled"),
    "resume": ("恢复", "Resume"),
    "no_accounts": ("没有可见的账号。", "No account in your scope."),
    "no_pause_route": (
        "暂停由系统按额度与凭据自动进行；手动暂停尚无接口。",
        "Accounts pause by themselves (quota, credentials); there is no manual pause route yet.",
    ),
    "feeds_caption": ("数据源健康状况", "Feed health"),
    "feed": ("数据源", "Feed"),
    "last_poll": ("上次成功拉取", "Last good poll"),
    "lag": ("延迟", "Lag"),
    "errors": ("错误", "Errors"),
    "events_seen": ("事件数", "Events seen"),
    "next_poll": ("下次拉取", "Next poll"),
    "push_only": ("仅推送", "push only"),
    "no_feeds": ("没有可见的数据源。", "No feed in your scope."),
    "unit_weibo": ("微博字", "Weibo units"),
    "unit_bytes": ("字节", "bytes"),
    "unit_chars": ("字符", "characters"),
    "unit_json-bytes": ("JSON 字节", "bytes of JSON"),
    # for console.js
    "js_live": ("实时", "live"),
    "js_reconnecting": ("重新连接中…", "reconnecting…"),
    "js_sent": ("已提交", "Submitted"),
    "js_fix": ("请修改标出的字段。", "Fix the marked fields."),
    "js_failed": ("请求失败", "Request failed"),
    "js_confirm_cancel": ("确定撤销此事件？", "Cancel this incident?"),
}

WORDS: dict[str, Words] = {
    lang: {key: pair[n] for key, pair in _PAIRS.items()} for n, lang in enumerate(("zh", "en"))
}
WORDS["zh"] |= {
    "lang": "zh",
    "html_lang": "zh-CN",
    "other_lang": "en",
    "other_lang_name": "English",
}
WORDS["en"] |= {"lang": "en", "html_lang": "en", "other_lang": "zh", "other_lang_name": "中文"}
JS_KEYS = ("js_", "state_", "unit_", "chosen", "not_chosen", "no_texts")


def for_script(words: Words) -> Words:
    """The words ``console.js`` shows (a JSON block in every page)."""
    return {k: v for k, v in words.items() if k.startswith(JS_KEYS)}


def language_of(request: web.Request) -> str:
    """``?lang=`` first, then the cookie it leaves, then the first of ``zh``/``en`` the browser
    asks for; Chinese otherwise."""
    for choice in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if choice in WORDS:
            return str(choice)
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in WORDS:
            return tag
    return "zh"


def words_for(request: web.Request) -> Words:
    return WORDS[language_of(request)]
