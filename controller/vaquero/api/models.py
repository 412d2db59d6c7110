"""Response shapes, for the OpenAPI description (documentation: handlers return plain dicts)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class SoTErrorOut(_Open):
    file: str | None = Field(description="file in the SoT, relative to its root (null when the revision could not be read at all)")
    line: int | None
    field: str | None = Field(description="field path, e.g. hosts[2].macs")
    message: str


class RevisionOut(_Open):
    id: str = Field(description="the commit SHA, or local-<content hash> for a folder")
    kind: str = Field(description="git | path")
    sha: str | None
    source: str
    subdir: str
    label: str
    root: str | None = Field(description="the tree of that revision in the content-addressed cache")
    created: float
    state: str = Field(description="queued | fetching | planned | invalid")
    actor: str | None
    github: str | None = Field(description="OWNER/NAME when it came from a GitHub push")
    delivery: str | None
    plan: str | None
    errors: list[SoTErrorOut]


class RevisionList(_Open):
    count: int
    revisions: list[RevisionOut]


class RevisionAccepted(_Open):
    created: bool = Field(description="false when that revision was already known (then nothing is done twice)")
    revision: RevisionOut


class PlanSummaryOut(_Open):
    id: str
    revision: str
    sha: str | None
    source: str
    label: str
    root: str | None
    created: float
    actor: str | None
    base_sha: str | None = Field(description="the current revision the plan was made against")
    state: str = Field(description="invalid | pending_approval | approved | rejected | superseded | running | succeeded | failed | cancelled")
    auto_apply: bool
    digest: str | None = Field(
        None, description="sha256 of the plan, its text and the revisions it joins: approving needs it (null for an invalid plan)"
    )
    errors: list[SoTErrorOut]
    approved_by: str | None
    approved_at: float | None
    rejected_by: str | None
    superseded_by: str | None
    run: str | None
    cancel_requested: bool
    reviewed: dict[str, Any] | None = Field(
        None,
        description="on the plan of a merged pull request's merge commit: the PR, its reviewed head, `same` "
        "(this is the plan reviewed) and `why`, or the `diff` from the reviewed plan text",
    )


class PlanOut(PlanSummaryOut):
    plan: dict[str, Any] | None = Field(description="the JSON plan: hosts, scopes, waves, policy decisions")
    text: str | None = Field(description="the human dump")


class PullOut(_Open):
    number: int
    github: str = Field(description="OWNER/NAME of the base repository")
    head_sha: str
    fork: bool = Field(description="the head is in another repository: planned for review, never applied")
    state: str = Field(description="queued | planning | planned | invalid | merged")
    base_sha: str | None = Field(description="the applied revision the head was planned against")
    plan: dict[str, Any] | None
    text: str | None
    digest: str | None = Field(description="sha256 of what the plan does (not of the commit's name): equal for a merge that changes the same")
    errors: list[SoTErrorOut]
    reported_via: str | None = Field(description="check_run | status (commit status and one comment, when the token may not write checks)")
    merged_sha: str | None = None


class PlanList(_Open):
    count: int
    plans: list[PlanSummaryOut]


class RunList(_Open):
    count: int
    runs: list[dict[str, Any]]


class HostRow(_Open):
    name: str
    cluster: str | None
    site: str | None
    state: str | None = Field(description="null: in the current revision, no event yet")
    since: float | None
    reason: str | None
    step: str | None
    attempt: int | None
    plan: str | None
    run: str | None
    sha: str | None
    actor: str | None


class HostList(_Open):
    count: int
    hosts: list[HostRow]


class HostDetail(HostRow):
    since_seconds: float | None
    why: str = Field(description="what it is doing, since when, and why it is stuck")
    failure: dict[str, Any] | None = Field(description="step, reason and attempt when failed")
    last_event: dict[str, Any] | None


class Timeline(_Open):
    host: str
    count: int
    events: list[dict[str, Any]]


class WebhookResult(_Open):
    status: str = Field(description="queued | known | pong | ignored | duplicate | dropped (PR closed) | merged (PR merged)")
    delivery: str
    event: str | None = None
    sha: str | None = None
    pull_request: int | None = None
    fork: bool | None = None
    revision: str | None = None
    reason: str | None = None


class ErrorOut(_Open):
    detail: str | list[dict[str, Any]] = Field(description="what is wrong: a sentence, or FastAPI's list of validation errors")


class DriftFinding(BaseModel):
    kind: Literal["power", "boot", "agent"]
    observed: str = Field(description="what the BMC reported: on | off | powering_on | ..., or the boot override")
    wanted: str = Field(description="what the applied revision wants")
    action: str = Field(description="what correcting it means: power_on | power_off | boot_disk | agent_localboot")
    reason: str = Field(description='e.g. "node2: power is off (observed 12:03:04 via ipmi), the SoT wants it on"')


class DriftAction(DriftFinding):
    host: str


class DriftHost(BaseModel):
    host: str
    state: str | None = Field(description="the host's lifecycle state when it was observed")
    wants_power: Literal["on", "off"]
    status: Literal["ok", "drift", "unknown", "skipped"] = Field(
        description="ok: matches; drift: see findings; unknown: the BMC could not be read (reason); skipped: not judged (reason)"
    )
    reason: str | None = Field(description="why unknown or skipped")
    observed_at: float | None = Field(description="Unix time of the BMC read")
    via: str | None = Field(description="ipmi | redfish")
    power: str | None
    boot: dict[str, Any] | None = Field(description="the boot override read: device, persistent, mode")
    agent_state: str | None = Field(description="the site agent's boot state of the host: none | install | installed | failed | wipe | wiped")
    os_report_at: float | None = Field(description="Unix time the installed OS last phoned home, as the agent saw it")
    findings: list[DriftFinding]


class DriftReport(BaseModel):
    count: int = Field(description="hosts of the applied revision with a record")
    counts: dict[str, int] = Field(description="hosts per drift kind (power, boot, agent) and unknown (BMC or agent not read)")
    actions: list[DriftAction] = Field(description="the drift as plan actions, one per finding")
    hosts: list[DriftHost]


class InspectionProposal(BaseModel):
    kind: Literal["pull", "patch"] = Field(description="pull: a pull request on the SoT repository; patch: a file for git am / git apply")
    host: str = Field(description="the proposed host's name")
    address: str = Field(description="the static address proposed for it")
    network: str | None = None
    mac: str | None = Field(None, description="the boot MAC")
    number: int | None = Field(None, description="pull: the pull request's number")
    url: str | None = Field(None, description="pull: the pull request's web address")
    branch: str | None = Field(None, description="pull: the branch holding the host file")
    path: str = Field(description="pull: the host file in the repository; patch: the patch file on the controller")
    file: str | None = Field(None, description="patch: the host file the patch adds, in the repository")


class Inspection(BaseModel):
    mac: str = Field(description="the boot MAC (the record's key)")
    site: str
    agent: str = Field(description="the site agent that forwarded the report")
    report: dict[str, Any] = Field(description="the inspection report as typed on arrival (see docs/enrollment.md)")
    first_seen: float
    last_seen: float
    reports: int = Field(description="how many times the machine reported itself")
    status: Literal["new", "proposed", "refused", "merged", "rejected"] = Field(
        description=(
            "new: waiting for a proposal (or retried, see last_error); proposed: see proposal; refused: see reason; "
            "merged: its pull request was merged; rejected: its pull request was closed without merging (never proposed again "
            "unless the record is deleted)"
        )
    )
    proposal: InspectionProposal | None = None
    reason: str | None = Field(None, description="refused: why (tried again when another revision is applied)")
    last_error: str | None = Field(None, description="new: why the last proposal failed (GitHub, git); retried at retry_at")
    retry_at: float | None = None
    closed_at: float | None = Field(None, description="merged or rejected: when its pull request was closed")


class InspectionList(BaseModel):
    count: int
    inspections: list[Inspection]
