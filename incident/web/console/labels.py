"""What the console calls things, in Chinese and English: states, levels, roles, events."""

from __future__ import annotations

import re

from incident.playbook import LEVEL_COLOURS, LEVEL_NAMES_ZH

Pair = tuple[str, str]  # (zh, en)

SEVERITY: dict[str, Pair] = {
    level: (f"{name}（{level}级）", f"Level {level}") for level, name in LEVEL_NAMES_ZH.items()
}
COLOURS = LEVEL_COLOURS

TABLES: dict[str, dict[str, Pair]] = {
    "severity": SEVERITY,
    "incident": {
        "active": ("处置中", "Active"),
        "contained": ("已控制", "Contained"),
        "resolved": ("已解决", "Resolved"),
        "closed": ("已关闭", "Closed"),
    },
    "mode": {"live": ("实战", "Live"), "drill": ("演练", "Drill")},
    "stage": {
        "pending": ("待触发", "Pending"),
        "due": ("执行中", "Due"),
        "fired": ("已执行", "Fired"),
        "skipped": ("已跳过", "Skipped"),
    },
    "trigger": {
        "declared": ("启动时", "On declaration"),
        "after": ("延时", "After"),
        "every": ("每隔", "Every"),
        "if": ("条件", "If"),
        "manual": ("手动", "Manual"),
        "resolved": ("解除时", "On resolution"),
    },
    "page": {
        "pending": ("待送达", "Pending"),
        "sent": ("已送达", "Delivered"),
        "acked": ("已确认", "Acknowledged"),
        "escalated": ("已升级", "Escalated"),
        "unreachable": ("无法联系", "Unreachable"),
    },
    "recipient": {
        "pending": ("发送中", "Sending"),
        "sent": ("已送达", "Delivered"),
        "failed": ("失败", "Failed"),
        "acked": ("已确认", "Acknowledged"),
        "declined": ("已拒绝", "Declined"),
    },
    "delivery": {
        "queued": ("排队", "Queued"),
        "sending": ("发送中", "Sending"),
        "delivered": ("已送达", "Delivered"),
        "retrying": ("重试中", "Retrying"),
        "failed": ("失败", "Failed"),
        "held": ("暂缓", "Held"),
        "bundled": ("已合并", "Bundled"),
    },
    "notice": {
        "draft": ("草稿", "Draft"),
        "current": ("已发布", "Current"),
        "closed": ("已解除", "Closed"),
        "withdrawn": ("已撤回", "Withdrawn"),
    },
    "version": {
        "draft": ("草稿", "Draft"),
        "approved": ("已批准", "Approved"),
        "published": ("已发布", "Published"),
        "superseded": ("已取代", "Superseded"),
        "withdrawn": ("已撤回", "Withdrawn"),
    },
    "notice_kind": {
        "initial": ("首次公告", "First notice"),
        "update": ("更新", "Update"),
        "all_clear": ("解除", "All clear"),
        "withdrawal": ("撤回", "Withdrawal"),
    },
    "role": {
        "admin": ("管理员", "Administrator"),
        "duty_manager": ("值班主任", "Duty manager"),
        "staff": ("工作人员", "Staff"),
        "evaluator": ("评估员", "Evaluator"),
        "viewer": ("只读", "Viewer"),
    },
    "level": {
        "on_duty": ("当班人员", "On duty"),
        "section_head": ("组长", "Section head"),
        "deputy_director": ("副主任", "Deputy director"),
        "duty_director": ("值班领导", "Duty director"),
        "director": ("主任", "Director"),
        "on_duty_agent": ("当班坐席", "On-duty agent"),
    },
    "action_status": {
        "open": ("待处理", "Open"),
        "in_progress": ("进行中", "In progress"),
        "done": ("已完成", "Done"),
    },
    "rating": {
        "P": ("P 顺利完成", "P — performed without challenges"),
        "S": ("S 有些困难", "S — some challenges"),
        "M": ("M 困难较大", "M — major challenges"),
        "U": ("U 未能完成", "U — unable to be performed"),
    },
    "need": {
        "water": ("饮用水", "Water"),
        "food": ("食品", "Food"),
        "medical": ("医疗", "Medical care"),
        "accommodation": ("住宿", "Accommodation"),
        "onward_transport": ("接驳运输", "Onward transport"),
        "accessibility": ("无障碍协助", "Accessibility help"),
    },
    "vulnerable": {
        "elderly": ("老人", "Elderly"),
        "children": ("儿童", "Children"),
        "reduced_mobility": ("行动不便", "Reduced mobility"),
    },
    "group": {"stranded": ("滞留中", "Stranded"), "cleared": ("已疏散", "Cleared")},
    "callback": {"pending": ("待回访", "Call-back due"), "done": ("已回访", "Called back")},
    "inquiry_kind": {"inquiry": ("咨询", "Inquiry"), "complaint": ("投诉", "Complaint")},
    "via": {
        "link": ("链接", "link"),
        "api": ("接口", "API"),
        "console": ("控制台", "console"),
        "reply": ("回复", "reply"),
        "hand": ("当面", "by hand"),
    },
    "action": {
        "page": ("呼叫", "Page"),
        "notice": ("公告", "Notice"),
        "passenger_message": ("旅客消息", "Passenger message"),
        "task": ("任务", "Task"),
        "authority_report": ("上级报告", "Report to the authority"),
    },
    "task": {
        "open": ("待办", "Open"),
        "acknowledged": ("已接收", "Acknowledged"),
        "done": ("已完成", "Done"),
    },
    "command_role": {
        "commander": ("现场指挥", "Incident commander"),
        "public_information": ("信息发布", "Public information"),
        "liaison": ("联络", "Liaison"),
        "operations": ("业务处置", "Operations"),
        "planning": ("计划协调", "Planning"),
    },
    "event": {
        "incident:declared": ("启动响应", "Declared"),
        "incident:severity_changed": ("调整级别", "Severity changed"),
        "incident:facts_changed": ("更新情况", "Facts changed"),
        "incident:status_changed": ("状态变更", "Status changed"),
        "stage:due": ("阶段到期", "Stage due"),
        "stage:fired": ("执行阶段", "Stage fired"),
        "stage:skipped": ("跳过阶段", "Stage skipped"),
        "page:requested": ("请求呼叫", "Page requested"),
        "page:opened": ("发出呼叫", "Page opened"),
        "page:escalated": ("呼叫升级", "Page escalated"),
        "page:unanswered": ("无人应答", "Page unanswered"),
        "page:unreachable": ("无法联系", "Unreachable"),
        "page:acked": ("确认呼叫", "Page acknowledged"),
        "page:declined": ("拒绝呼叫", "Page declined"),
        "notice:requested": ("请求公告", "Notice requested"),
        "notice:drafted": ("公告草稿", "Notice drafted"),
        "notice:approved": ("批准公告", "Notice approved"),
        "notice:published": ("发布公告", "Notice published"),
        "notice:superseded": ("公告被取代", "Notice superseded"),
        "notice:withdrawn": ("撤回公告", "Notice withdrawn"),
        "notice:skipped": ("未起草公告", "Notice skipped"),
        "notice:first_overdue": ("首次公告逾期", "First notice overdue"),
        "notice:update_overdue": ("公告更新逾期", "Notice update overdue"),
        "passenger_message:requested": ("旅客消息", "Passenger message"),
        "task:requested": ("任务", "Task"),
        "passengers:group_opened": ("登记滞留旅客", "Passenger group opened"),
        "passengers:group_changed": ("更新旅客情况", "Passenger group changed"),
        "passengers:care_recorded": ("旅客服务", "Care given"),
        "passengers:manifest_uploaded": ("上传旅客名单", "Manifest uploaded"),
        "passengers:exported": ("导出旅客名单", "Passengers exported"),
        "passengers:purged": ("清除旅客数据", "Passenger data purged"),
        "broadcast:started": ("旅客群发", "Broadcast started"),
        "broadcast:prepared": ("群发已就绪", "Broadcast prepared"),
        "broadcast:unsent": ("群发未发出", "Broadcast not sent"),
        "broadcast:resent": ("群发重发", "Broadcast resent"),
        "inquiry:recorded": ("旅客来电", "Inquiry recorded"),
        "inquiry:callback_overdue": ("回访逾期", "Call-back overdue"),
        "inquiry:callback_done": ("已回访", "Call-back done"),
        "drill:started": ("演练开始", "Drill started"),
        "drill:evaluated": ("演练评估", "Drill evaluated"),
        "corrective_action:created": ("整改措施", "Corrective action"),
        "corrective_action:overdue": ("整改逾期", "Corrective action overdue"),
        "corrective_action:done": ("整改完成", "Corrective action done"),
        "role:filled": ("指定分工", "Roles filled"),
        "role:assigned": ("调整分工", "Role assigned"),
        "task:acknowledged": ("接收任务", "Task acknowledged"),
        "task:updated": ("更新任务", "Task updated"),
        "task:overdue": ("任务逾期", "Task overdue"),
        "task:done": ("完成任务", "Task done"),
        "authority_report:requested": ("要求上报", "Report required"),
        "authority_report:drafted": ("上报草稿", "Report drafted"),
        "authority_report:changed": ("修改上报", "Report changed"),
        "authority_report:submitted": ("已上报", "Report submitted"),
        "authority_report:overdue": ("上报逾期", "Report overdue"),
        "contact:reached_by_hand": ("当面通知", "Reached by hand"),
        "handover:acknowledged": ("交接班", "Shift handed over"),
        "job:failed": ("作业未执行", "Job failed, not done"),
    },
}


