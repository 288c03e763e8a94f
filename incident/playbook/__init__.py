"""Playbooks: YAML files that say how each kind of incident is answered, checked at load.

The engine imports everything it needs from here; see ``playbooks/README.md`` for the format.
"""

from incident.playbook.conditions import (
    LEVELS,
    Condition,
    ConditionSyntaxError,
    level_rank,
    parse_condition,
)
from incident.playbook.durations import format_duration, parse_duration
from incident.playbook.files import BrokenFile, load_playbook, load_playbooks, read_playbooks
from incident.playbook.loader import parse_playbook_text
from incident.playbook.probe import rendering_problems
from incident.playbook.schema import (
    ACTIONS,
    BUILTIN_FACTS,
    INCIDENT_ROLES,
    INPUT_TYPES,
    NOTICE_KINDS,
    ROLE_SOURCES,
    TARGET_NAMES,
    TRIGGERS,
    Action,
    InputSpec,
    Playbook,
    RosterRefs,
    StageSpec,
    Trigger,
)
from incident.playbook.templates import (
    LEVEL_COLOURS,
    LEVEL_NAMES_ZH,
    PAGE_ONLY_BUILTINS,
    TEMPLATE_BUILTINS,
    render_template,
)

__all__ = [
    "ACTIONS",
    "BUILTIN_FACTS",
    "INCIDENT_ROLES",
    "INPUT_TYPES",
    "LEVELS",
    "LEVEL_COLOURS",
    "LEVEL_NAMES_ZH",
    "NOTICE_KINDS",
    "PAGE_ONLY_BUILTINS",
    "ROLE_SOURCES",
    "TARGET_NAMES",
    "TEMPLATE_BUILTINS",
    "TRIGGERS",
    "Action",
    "BrokenFile",
    "Condition",
    "ConditionSyntaxError",
    "InputSpec",
    "Playbook",
    "RosterRefs",
    "StageSpec",
    "Trigger",
    "format_duration",
    "level_rank",
    "load_playbook",
    "load_playbooks",
    "parse_condition",
    "parse_duration",
    "parse_playbook_text",
    "read_playbooks",
    "render_template",
    "rendering_problems",
]