def label(table: str, value: object, lang: str) -> str:
    """The name of ``value`` in ``lang`` ("zh" or "en"); the value itself when unnamed."""
    pair = TABLES.get(table, {}).get(str(value))
    if pair is None:
        return str(value).replace("_", " ")
    return pair[0] if lang == "zh" else pair[1]


def pick(pair: dict[str, str] | Pair | None, lang: str) -> str:
    """One language of a ``{zh, en}`` mapping or a ``(zh, en)`` pair (zh when en is missing)."""
    if pair is None:
        return ""
    if isinstance(pair, tuple):
        return pair[0] if lang == "zh" else pair[1]
    return pair.get(lang) or pair.get("zh") or next(iter(pair.values()), "")


# The engine's field messages are English; the common ones, in Chinese for the forms.
_MESSAGES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^\w+ is required(?: and cannot be removed)?$|^is required$"), "必填"),
    (re.compile(r"^a title is required$"), "请填写标题"),
    (re.compile(r"^at most (\d+) characters.*$"), "最多 {0} 个字符"),
    (re.compile(r"^\w+ must be at least (.+), not .*$"), "不能小于 {0}"),
    (re.compile(r"^\w+ must be at most (.+), not .*$"), "不能大于 {0}"),
    (re.compile(r"^\w+ must be a whole number, not .*$"), "须为整数"),
    (re.compile(r"^\w+ must be a number, not .*$"), "须为数字"),
    (re.compile(r"^\w+ must be true or false, not .*$"), "须为“是”或“否”"),
    (re.compile(r"^\w+ must be one of (.+), not .*$"), "须为以下之一：{0}"),
    (
        re.compile(r"^\w+ must be a date and time.*$|^a date and time, like.*$"),
        "须为日期和时间，如 2026-11-22 10:30",
    ),
    (re.compile(r"^must be one of I, II, III, IV.*$"), "请选择 I–IV 级"),
    (re.compile(r"^the Chinese text is required$"), "须填写中文"),
    (re.compile(r"^the template rendered no headline$"), "模板没有生成标题"),
    (re.compile(r"^must be a whole number, 0 or more$"), "须为不小于 0 的整数"),
    (re.compile(r"^name a train, a station, or both$"), "请填写车次或车站"),
    (re.compile(r"^a call-back needs a phone number$"), "回访需要电话号码"),
]


def message(text: str, lang: str) -> str:
    """A field message in the reader's language (the English one when it has no Chinese)."""
    if lang != "zh":
        return text
    for pattern, chinese in _MESSAGES:
        found = pattern.match(text)
        if found:
            return chinese.format(*found.groups())
    return text
