"""Configuration: YAML validated at load into frozen, typed settings.

Validation walks the YAML node tree (not the plain parsed data) so every error can name
the file, the line and the field path, e.g. ``demo.yaml:12: asterisk.sip_port: expected
an integer, got 'abc'``. Unknown fields are errors: a typo must not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import string
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from app.domain.admission import CallLimits, Limit
from app.domain.agent_state import skill_name_problem
from app.domain.experts import Directory, Expert, ExpertGroup
from app.domain.ivr_flow import Hours
from app.domain.offers import terms_problem
from app.domain.outbound import DEFAULT_KINDS, DialPlan, Purpose
from app.domain.prompt import PromptText as PromptText  # configured prompts are made of these
from app.domain.prompt import missing_languages
from app.domain.recording import Mode as RecordingMode
from app.domain.recording import RecordingPolicy
from app.domain.recording import Rule as RecordingRule
from app.domain.sip_bans import BanRules
from app.domain.wallboard import TileThresholds
from app.errors import ConfigError

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AsteriskSettings:
    """One project-local Asterisk instance. Ports differ per instance so several run side by side."""

    instance: str = "main"
    sip_bind: str = "127.0.0.1"
    sip_port: int = 5060
    http_port: int = 8088
    ami_port: int = 5038
    # Two ports per call leg (RTP, RTCP), two legs per call through a queue: 10,000 ports hold
    # 2,500 calls (Asterisk's own default range). A range that runs out refuses calls with 488.
    rtp_start: int = 10000
    rtp_end: int = 19999
    # WebRTC softphones reach Asterisk over a SIP websocket. "ws": plain, on the HTTP server
    # above (loopback; enough for a browser on this machine). "wss": TLS on wss_bind:wss_port
    # with the certificate generated into var/tls/ (needed once browsers are on other machines).
    webrtc_socket: Literal["ws", "wss"] = "ws"
    wss_bind: str = "127.0.0.1"
    wss_port: int = 8089
    # Start and supervise Asterisk from the app. False: connect to one started elsewhere.
    manage: bool = True
    # Where Asterisk's HTTP server (ARI, the SIP websocket) and AMI listen, and where the app
    # reaches them: loopback when both run here; in containers, e.g. 0.0.0.0 and the service
    # name "asterisk" (the ports are then open to the container network, never published).
    api_bind: str = "127.0.0.1"
    host: str = "127.0.0.1"
    # Behind NAT (a container's published ports, a router's port forward): the address phones
    # outside `local_nets` reach Asterisk at. Asterisk then writes it (and `external_sip_port`,
    # when the forward moves the SIP port) into SIP and SDP for those phones, so their audio comes
    # back; phones on `local_nets` keep being answered with Asterisk's own address. The RTP range
    # must be forwarded port for port. Empty: no NAT, Asterisk's own address for everyone.
    external_address: str = ""
    external_sip_port: int | None = None
    local_nets: tuple[str, ...] = ()


@dataclass(frozen=True)
class CarrierSettings:
    """The SIP trunk: identified by source address, no registration, as real trunks are."""

    name: str = "carrier"
    match: tuple[str, ...] = ("127.0.0.2",)
    dids: tuple[str, ...] = ("7000",)
    # Where the carrier takes calls we place (callbacks), e.g. "sip:10.0.0.1:5060".
    # None: nothing is ever dialled out.
    outbound_contact: str | None = None
    # The number customers see when we call them; defaults to the first DID.
    caller_id: str | None = None

    @property
    def presented_number(self) -> str:
        """The number shown on calls we place: `caller_id`, else the first DID."""
        return self.caller_id or (self.dids[0] if self.dids else "")


@dataclass(frozen=True)
class AgentSettings:
    id: str
    name: str
    # skill name -> level 1 (novice) .. 10 (expert)
    skills: dict[str, int] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    # Demo phones register with a generated password; see var/secrets.yaml.
    codecs: tuple[str, ...] = ("ulaw", "alaw", "g722")
    # A desk phone at a fixed address instead of registering, e.g. "sip:1001@10.0.0.21:5060".
    contact: str | None = None
    # Role in the agent panel: an expert is an agent others may consult.
    role: Literal["agent", "expert"] = "agent"
    # The agent's phone is the panel's browser softphone (WebRTC: DTLS-SRTP, ICE) instead of
    # a desk SIP phone; same username and generated password.
    webrtc: bool = False
    # How this agent takes predictive and progressive customers, whatever the campaign says:
    # "nailed" (their phone is called once when they go Ready and stays connected) or "ringing"
    # (it rings for each customer: only a phone that answers by itself is in time).
    outbound_line: Literal["nailed", "ringing"] | None = None


@dataclass(frozen=True)
class SkillNeed:
    skill: str
    min_level: int = 1


@dataclass(frozen=True)
class TargetSettings:
    """Service-level target: `percent` of calls answered within `seconds`."""

    percent: float
    seconds: float


@dataclass(frozen=True)
class RelaxationSettings:
    after_s: float
    lower_min_level_by: int = 0
    add_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class OverflowSettings:
    """Send waiting callers to another queue when any one condition holds."""

    to_queue: str
    max_wait_s: float | None = None
    max_length: int | None = None
    when_no_agents: bool = False
    expected_wait_over_s: float | None = None
    asa_over_s: float | None = None


Strategy = Literal[
    "ring_all",
    "linear",
    "round_robin",
    "longest_idle",
    "fewest_calls",
    "skills_best",
    "skills_least_occupied",
]


@dataclass(frozen=True)
class CallbackSettings:
    """Waiting callers may leave the line and be called back, keeping their place."""

    offer: bool = False
    key: str = "1"  # pressed while waiting
    max_attempts: int = 3  # customer legs tried before giving up
    retry_after_s: float = 300.0  # pause after a busy or unanswered customer
    customer_ring_s: float = 30.0  # how long the customer's phone rings


@dataclass(frozen=True)
class QueueVoicemailSettings:
    """Waiting callers may leave a message instead; it becomes a callback task."""

    offer: bool = False
    key: str = "2"  # pressed while waiting
    # When nobody could ever answer (no agent logged in), take a message (which becomes a
    # callback where the center can dial out) instead of saying "call again later"; with or
    # without `offer`. False: "call again later" and goodbye.
    when_no_agent: bool = True
    max_s: int = 120  # longest message
    max_silence_s: int = 10  # the message ends after this much silence
    # A message shorter than this, or with less voice in it than `min_voice_s`, is not kept.
    min_s: float = 1.0
    min_voice_s: float = 0.5


@dataclass(frozen=True)
class QueueOfferSettings:
    """Agents of the queue see the call first (customer, IVR data, why them, a countdown) with
    Accept and Reject before their phone rings (app/domain/offers.py has what each answer does)."""

    accept: bool = False
    offer_s: float = 15.0
    # A silent agent (the offer ran out) goes Not Ready with this reason.
    no_response_reason: str = "no response"


@dataclass(frozen=True)
class QueueSettings:
    name: str
    strategy: Strategy = "longest_idle"
    skills: tuple[SkillNeed, ...] = ()
    groups: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    # tier (top/high/medium/low) -> target; missing tiers keep the defaults
    targets: dict[str, TargetSettings] = field(default_factory=dict)
    sticky_s: float = 0.0
    relaxations: tuple[RelaxationSettings, ...] = ()
    overflow: tuple[OverflowSettings, ...] = ()
    ring_timeout_s: float = 15.0
    wrap_up_s: float = 10.0
    # Tell waiting callers their place and expected wait on entry and then this often; 0 = never.
    announce_every_s: float = 30.0
    # A silent agent (ring-no-answer) goes Not Ready with reason "no answer".
    no_answer_not_ready: bool = True
    callback: CallbackSettings = CallbackSettings()
    voicemail: QueueVoicemailSettings = QueueVoicemailSettings()
    offer: QueueOfferSettings = QueueOfferSettings()


@dataclass(frozen=True)
class MenuOption:
    """A key in the main menu that sends the caller to a queue."""

    digit: str
    queue: str
    skills: tuple[SkillNeed, ...] = ()
    # What the agent's panel calls this choice ({en: Billing, zh: 账务}); default: the key.
    label: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingSettings:
    # Until agents sign in at the panel, registering the phone logs the agent in, Ready.
    login_on_register: bool = True
    # How far back "the agent who last served this customer" is looked up.
    sticky_history_s: float = 7 * 24 * 3600.0
    # Number prefixes agents may transfer callers to, through the carrier (e.g. ["1380", "+86"]).
    # Empty: no transfers outside the center (toll fraud starts with open transfers).
    transfer_numbers: tuple[str, ...] = ()


Prompts = tuple[PromptText, ...]


@dataclass(frozen=True)
class IvrSettings:
    """What the caller hears. Each prompt is one text or a list played in order, e.g.
    English then Mandarin."""

    greeting: Prompts = (PromptText("Welcome to Lianluo. To speak with an agent, press 1."),)
    connecting: Prompts = (PromptText("Please hold while we connect you to an agent."),)
    no_agent: Prompts = (
        PromptText("Sorry, no agent is available right now. Please call again later. Goodbye."),
    )
    invalid: Prompts = (PromptText("Sorry, that is not a valid choice."),)
    # A menu that got no answer at all; after the last try the caller goes to a person.
    no_input: Prompts = (PromptText("Sorry, I didn't hear you."),)
    goodbye: Prompts = (PromptText("Thank you for calling. Goodbye."),)
    # While waiting. Placeholders: {position} (1 = next), {minutes} (expected wait, rounded up).
    position: Prompts = (PromptText("You are number {position} in line."),)
    expected_wait: Prompts = (PromptText("Your expected wait is about {minutes} minutes."),)
    expected_wait_short: Prompts = (PromptText("Your expected wait is less than a minute."),)
    # Callbacks. {key} is the queue's callback key; {number} the number we will call, digit by digit.
    callback_offer: Prompts = (
        PromptText("To be called back without losing your place in line, press {key}."),
    )
    callback_confirmed: Prompts = (
        PromptText("Thank you. We will call you back at {number}. You keep your place in line. Goodbye."),
    )
    callback_refused: Prompts = (PromptText("Sorry, we cannot call you back at this number."),)
    # Heard by the customer who picks up a callback, in their language, before the agent
    # speaks. {center} is center_name.
    callback_greeting: Prompts = (
        PromptText("Hello, this is {center} returning your call. One moment, please."),
    )
    # Heard by the agent who takes a callback, before the customer's phone rings.
    callback_whisper: Prompts = (PromptText("Callback. Calling the customer now."),)
    # Heard by the agent when the customer does not pick up.
    callback_unreached: Prompts = (PromptText("The customer did not answer. We will try again later."),)
    # Voicemail. {key} is the queue's voicemail key.
    voicemail_offer: Prompts = (PromptText("To leave a message, press {key}."),)
    # Before the message, when nobody could ever answer the queue (no agent logged in).
    no_agent_voicemail: Prompts = (PromptText("Sorry, nobody can take your call right now."),)
    voicemail_intro: Prompts = (
        PromptText("Please leave your message after the tone. Press the pound key when you are done."),
    )
    voicemail_saved: Prompts = (
        PromptText("Thank you. Your message is saved. We will call you back. Goodbye."),
    )
    # Nothing was said after the beep: there is no message.
    voicemail_empty: Prompts = (PromptText("Sorry, we did not hear a message. Goodbye."),)
    # The message is kept, but the caller's number is not one the center may call back.
    voicemail_saved_no_callback: Prompts = (
        PromptText("Thank you. Your message is saved. We cannot call you back at this number. Goodbye."),
    )
    digit_timeout_s: float = 6.0
    attempts: int = 3
    menu: tuple[MenuOption, ...] = (MenuOption("1", "general"),)
    # A directory of flow files (one YAML file per flow; relative to this file). When set,
    # the flows replace `greeting` and `menu` above; see config/flows/.
    flows: str | None = None


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "lianluo@localhost"
    starttls: bool = False
    timeout_s: float = 15.0


@dataclass(frozen=True)
class VoicemailSettings:
    """Where messages go: files under var_dir/voicemail, a row each, and e-mail."""

    email_to: tuple[str, ...] = ()  # empty: no e-mail
    smtp: SmtpSettings = SmtpSettings()


@dataclass(frozen=True)
class WebUserSettings:
    """A panel user who is not an agent. Passwords are generated into var/secrets.yaml."""

    username: str
    name: str
    role: Literal["supervisor", "admin", "qa"] = "supervisor"
    # A SIP account for listening to calls (supervisors and admins): the username, with a
    # generated password (`agent_passwords` in var/secrets.yaml), registered like an agent's.
    phone: bool = False
    # A desk phone at a fixed address instead of registering, e.g. "sip:lead@10.0.0.31:5060".
    contact: str | None = None
    # The phone is the browser softphone on the supervisor page (WebRTC), as for agents.
    webrtc: bool = False


@dataclass(frozen=True)
class NotReadyReason:
    """A reason code an agent picks when going Not Ready, with its label in each language."""

    code: str
    en: str = ""
    zh: str = ""


DEFAULT_NOT_READY_REASONS = (
    NotReadyReason("break", "Break", "休息"),
    NotReadyReason("lunch", "Lunch", "午餐"),
    NotReadyReason("meeting", "Meeting", "会议"),
    NotReadyReason("training", "Training", "培训"),
    NotReadyReason("back_office", "Back-office work", "后台工作"),
)


@dataclass(frozen=True)
class WrapUpCode:
    """A disposition code an agent picks in after-call work, with its label in each language."""

    code: str
    en: str = ""
    zh: str = ""


DEFAULT_WRAP_UP_CODES = (
    WrapUpCode("resolved", "Resolved", "已解决"),
    WrapUpCode("information", "Information given", "已提供信息"),
    WrapUpCode("follow_up", "Needs follow-up", "需要跟进"),
    WrapUpCode("escalated", "Escalated", "已升级处理"),
    WrapUpCode("complaint", "Complaint", "投诉"),
    WrapUpCode("wrong_number", "Wrong number", "打错电话"),
)


@dataclass(frozen=True)
class SkillLabel:
    """A skill's name as the panel shows it, in each language (the code is the YAML's name)."""

    code: str
    en: str = ""
    zh: str = ""


DEFAULT_SKILL_LABELS = (
    SkillLabel("billing", "Billing", "账务"),
    SkillLabel("tech", "Technical support", "技术支持"),
    SkillLabel("english", "English", "英语"),
    SkillLabel("mandarin", "Mandarin", "普通话"),
    SkillLabel("sales", "Sales", "销售"),
)


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Panel sign-in: supervisors and admins (agents get a user each from `agents`).
    users: tuple[WebUserSettings, ...] = ()
    not_ready_reasons: tuple[NotReadyReason, ...] = DEFAULT_NOT_READY_REASONS
    # A panel session ends after this long without a request (an open panel counts as
    # activity), and in any case this long after sign-in.
    session_idle_s: float = 30 * 60.0
    session_max_s: float = 12 * 3600.0
    # Failed sign-ins allowed per username and address within the window, then 429.
    login_max_failures: int = 5
    login_window_s: float = 300.0
    # And across the board: per username from any address (a botnet guessing one account), per
    # address for any username (one source spraying a password over many accounts).
    login_max_failures_per_user: int = 20
    login_max_failures_per_address: int = 20
    # Disposition codes offered in after-call work (labels in English and Chinese).
    wrap_up_codes: tuple[WrapUpCode, ...] = DEFAULT_WRAP_UP_CODES
    # Skills by name in the panel (the routing reason, the agent's skills); a skill not listed
    # shows its YAML name.
    skill_labels: tuple[SkillLabel, ...] = DEFAULT_SKILL_LABELS
    # A Ready agent whose panel sees no keyboard or mouse for this long goes Not Ready ("idle"); 0 = off.
    idle_not_ready_s: float = 600.0


@dataclass(frozen=True)
class SpeechConfig:
    """Spoken answers in IVR menus (`words:` in flow files). Offline engines only."""

    engine: Literal["pocketsphinx", "vosk"] = "pocketsphinx"
    # vosk: the model directory (required). pocketsphinx: a language directory, or empty
    # for the bundled US English model.
    model_path: str | None = None
    min_confidence: float = 0.25


@dataclass(frozen=True)
class RetrySettings:
    after_s: float
    max_attempts: int


@dataclass(frozen=True)
class WindowSettings:
    """When customers may be called, in each customer's own time zone."""

    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat")
    start: str = "09:00"
    end: str = "21:00"


@dataclass(frozen=True)
class ExclusionSettings:
    attribute: str
    equals: str


@dataclass(frozen=True)
class TrunkRouteSettings:
    prefix: str = ""
    trunk: str = "carrier"


@dataclass(frozen=True)
class CampaignSettings:
    """An outbound campaign: its list is imported into PostgreSQL (python -m app import-leads)."""

    name: str
    queue: str  # the agents who take its calls: this queue's members, groups and skills
    mode: Literal["preview", "progressive", "predictive"] = "progressive"
    active: bool = True  # the kill switch; also live through the API
    # Preview mode: how long the panel's card counts down before the customer is handed back
    # (skipped, no attempt spent) if the agent has neither called nor skipped.
    preview_hold_s: float = 60.0
    caller_id: str | None = None  # default: carrier.caller_id, then the first DID
    ring_s: float = 25.0  # at least 15 s before giving up on an unanswered call
    connect_window_s: float = 2.0  # a live answer reaches an agent, or hears the message, within
    max_lines_per_agent: float = 3.0
    abandon_target_pct: float = 3.0  # of live answers, per campaign
    amd: bool = True  # answering-machine detection
    on_machine: Literal["message", "hangup"] = "hangup"
    message: tuple[PromptText, ...] = (
        PromptText("Hello, this is Lianluo calling. Sorry we could not connect you. We will call again."),
    )
    machine_message: tuple[PromptText, ...] = (
        PromptText("Hello, this is Lianluo. Please call us back at your convenience. Thank you."),
    )
    timezone: str = "UTC"  # for customers whose own time zone is unknown
    window: WindowSettings = WindowSettings()
    # Per result (busy, no_answer, machine, congestion, failed, abandoned): pause and limit.
    retries: dict[str, RetrySettings] = field(default_factory=dict)
    max_attempts: int = 6
    lockout_after_abandon_s: float = 72 * 3600.0
    exclude: tuple[ExclusionSettings, ...] = ()
    trunks: tuple[TrunkRouteSettings, ...] = ()  # least-cost by prefix; empty: all via the carrier
    # Blending: agents who also answer these inbound queues take campaign calls only while no
    # caller waits there and their service level meets `blend_service_level_pct`.
    blend_with: tuple[str, ...] = ()
    blend_service_level_pct: float = 80.0
    # How its agents take its customers (see AgentSettings.outbound_line, which wins): default
    # "nailed" for predictive and progressive; preview always rings the agent first.
    agent_line: Literal["nailed", "ringing"] | None = None


@dataclass(frozen=True)
class CallLimit:
    per_hour: int
    per_day: int


@dataclass(frozen=True)
class OutboundSettings:
    """Which numbers the center may call, for what, and how often (app/domain/outbound.py).
    The defaults are mainland China's mobiles and landlines, nothing abroad."""

    country_code: str = "86"
    international_prefix: str = "00"
    national_prefix: str = "0"
    # Kinds of number the trunks may dial, in national form: name -> regular expression.
    numbers: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KINDS))
    # National-form prefixes never called, even where a kind matches (premium-rate ranges).
    deny: tuple[str, ...] = ()
    # Numbers with another country code; allowed ones are of the kind "international".
    international: bool = False
    # callback / transfer / dialer / expert / fax -> the kinds it may reach (not named: all).
    purposes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    per_number: CallLimit = CallLimit(per_hour=4, per_day=10)
    per_trunk: CallLimit = CallLimit(per_hour=1000, per_day=10000)
    # Send what the IVR collected (X-Lianluo-Data) on calls through the carrier too, as on our
    # own phones' calls. Off: the carrier gets the interaction's id alone.
    call_data: bool = False

    def dial_plan(self) -> DialPlan:
        return DialPlan(
            country_code=self.country_code,
            international_prefix=self.international_prefix,
            national_prefix=self.national_prefix,
            kinds=tuple(self.numbers.items()),
            denied_prefixes=self.deny,
            international=self.international,
            purposes={Purpose(k): v for k, v in self.purposes.items()},
            per_number_hour=self.per_number.per_hour,
            per_number_day=self.per_number.per_day,
            per_trunk_hour=self.per_trunk.per_hour,
            per_trunk_day=self.per_trunk.per_day,
            call_data=self.call_data,
        )


@dataclass(frozen=True)
class SipBanSettings:
    """fail2ban's Asterisk jail inside the product (app/security/): a source with
    `max_failures` failed SIP authentications within `find_time_s` is refused by Asterisk for
    `ban_time_s`."""

    enabled: bool = True
    max_failures: int = 10
    find_time_s: float = 600.0
    ban_time_s: float = 600.0
    # A source banned again within a day is banned twice as long as the time before, up to this.
    max_ban_time_s: float = 7 * 86400.0
    # Addresses or networks never banned. The carrier trunk's `match` addresses are added:
    # a trunk is identified by address, and banning it would cut every inbound call.
    allow: tuple[str, ...] = ("127.0.0.1/32",)


@dataclass(frozen=True)
class AdmissionLimit:
    calls_per_s: float
    burst: int
    # None: as many as the RTP port range carries (asterisk.rtp_start..rtp_end, two ports per
    # leg, two legs per answered call), so a flood is refused before the ports run out.
    concurrent: int | None = None


@dataclass(frozen=True)
class CallLimitSettings:
    """Calls refused at the door (503, before answering) over these limits (app/domain/admission.py):
    per source address, and per trunk (the carrier) for all its addresses together."""

    enabled: bool = True
    per_source: AdmissionLimit = AdmissionLimit(calls_per_s=10, burst=50)
    per_trunk: AdmissionLimit = AdmissionLimit(calls_per_s=20, burst=100)


@dataclass(frozen=True)
class SecuritySettings:
    sip_bans: SipBanSettings = SipBanSettings()
    call_limits: CallLimitSettings = CallLimitSettings()


@dataclass(frozen=True)
class RecordingRuleSettings:
    """One recording rule: `all`, `none`, or `sample` with `percent` of the calls."""

    mode: Literal["all", "sample", "none"] = "all"
    percent: float = 100.0
    # Kept this many days, then deleted by the retention job; 0 = kept for ever.
    retention_days: int = 90
    # Callers waiting in a queue hear `recording.consent_prompt` (where the rule records at all);
    # on a call we place (a callback, a campaign's call), the customer hears it as the agent is
    # joined, where this call is recorded.
    consent: bool = True

    def rule(self) -> RecordingRule:
        return RecordingRule(RecordingMode(self.mode), self.percent, self.retention_days, self.consent)


@dataclass(frozen=True)
class TranscriptSettings:
    """Transcripts of recordings (app/recording/transcripts.py), made after the call by a pool of
    niced worker processes; each side of the stereo file on its own, so each line says who spoke."""

    enabled: bool = False
    # pocketsphinx: the bundled US English model (or model_path, a language directory with an
    # acoustic model folder, one *.lm.bin and one *.dict). vosk: model_path is its model directory.
    engine: Literal["pocketsphinx", "vosk"] = "pocketsphinx"
    model_path: str | None = None
    # Worker processes, each transcribing one recording at a time at a lower priority (nice).
    workers: int = 1
    nice: int = 10
    # A pause longer than this between two words of one side starts a new line.
    line_pause_s: float = 0.8
    # A failed job is tried this many times in all, waiting retry_s, then twice that, ...
    max_attempts: int = 3
    retry_s: float = 30.0


@dataclass(frozen=True)
class RecordingSettings:
    """Call recording (app/recording/): one stereo file per interaction, from the agent's
    answer until the caller leaves; the most specific rule decides (campaign, queue, direction,
    default)."""

    enabled: bool = False
    # Where the files go; relative to var_dir.
    directory: str = "recordings"
    default: RecordingRuleSettings = RecordingRuleSettings()
    queues: dict[str, RecordingRuleSettings] = field(default_factory=dict)
    campaigns: dict[str, RecordingRuleSettings] = field(default_factory=dict)
    directions: dict[str, RecordingRuleSettings] = field(default_factory=dict)
    consent_prompt: Prompts = (
        PromptText("This call may be recorded for quality and training.", "en"),
        PromptText("您的通话可能会被录音，用于服务质量和培训。", "zh"),
    )
    # How often the retention job looks for expired recordings.
    retention_check_s: float = 3600.0
    # An agent may replay the recordings of their own calls in the QA desk.
    agents_hear_own: bool = False
    # A directory of QA scoring forms, one YAML file per form (relative to this file).
    forms: str | None = None
    # Record the caller's time in the IVR too (a second file of the interaction, paused in
    # flow nodes marked `sensitive: true`), with the default rule's retention.
    ivr: bool = False
    transcripts: TranscriptSettings = TranscriptSettings()

    def policy(self) -> RecordingPolicy:
        return RecordingPolicy(
            default=self.default.rule(),
            queues={k: v.rule() for k, v in self.queues.items()},
            campaigns={k: v.rule() for k, v in self.campaigns.items()},
            directions={k: v.rule() for k, v in self.directions.items()},
        )


@dataclass(frozen=True)
class FaxDocumentSettings:
    """A document callers may ask for by fax: its keypad code, its title in English (`en`) and
    Mandarin (`zh`), and its PDF (relative to this file). A PDF that cannot be read is reported
    at start with this entry's line, and left out; the other documents still go."""

    code: str
    en: str
    pdf: str
    zh: str = ""
    # Where the entry's `pdf` is written, for that report; not read from YAML.
    line: int | None = field(default=None, metadata={"internal": True})


@dataclass(frozen=True)
class FaxSettings:
    """Fax-on-demand (the IVR's `fax` node) and inbound fax (app/fax/)."""

    documents: tuple[FaxDocumentSettings, ...] = ()
    paper: Literal["a4", "letter"] = "a4"
    # Numbers that only take faxes (ReceiveFAX), e.g. ["7002"]; the carrier delivers them too.
    dids: tuple[str, ...] = ()
    # Offer T.38 (fax over UDPTL) on the carrier trunk: a fax session asks the far end to switch
    # to it, and falls back to G.711 audio when the far end will not.
    t38: bool = False
    # Listen for a fax machine's calling tone (CNG) on the voice numbers (carrier.dids; only
    # `detect_dids` when given) for the first `detect_window_s` seconds of the call, i.e. the
    # greeting and menu: a fax machine heard there is received like one on a fax number. A
    # person's call is not delayed: Asterisk only listens.
    detect_on_voice: bool = False
    detect_dids: tuple[str, ...] = ()
    detect_window_s: int = 20
    # Our fax station id (what the other machine shows); default: carrier.caller_id.
    station_id: str | None = None
    # Received faxes go to these people as PDF; smtp: voicemail's when not given.
    email_to: tuple[str, ...] = ()
    smtp: SmtpSettings | None = None
    max_documents: int = 5  # one caller's choice, per fax
    # Callers may key a fax number to have the documents sent there later (a job), when it
    # starts with one of these prefixes (and the outbound policy allows it); empty: not offered.
    numbers: tuple[str, ...] = ()
    # Jobs (a fax sent to a number, POST /api/faxes/jobs): tries, the pause after a busy,
    # unanswered or failed try, how long the far end rings, and jobs a day to one number.
    job_attempts: int = 3
    job_retry_after_s: float = 300.0
    job_ring_s: float = 45.0
    job_daily_limit: int = 5
    # PDFs uploaded to fax (the agent's call box, the fax desk): the largest file taken, and the
    # most pages (a long upload would hold the line, and the far end's paper, for an hour).
    max_upload_mb: float = 10.0
    max_upload_pages: int = 30
    # Jobs on the line at the same time (each a call through the carrier).
    job_lines: int = 2

    def detected_on(self, voice_dids: tuple[str, ...]) -> tuple[str, ...]:
        """The voice numbers where a fax machine's calling tone is listened for."""
        if not self.detect_on_voice:
            return ()
        return tuple(d for d in voice_dids if not self.detect_dids or d in self.detect_dids)


@dataclass(frozen=True)
class DatabaseSettings:
    # None: DATABASE_URL, else the local server on 127.0.0.1:5432, else a private cluster.
    url: str | None = None


def rtp_call_capacity(s: Settings) -> int:
    """Calls the RTP port range carries at once: two ports (RTP, RTCP) per leg, the caller's leg
    and an agent's."""
    return (s.asterisk.rtp_end - s.asterisk.rtp_start + 1) // 4


def call_limits(s: Settings) -> CallLimits | None:
    """The admission limits, with unset concurrency filled in from the RTP range; None: off."""
    c = s.security.call_limits
    if not c.enabled:
        return None
    capacity = rtp_call_capacity(s)

    def limit(a: AdmissionLimit) -> Limit:
        return Limit(a.calls_per_s, a.burst, a.concurrent if a.concurrent is not None else capacity)

    return CallLimits(limit(c.per_source), limit(c.per_trunk), frozenset({s.carrier.name}))


@dataclass(frozen=True)
class ExpertHoursSettings:
    """When an expert takes calls, in their own time zone (the expert's `timezone`)."""

    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: str = "09:00"
    end: str = "18:00"


@dataclass(frozen=True)
class ExpertSettings:
    """One expert outside the center (app/domain/experts.py). Reached through `agent` (an agent
    account of the center with `role: expert`: their phone, and the panel for the preview) or
    `number` (an outside number, through the carrier and the outbound policy)."""

    id: str
    name: str
    agent: str | None = None
    number: str | None = None
    # expertise tag -> level 1..10
    expertise: dict[str, int] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("en",)
    timezone: str = "UTC"
    hours: ExpertHoursSettings | None = None  # none: any time
    max_calls: int = 1
    # An outside expert gets a one-time link to the offer's preview here (needs voicemail.smtp).
    email: str | None = None


@dataclass(frozen=True)
class ExpertGroupSettings:
    name: str
    # How long an offer waits for Accept or Reject before the next expert is offered the call.
    offer_s: float = 15.0
    # The expertise tag whose level ranks the group's members (none: longest idle only).
    expertise: str | None = None
    # Agent groups allowed to ask this group (empty: every agent).
    asked_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExpertsSettings:
    groups: tuple[ExpertGroupSettings, ...] = ()
    directory: tuple[ExpertSettings, ...] = ()
    # The Not Ready reason of an expert who let an offer time out.
    no_response_reason: str = "no response"
    # How long an outside number rings before the next expert is tried.
    number_ring_s: float = 30.0
    # An outside expert hears a summary on answering, then has this long to press 1 (take) or 2.
    key_s: float = 10.0
    # The one-time link to the preview: how long it lives, and the address it starts with
    # (default: the panel's, http://web.host:web.port).
    link_ttl_s: float = 600.0
    link_base_url: str | None = None


def tile_thresholds(s: Settings) -> TileThresholds:
    """When the wallboard colours a queue's tile (`supervision.tiles`)."""
    t = s.supervision.tiles
    return TileThresholds(t.amber_wait_s, t.red_wait_s, t.amber_below_percent, t.red_below_percent)


def ban_rules(s: Settings) -> BanRules:
    """The SIP ban rule's settings: the allow-list with the carrier trunk's addresses added."""
    b = s.security.sip_bans
    allow = [ipaddress.ip_network(a, strict=False) for a in b.allow]
    for match in s.carrier.match:
        try:
            allow.append(ipaddress.ip_network(match, strict=False))
        except ValueError:
            pass  # a host name: Asterisk resolves it; nothing to allow here
    return BanRules(
        b.max_failures,
        b.find_time_s,
        b.ban_time_s,
        tuple(dict.fromkeys(allow)),
        max_ban_time_s=b.max_ban_time_s,
    )


@dataclass(frozen=True)
class MailCatcherSettings:
    """A small SMTP server inside the center that keeps every message in a Maildir, for a demo or
    a trial with no mail server: voicemail and fax e-mails can then be read on this machine."""

    port: int = 2525  # on 127.0.0.1 only; voicemail.smtp must point here
    maildir: str = "mail"  # under var_dir
    # What it keeps in all; past that new mail is refused (and the center logs it), so nothing
    # that reaches the loopback port can fill the disk through it.
    max_mb: int = 500


@dataclass(frozen=True)
class SampleCustomer:
    name: str
    phone: str
    tier: str = "medium"
    vip: bool = False
    # The language they are served in (customers.language): the language step is skipped.
    language: Literal["en", "zh"] | None = None


@dataclass(frozen=True)
class SampleAccount:
    account_number: str
    balance: float
    customer_phone: str | None = None


@dataclass(frozen=True)
class SampleOrder:
    order_number: str
    status: str  # spoken as written


@dataclass(frozen=True)
class SampleData:
    """Rows the demo's journeys need (a VIP caller, a balance, an order): added at start where
    missing, never overwriting a row someone changed."""

    customers: tuple[SampleCustomer, ...] = ()
    accounts: tuple[SampleAccount, ...] = ()
    orders: tuple[SampleOrder, ...] = ()


@dataclass(frozen=True)
class TileSettings:
    """When a queue's tile on the wallboard turns amber, then red: a caller has waited at least
    `*_wait_s`, or today's service level is under `*_below_percent`."""

    amber_wait_s: float = 60.0
    red_wait_s: float = 120.0
    amber_below_percent: float = 80.0
    red_below_percent: float = 60.0


@dataclass(frozen=True)
class SupervisionSettings:
    # Callers who give up sooner than this are "short abandons": counted apart on the wallboard
    # and left out of the service level.
    short_abandon_s: float = 5.0
    # The reports' summary of a day (its calls' facts, its agents' time) is written this long
    # after the center's midnight ends it, so that the day's last events are saved first.
    summary_after_min: float = 5.0
    tiles: TileSettings = TileSettings()


@dataclass(frozen=True)
class Settings:
    center_name: str = "Lianluo"
    # The center's time zone: where "today" starts on the wallboard and in reports.
    timezone: str = "UTC"
    # The languages callers are served in (README, "Languages"), the first the default. Every
    # prompt a caller may hear needs a segment in each: loading refuses one without.
    languages: tuple[Literal["en", "zh"], ...] = ("en",)
    ari_app: str = "lianluo"
    var_dir: str = "var"
    asterisk: AsteriskSettings = AsteriskSettings()
    carrier: CarrierSettings = CarrierSettings()
    agents: tuple[AgentSettings, ...] = ()
    queues: tuple[QueueSettings, ...] = (QueueSettings("general"),)
    routing: RoutingSettings = RoutingSettings()
    ivr: IvrSettings = IvrSettings()
    web: WebSettings = WebSettings()
    voicemail: VoicemailSettings = VoicemailSettings()
    speech: SpeechConfig | None = None
    campaigns: tuple[CampaignSettings, ...] = ()
    outbound: OutboundSettings = OutboundSettings()
    security: SecuritySettings = SecuritySettings()
    supervision: SupervisionSettings = SupervisionSettings()
    database: DatabaseSettings = DatabaseSettings()
    experts: ExpertsSettings = ExpertsSettings()
    recording: RecordingSettings = RecordingSettings()
    fax: FaxSettings = FaxSettings()
    mail_catcher: MailCatcherSettings | None = None
    sample_data: SampleData = SampleData()
    # Where this configuration came from, for messages; not read from YAML.
    source: str = field(default="<defaults>", metadata={"internal": True})


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def sip_accounts(s: Settings) -> tuple[AgentSettings, ...]:
    """Every SIP account: the agents', then the supervisors' who listen to calls (`phone: true`
    in web.users), made the same way (digest password, one registered phone, a fixed contact or
    the browser softphone)."""
    supervisors = tuple(
        AgentSettings(u.username, u.name, contact=u.contact, webrtc=u.webrtc) for u in s.web.users if u.phone
    )
    return (*s.agents, *supervisors)


def compose_file(path: Path) -> yaml.Node | None:
    """A YAML file's node tree (None when empty), kept with line numbers for error messages."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=file, line=None, field_path="") from exc
    except UnicodeDecodeError as exc:
        bad_line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=file, line=bad_line, field_path=""
        ) from exc
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(
            f"malformed YAML: {exc.problem or exc}", file=file, line=line, field_path=""
        ) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (control characters)
        at_line = text[: exc.position].count("\n") + 1
        what = f"malformed YAML: character {exc.character!r} is not allowed"
        raise ConfigError(what, file=file, line=at_line, field_path="") from exc


def load_settings(path: str | Path) -> Settings:
    path = Path(path)
    file = str(path)
    node = compose_file(path)
    reader = _Reader(file)
    settings = Settings() if node is None else reader.read(Settings, node, "")
    settings = dataclasses.replace(settings, source=file)
    _check_semantics(settings, file, reader.lines)
    return _with_fax_lines(settings, reader.lines)


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        # field path -> line, so checks made after reading can still point at a line
        self.lines: dict[str, int] = {}

    def fail(self, node: yaml.Node | None, path: str, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return ConfigError(message, file=self.file, line=line, field_path=path)

    def read(self, tp: Any, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                if type(None) in args:
                    return None
            inner = [a for a in args if a is not type(None)]
            return self.read(inner[0], node, path)
        if dataclasses.is_dataclass(tp):
            return self.read_dataclass(tp, node, path)
        if origin is tuple:
            if isinstance(node, yaml.MappingNode) and dataclasses.is_dataclass(args[0]):
                return (self.read(args[0], node, path),)  # one item may be written without a list
            if not isinstance(node, yaml.SequenceNode):
                raise self.fail(node, path, f"expected a list, got {_describe(node)}")
            return tuple(self.read(args[0], item, f"{path}[{i}]") for i, item in enumerate(node.value))
        if origin is dict:
            if not isinstance(node, yaml.MappingNode):
                raise self.fail(node, path, f"expected a mapping, got {_describe(node)}")
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.read(args[0], key_node, f"{path}.{key_node.value}")
                out[key] = self.read(args[1], value_node, f"{path}.{key_node.value}")
            return out
        if origin is Literal:
            value = self.scalar(node, path)
            if value not in args:
                choices = ", ".join(repr(a) for a in args)
                raise self.fail(node, path, f"expected one of {choices}, got {value!r}")
            return value
        if tp is str:
            value = self.scalar(node, path)
            if isinstance(value, bool) or value is None:
                raise self.fail(node, path, f"expected text, got {node.value!r}")
            return str(value) if isinstance(value, int) else _require(self, node, path, value, str, "text")
        if tp is bool:
            return _require(self, node, path, self.scalar(node, path), bool, "true or false")
        if tp is int:
            value = self.scalar(node, path)
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(node, path, f"expected an integer, got {node.value!r}")
            return value
        if tp is float:
            value = self.scalar(node, path)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(node, path, f"expected a number, got {node.value!r}")
            return float(value)
        raise TypeError(f"unsupported settings type {tp!r} at {path}")  # a bug in this module

    def scalar(self, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, path, f"expected a single value, got {_describe(node)}")
        reference = _ENV_REFERENCE.fullmatch(node.value) if isinstance(node.value, str) else None
        if reference is None:
            return _construct(node)
        # A value written as ${NAME} or ${NAME:-default} comes from the environment, as in a
        # compose file: the containers' file takes the published address this way. Only a whole
        # value is replaced, so a prompt's text with a dollar sign stays as written.
        name, default = reference.group(1), reference.group(3)
        value = os.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                message = f"environment variable {name} is not set, and ${{{name}}} has no default"
                raise self.fail(node, path, message)
            value = default
        loader = yaml.SafeLoader("")
        try:  # typed as if written in the file ("5062" is a number), but "" is empty text
            tag = loader.resolve(yaml.ScalarNode, value, (value != "", value == ""))  # type: ignore[no-untyped-call]
        finally:
            loader.dispose()
        return _construct(yaml.ScalarNode(tag, value, node.start_mark, node.end_mark))

    def read_dataclass(self, tp: Any, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, path or "(top level)", f"expected a mapping, got {_describe(node)}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if not f.metadata.get("internal")}
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            sub = f"{path}.{key}" if path else str(key)
            if key not in fields:
                known = ", ".join(sorted(fields))
                raise self.fail(key_node, sub, f"unknown field (known fields: {known})")
            if key in values:
                raise self.fail(key_node, sub, "given twice")
            values[key] = self.read(hints[key], value_node, sub)
        for name, f in fields.items():
            if (
                name not in values
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            ):
                raise self.fail(node, f"{path}.{name}" if path else name, "required field is missing")
        return tp(**values)


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")


def _construct(node: yaml.ScalarNode) -> Any:
    # Resolve the scalar exactly as safe_load would (int, float, bool, null, str).
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _require(reader: _Reader, node: yaml.Node, path: str, value: Any, tp: type, what: str) -> Any:
    if not isinstance(value, tp):
        raise reader.fail(node, path, f"expected {what}, got {node.value!r}")
    return value


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)


def _check_nat(a: AsteriskSettings, bad: Callable[[str, str], ConfigError]) -> None:
    if a.external_address and not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", a.external_address):
        raise bad("asterisk.external_address", f"not a host name or address: {a.external_address!r}")
    if a.external_sip_port is not None and not 1 <= a.external_sip_port <= 65535:
        raise bad("asterisk.external_sip_port", f"port {a.external_sip_port} is out of range 1-65535")
    for i, net in enumerate(a.local_nets):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise bad(f"asterisk.local_nets[{i}]", f"not an IP network: {net!r}") from exc
    # (external_sip_port without an address is ignored: the containers' file always sets it.)
    if a.external_address and not a.local_nets:
        # Without them every phone counts as outside, and the phones next to Asterisk would be
        # sent to the NAT's address for their audio.
        raise bad(
            "asterisk.external_address",
            "needs asterisk.local_nets: the networks whose phones reach Asterisk directly"
            " (e.g. the compose network)",
        )


def _check_outbound(o: OutboundSettings, bad: Callable[[str, str], ConfigError]) -> None:
    for path, value in (
        ("outbound.country_code", o.country_code),
        ("outbound.international_prefix", o.international_prefix),
        ("outbound.national_prefix", o.national_prefix),
    ):
        if not re.fullmatch(r"[0-9]{0,4}", value) or (path == "outbound.country_code" and not value):
            raise bad(path, f"digits expected, got {value!r}")
    if not o.numbers:
        raise bad("outbound.numbers", "name at least one kind of number, or the center can call nobody")
    for name, pattern in o.numbers.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            raise bad(f"outbound.numbers.{name}", "a kind's name is 1-32 of a-z, 0-9 and '_'")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise bad(f"outbound.numbers.{name}", f"not a regular expression: {exc}") from exc
    for i, prefix in enumerate(o.deny):
        if not re.fullmatch(r"[0-9]{1,20}", prefix):
            raise bad(f"outbound.deny[{i}]", f"a number prefix (digits), got {prefix!r}")
    kinds = set(o.numbers) | ({"international"} if o.international else set())
    for purpose, allowed in o.purposes.items():
        if purpose not in {p.value for p in Purpose}:
            choices = ", ".join(p.value for p in Purpose)
            raise bad(f"outbound.purposes.{purpose}", f"unknown purpose (one of {choices})")
        for i, kind in enumerate(allowed):
            if kind not in kinds:
                raise bad(
                    f"outbound.purposes.{purpose}[{i}]",
                    f"no kind of number {kind!r} (outbound.numbers has {', '.join(sorted(kinds))})",
                )
    for path, limit in (("outbound.per_number", o.per_number), ("outbound.per_trunk", o.per_trunk)):
        if limit.per_hour < 1 or limit.per_day < limit.per_hour:
            raise bad(path, "per_hour must be at least 1 and per_day at least per_hour")


_AGENT_ID = re.compile(r"^[0-9]{2,8}$")
_DID = re.compile(r"^\+?[0-9]{2,20}$")
_SIP_URI = re.compile(r"sips?:[^\s;,]+")


def _check_mail_catcher(s: Settings, bad: Callable[[str, str], ConfigError]) -> None:
    catcher = s.mail_catcher
    if catcher is None:
        return
    if not 1 <= catcher.port <= 65535:
        raise bad("mail_catcher.port", f"port {catcher.port} is out of range 1-65535")
    if not 1 <= catcher.max_mb <= 1_000_000:
        raise bad("mail_catcher.max_mb", f"must be 1-1000000 (megabytes), got {catcher.max_mb}")
    if not catcher.maildir or Path(catcher.maildir).is_absolute() or ".." in Path(catcher.maildir).parts:
        raise bad("mail_catcher.maildir", f"a directory under var_dir, got {catcher.maildir!r}")
    smtp = s.voicemail.smtp
    if (smtp.host, smtp.port) not in (("127.0.0.1", catcher.port), ("localhost", catcher.port)):
        raise bad(
            "voicemail.smtp",
            f"the mail catcher listens on 127.0.0.1:{catcher.port} but mail goes to {smtp.host}:{smtp.port};"
            " point voicemail.smtp there or remove mail_catcher",
        )


def _check_sample_data(data: SampleData, bad: Callable[[str, str], ConfigError]) -> None:
    phones = {c.phone for c in data.customers}
    for i, c in enumerate(data.customers):
        if not re.fullmatch(r"\+?[0-9]{2,20}", c.phone):
            raise bad(f"sample_data.customers[{i}].phone", f"a phone number (digits), got {c.phone!r}")
        if c.tier not in ("top", "high", "medium", "low"):
            raise bad(f"sample_data.customers[{i}].tier", f"one of top, high, medium, low; got {c.tier!r}")
    for i, a in enumerate(data.accounts):
        if not re.fullmatch(r"[0-9]{4,20}", a.account_number):
            raise bad(f"sample_data.accounts[{i}].account_number", f"digits, got {a.account_number!r}")
        if a.customer_phone is not None and a.customer_phone not in phones:
            raise bad(
                f"sample_data.accounts[{i}].customer_phone", f"no sample customer has {a.customer_phone!r}"
            )
    for i, o in enumerate(data.orders):
        if not re.fullmatch(r"[0-9]{4,12}", o.order_number):
            raise bad(f"sample_data.orders[{i}].order_number", f"digits, got {o.order_number!r}")
        if not o.status.strip():
            raise bad(f"sample_data.orders[{i}].status", "say the order's status in words")


# Heard by the agent, not the caller: spoken in whatever the configuration gives.
_AGENT_PROMPTS = ("callback_whisper", "callback_unreached")


def caller_prompts(s: Settings) -> list[tuple[str, Prompts]]:
    """Every center-file prompt a caller (or a customer we call) may hear, with its field path."""
    out = [
        (f"ivr.{f.name}", getattr(s.ivr, f.name))
        for f in dataclasses.fields(IvrSettings)
        if f.type in ("Prompts", Prompts) and f.name not in _AGENT_PROMPTS
    ]
    if s.recording.enabled:
        out.append(("recording.consent_prompt", s.recording.consent_prompt))
    # What a customer the dialer reaches hears: the identifying message on an abandon, and the
    # message left on a machine where the campaign leaves one.
    for i, c in enumerate(s.campaigns):
        out.append((f"campaigns[{i}].message", c.message))
        if c.on_machine == "message":
            out.append((f"campaigns[{i}].machine_message", c.machine_message))
    return out


def _check_languages(
    s: Settings, file: str, lines: dict[str, int], bad: Callable[[str, str], ConfigError]
) -> None:
    """Each offered language once; every prompt a caller may hear has a segment in each. A
    prompt left at its built-in default (English) is named with the `languages` line, since
    it has none of its own: set it in the file with a segment in every language."""
    if not s.languages:
        raise bad("languages", "offer at least one language, e.g. [en]")
    if len(set(s.languages)) != len(s.languages):
        raise bad("languages", f"a language is given twice: {list(s.languages)}")
    for path, prompt in caller_prompts(s):
        missing = missing_languages(prompt, s.languages)
        if not missing:
            continue
        if s.ivr.flows is not None and path in ("ivr.greeting", "ivr.invalid", "ivr.no_input"):
            continue  # the flows replace these (their own prompts are checked with them)
        given = path in lines or any(k.startswith(path + "[") for k in lines)
        where = path if given else "languages"
        hint = "" if given else f" (`{path}` is not set in this file: its built-in text is English only)"
        raise ConfigError(
            f"no text in {', '.join(missing)}; the center offers {', '.join(s.languages)},"
            f" so every prompt needs a segment in each{hint}",
            file=file,
            line=lines.get(where) or lines.get(f"{where}[0]"),
            field_path=path,
        )
    if "zh" in s.languages:
        for i, doc in enumerate(s.fax.documents):
            if not doc.zh.strip():
                raise bad(
                    f"fax.documents[{i}].zh", "the center offers zh: give the document's Mandarin title"
                )


def _check_semantics(s: Settings, file: str, lines: dict[str, int]) -> None:
    """Rules that span fields or need more than a type check."""

    def bad(path: str, message: str) -> ConfigError:
        return ConfigError(message, file=file, line=lines.get(path), field_path=path)

    ports = {
        "asterisk.sip_port": s.asterisk.sip_port,
        "asterisk.http_port": s.asterisk.http_port,
        "asterisk.ami_port": s.asterisk.ami_port,
        "web.port": s.web.port,
    }
    if any(account.webrtc for account in sip_accounts(s)):  # the TLS listener exists only then
        ports["asterisk.wss_port"] = s.asterisk.wss_port
    for path, port in ports.items():
        if not 1 <= port <= 65535:
            raise bad(path, f"port {port} is out of range 1-65535")
    seen: dict[int, str] = {}
    for path, port in ports.items():
        if port in seen:
            # Point at the one the file actually sets; the other may be a default.
            here, other = (
                (path, seen[port]) if path in lines or seen[port] not in lines else (seen[port], path)
            )
            raise bad(here, f"port {port} is already used by {other}")
        seen[port] = path
    if not (1024 <= s.asterisk.rtp_start < s.asterisk.rtp_end <= 65535):
        raise bad("asterisk.rtp_start", "RTP range must satisfy 1024 <= rtp_start < rtp_end <= 65535")
    if not re.fullmatch(r"[a-z0-9_-]{1,32}", s.asterisk.instance):
        raise bad("asterisk.instance", "use 1-32 characters from a-z, 0-9, '_' and '-'")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", s.ari_app):
        raise bad("ari_app", "use 1-32 characters from letters, digits, '_' and '-'")
    try:
        ipaddress.ip_address(s.asterisk.wss_bind)
    except ValueError as exc:
        raise bad("asterisk.wss_bind", f"not an IP address: {s.asterisk.wss_bind!r}") from exc
    try:
        ipaddress.ip_address(s.asterisk.api_bind)
    except ValueError as exc:
        raise bad("asterisk.api_bind", f"not an IP address: {s.asterisk.api_bind!r}") from exc
    if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", s.asterisk.host):
        raise bad("asterisk.host", f"not a host name or address: {s.asterisk.host!r}")
    _check_nat(s.asterisk, bad)
    for i, addr in enumerate(s.carrier.match):
        try:
            ipaddress.ip_network(addr, strict=False)
        except ValueError as exc:
            raise bad(f"carrier.match[{i}]", f"not an IP address or network: {addr!r}") from exc
    for i, did in enumerate(s.carrier.dids):
        if not _DID.fullmatch(did):
            raise bad(f"carrier.dids[{i}]", f"not a phone number: {did!r}")
    if s.carrier.outbound_contact is not None and not _SIP_URI.fullmatch(s.carrier.outbound_contact):
        raise bad("carrier.outbound_contact", f"not a SIP URI: {s.carrier.outbound_contact!r}")
    if s.carrier.caller_id is not None and not _DID.fullmatch(s.carrier.caller_id):
        raise bad("carrier.caller_id", f"not a phone number: {s.carrier.caller_id!r}")
    ids: set[str] = set()
    for i, agent in enumerate(s.agents):
        if not _AGENT_ID.fullmatch(agent.id):
            raise bad(f"agents[{i}].id", f"agent id must be 2-8 digits, got {agent.id!r}")
        if agent.id in ids:
            raise bad(f"agents[{i}].id", f"agent id {agent.id} is given twice")
        if agent.contact is not None and not _SIP_URI.fullmatch(agent.contact):
            raise bad(f"agents[{i}].contact", f"not a SIP URI: {agent.contact!r}")
        if agent.webrtc and agent.contact is not None:
            raise bad(
                f"agents[{i}].webrtc",
                "a browser softphone registers from wherever the agent signs in; drop `contact`",
            )
        if agent.id in s.carrier.dids:
            raise bad(f"agents[{i}].id", f"agent id {agent.id} clashes with a carrier DID")
        ids.add(agent.id)
    groups: set[str] = set()
    for i, agent in enumerate(s.agents):
        groups.update(agent.groups)
        for skill, level in agent.skills.items():
            if (problem := skill_name_problem(skill)) is not None:
                raise bad(f"agents[{i}].skills", problem)
            if not 1 <= level <= 10:
                raise bad(f"agents[{i}].skills.{skill}", f"skill level must be 1-10, got {level}")
    queue_names: set[str] = set()
    for i, q in enumerate(s.queues):
        where = f"queues[{i}]"
        if not re.fullmatch(r"[a-z0-9_-]{1,40}", q.name):
            raise bad(f"{where}.name", f"use 1-40 characters from a-z, 0-9, '_' and '-', got {q.name!r}")
        if q.name in queue_names:
            raise bad(f"{where}.name", f"queue {q.name} is given twice")
        queue_names.add(q.name)
        for j, need in enumerate(q.skills):
            if (problem := skill_name_problem(need.skill)) is not None:
                raise bad(f"{where}.skills[{j}].skill", problem)
            if not 1 <= need.min_level <= 10:
                raise bad(f"{where}.skills[{j}].min_level", "must be 1-10")
        for j, member in enumerate(q.members):
            if member not in ids:
                raise bad(f"{where}.members[{j}]", f"no agent {member!r}")
        for tier in q.targets:
            if tier not in ("top", "high", "medium", "low"):
                raise bad(f"{where}.targets.{tier}", "tier must be one of top, high, medium, low")
        for tier, target in q.targets.items():
            if not (0 < target.percent <= 100 and target.seconds > 0):
                raise bad(f"{where}.targets.{tier}", "percent must be 0-100 and seconds positive")
        if q.announce_every_s != 0 and q.announce_every_s < 2:
            raise bad(f"{where}.announce_every_s", "0 (never) or at least 2 seconds")
        if q.ring_timeout_s <= 0 or q.wrap_up_s < 0 or q.sticky_s < 0:
            raise bad(f"{where}.ring_timeout_s", "ring_timeout_s must be positive; wrap_up_s, sticky_s >= 0")
        if q.offer.accept:
            problem = terms_problem(q.offer.offer_s, q.offer.no_response_reason)
            if problem is not None:
                field_name = "no_response_reason" if problem.startswith("no_response") else "offer_s"
                raise bad(f"{where}.offer.{field_name}", problem)
            if q.strategy == "ring_all":
                raise bad(
                    f"{where}.offer.accept", "a ring_all queue rings everyone at once: no one-by-one offers"
                )
        vm = q.voicemail
        if not re.fullmatch(r"[0-9*#]", vm.key):
            raise bad(f"{where}.voicemail.key", f"one key 0-9, * or #, got {vm.key!r}")
        if vm.offer and q.callback.offer and vm.key == q.callback.key:
            raise bad(f"{where}.voicemail.key", f"key {vm.key} is already the callback key")
        if not 5 <= vm.max_s <= 600 or not 1 <= vm.max_silence_s <= 60:
            raise bad(f"{where}.voicemail.max_s", "max_s must be 5-600 and max_silence_s 1-60")
        cb = q.callback
        if cb.offer and s.carrier.outbound_contact is None:
            raise bad(
                f"{where}.callback.offer",
                "callbacks need carrier.outbound_contact (where the carrier takes the calls we place)",
            )
        if not re.fullmatch(r"[0-9*#]", cb.key):
            raise bad(f"{where}.callback.key", f"one key 0-9, * or #, got {cb.key!r}")
        if cb.max_attempts < 1:
            raise bad(f"{where}.callback.max_attempts", "must be at least 1")
        if cb.retry_after_s < 0 or cb.customer_ring_s < 15:
            raise bad(
                f"{where}.callback.customer_ring_s",
                "the customer's phone rings at least 15 s; retry_after_s >= 0",
            )
    for i, q in enumerate(s.queues):
        for j, rule in enumerate(q.overflow):
            if rule.to_queue not in queue_names or rule.to_queue == q.name:
                raise bad(f"queues[{i}].overflow[{j}].to_queue", f"no other queue named {rule.to_queue!r}")
            conditions = (rule.max_wait_s, rule.max_length, rule.expected_wait_over_s, rule.asa_over_s)
            if all(c is None for c in conditions) and not rule.when_no_agents:
                raise bad(
                    f"queues[{i}].overflow[{j}]",
                    "give a condition: max_wait_s, max_length, when_no_agents,"
                    " expected_wait_over_s or asa_over_s",
                )
            if any(c is not None and c < 0 for c in conditions):
                raise bad(f"queues[{i}].overflow[{j}]", "overflow thresholds must be >= 0")
    # Overflow must not loop: a caller bounced between queues would never be served.
    edges = {q.name: [rule.to_queue for rule in q.overflow] for q in s.queues}
    for i, q in enumerate(s.queues):
        seen_q, stack = {q.name}, list(edges[q.name])
        while stack:
            nxt = stack.pop()
            if nxt == q.name:
                raise bad(f"queues[{i}].overflow", f"overflow from {q.name} leads back to {q.name}")
            if nxt not in seen_q:
                seen_q.add(nxt)
                stack.extend(edges.get(nxt, []))
    digits: set[str] = set()
    for i, option in enumerate(s.ivr.menu):
        if not re.fullmatch(r"[0-9*#]", option.digit):
            raise bad(f"ivr.menu[{i}].digit", f"one key 0-9, * or #, got {option.digit!r}")
        if option.digit in digits:
            raise bad(f"ivr.menu[{i}].digit", f"key {option.digit} is used twice")
        digits.add(option.digit)
        if option.queue not in queue_names:
            raise bad(f"ivr.menu[{i}].queue", f"no queue named {option.queue!r}")
        for lang, text in option.label.items():
            if lang not in ("en", "zh") or not text.strip():
                raise bad(f"ivr.menu[{i}].label", "give labels as en and zh text")
    allowed: dict[str, set[str]] = {
        "position": {"position"},
        "expected_wait": {"minutes"},
        "expected_wait_short": set(),
        "callback_offer": {"key"},
        "callback_confirmed": {"number"},
        "callback_refused": set(),
        "callback_greeting": {"center"},
        "callback_whisper": set(),
        "callback_unreached": set(),
        "voicemail_offer": {"key"},
        "voicemail_intro": set(),
        "voicemail_saved": set(),
        "voicemail_saved_no_callback": set(),
        "voicemail_empty": set(),
        "no_agent_voicemail": set(),
        "no_input": set(),
    }
    for name, keys in allowed.items():
        for j, prompt in enumerate(getattr(s.ivr, name)):
            used = {f for _, f, _, _ in string.Formatter().parse(prompt.text) if f is not None}
            if used - keys:
                raise bad(
                    f"ivr.{name}[{j}].text",
                    f"unknown placeholder {sorted(used - keys)}; use {sorted(keys) or 'none'}",
                )
    for i, address in enumerate(s.voicemail.email_to):
        if not re.fullmatch(r"[^@\s,;<>]+@[^@\s,;<>]+", address):
            raise bad(f"voicemail.email_to[{i}]", f"not an e-mail address: {address!r}")
    if not 1 <= s.voicemail.smtp.port <= 65535:
        raise bad("voicemail.smtp.port", f"port {s.voicemail.smtp.port} is out of range 1-65535")
    _check_mail_catcher(s, bad)
    _check_languages(s, file, lines, bad)
    _check_sample_data(s.sample_data, bad)
    _check_campaigns(s, queue_names, bad)
    for i, prefix in enumerate(s.routing.transfer_numbers):
        if not re.fullmatch(r"\+?[0-9]{1,20}", prefix):
            raise bad(f"routing.transfer_numbers[{i}]", f"a number prefix (digits), got {prefix!r}")
        if s.carrier.outbound_contact is None:
            raise bad(f"routing.transfer_numbers[{i}]", "transfers to numbers need carrier.outbound_contact")
    _check_outbound(s.outbound, bad)
    if s.speech is not None:
        if s.speech.engine == "vosk" and not s.speech.model_path:
            raise bad("speech.model_path", "the vosk engine needs the directory of a vosk model")
        if not 0 <= s.speech.min_confidence <= 1:
            raise bad("speech.min_confidence", "must be between 0 and 1")
    if s.ivr.attempts < 1:
        raise bad("ivr.attempts", "must be at least 1")
    if s.ivr.digit_timeout_s <= 0:
        raise bad("ivr.digit_timeout_s", "must be positive")
    _check_web(s, bad)
    _check_security(s, bad)
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad("timezone", f"unknown time zone {s.timezone!r} (e.g. Asia/Shanghai)") from None
    if s.supervision.short_abandon_s < 0:
        raise bad("supervision.short_abandon_s", f"must be 0 or more; got {s.supervision.short_abandon_s}")
    if not 0 <= s.supervision.summary_after_min <= 720:
        raise bad(
            "supervision.summary_after_min",
            f"must be from 0 to 720 minutes after midnight; got {s.supervision.summary_after_min}",
        )
    tiles = s.supervision.tiles
    if not 0 < tiles.amber_wait_s <= tiles.red_wait_s:
        raise bad(
            "supervision.tiles.red_wait_s",
            f"amber_wait_s must be more than 0 and red_wait_s at least amber_wait_s; "
            f"got {tiles.amber_wait_s} and {tiles.red_wait_s}",
        )
    if not 0 <= tiles.red_below_percent <= tiles.amber_below_percent <= 100:
        raise bad(
            "supervision.tiles.red_below_percent",
            f"red_below_percent must be from 0 to amber_below_percent, and that at most 100; "
            f"got {tiles.red_below_percent} and {tiles.amber_below_percent}",
        )
    _check_experts(s, ids, groups, bad)
    _check_recording(s, queue_names, bad)
    _check_fax(s, bad)


def _with_fax_lines(s: Settings, lines: dict[str, int]) -> Settings:
    docs = tuple(
        dataclasses.replace(d, line=lines.get(f"fax.documents[{i}].pdf"))
        for i, d in enumerate(s.fax.documents)
    )
    return dataclasses.replace(s, fax=dataclasses.replace(s.fax, documents=docs))


def _check_fax(s: Settings, bad: typing.Callable[[str, str], ConfigError]) -> None:
    codes: set[str] = set()
    for i, doc in enumerate(s.fax.documents):
        if not re.fullmatch(r"[0-9]{1,8}", doc.code):
            raise bad(f"fax.documents[{i}].code", f"a keypad code: 1-8 digits, got {doc.code!r}")
        if doc.code in codes:
            raise bad(f"fax.documents[{i}].code", f"code {doc.code} is given twice")
        codes.add(doc.code)
        if not doc.en.strip():
            raise bad(f"fax.documents[{i}].en", "give the title read back to callers")
        if not doc.pdf.strip():
            raise bad(f"fax.documents[{i}].pdf", "give the document's PDF file")
    for i, did in enumerate(s.fax.dids):
        if not _DID.fullmatch(did):
            raise bad(f"fax.dids[{i}]", f"not a phone number: {did!r}")
        if did in s.carrier.dids:
            raise bad(f"fax.dids[{i}]", f"{did} is already a voice number (carrier.dids)")
    for i, did in enumerate(s.fax.detect_dids):
        if did not in s.carrier.dids:
            raise bad(f"fax.detect_dids[{i}]", f"{did} is not a voice number (carrier.dids)")
    # A calling fax machine gives up after T.30's T1 (35 s) without an answer tone; under 3 s
    # the tone (0.5 s every 3 s) may not even have been sent once.
    if not 3 <= s.fax.detect_window_s <= 35:
        raise bad("fax.detect_window_s", f"between 3 and 35 seconds; got {s.fax.detect_window_s}")
    if s.fax.station_id is not None and not re.fullmatch(r"[0-9+ ]{1,20}", s.fax.station_id):
        raise bad("fax.station_id", "up to 20 digits, '+' and spaces (T.30 allows no more)")
    if not 0 < s.fax.max_upload_mb <= 100:
        raise bad("fax.max_upload_mb", f"between 0 and 100 (MB), got {s.fax.max_upload_mb}")
    if not 1 <= s.fax.max_upload_pages <= 200:
        raise bad("fax.max_upload_pages", f"between 1 and 200, got {s.fax.max_upload_pages}")
    for i, address in enumerate(s.fax.email_to):
        if not re.fullmatch(r"[^@\s,;<>]+@[^@\s,;<>]+", address):
            raise bad(f"fax.email_to[{i}]", f"not an e-mail address: {address!r}")
    for i, prefix in enumerate(s.fax.numbers):
        if not re.fullmatch(r"[0-9]{1,20}", prefix):
            raise bad(f"fax.numbers[{i}]", f"a number prefix (digits), got {prefix!r}")
        if s.carrier.outbound_contact is None:
            raise bad(f"fax.numbers[{i}]", "faxes to numbers need carrier.outbound_contact")
    if not 1 <= s.fax.max_documents <= 20:
        raise bad("fax.max_documents", "between 1 and 20")
    if not 1 <= s.fax.job_attempts <= 10 or s.fax.job_retry_after_s < 0:
        raise bad("fax.job_attempts", "job_attempts 1-10 and job_retry_after_s >= 0")
    if s.fax.job_ring_s < 15 or s.fax.job_daily_limit < 1:
        raise bad("fax.job_ring_s", "a fax machine rings at least 15 s; job_daily_limit >= 1")
    if not 1 <= s.fax.job_lines <= 60:
        raise bad("fax.job_lines", f"between 1 and 60 faxes at once; got {s.fax.job_lines}")


def _check_security(s: Settings, bad: typing.Callable[[str, str], ConfigError]) -> None:
    capacity = rtp_call_capacity(s)
    for name in ("per_source", "per_trunk"):
        a: AdmissionLimit = getattr(s.security.call_limits, name)
        where = f"security.call_limits.{name}"
        if not a.calls_per_s > 0:
            raise bad(f"{where}.calls_per_s", f"must be positive; got {a.calls_per_s}")
        if a.burst < 1:
            raise bad(f"{where}.burst", f"must be at least 1; got {a.burst}")
        if a.concurrent is not None and not 1 <= a.concurrent <= capacity:
            raise bad(
                f"{where}.concurrent",
                f"must be between 1 and {capacity}, the calls that asterisk.rtp_start..rtp_end"
                f" ({s.asterisk.rtp_start}-{s.asterisk.rtp_end}) carries at two ports per leg and two"
                f" legs per call; got {a.concurrent}",
            )
    b = s.security.sip_bans
    if b.max_failures < 1:
        raise bad("security.sip_bans.max_failures", f"must be at least 1; got {b.max_failures}")
    for name in ("find_time_s", "ban_time_s"):
        if getattr(b, name) <= 0:
            raise bad(f"security.sip_bans.{name}", f"must be positive; got {getattr(b, name)}")
    if b.max_ban_time_s < b.ban_time_s:
        raise bad(
            "security.sip_bans.max_ban_time_s",
            f"must be at least ban_time_s ({b.ban_time_s:g}); got {b.max_ban_time_s:g}",
        )
    for i, entry in enumerate(b.allow):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise bad(
                f"security.sip_bans.allow[{i}]", f"not an IP address or network (e.g. 10.0.0.0/8): {entry!r}"
            ) from None


def _check_web(s: Settings, bad: typing.Callable[[str, str], ConfigError]) -> None:
    usernames: set[str] = set()
    for i, user in enumerate(s.web.users):
        if not re.fullmatch(r"[a-z][a-z0-9_.-]{1,31}", user.username):
            raise bad(
                f"web.users[{i}].username",
                f"use 2-32 characters from a-z, 0-9, '_', '.' and '-', starting with a letter;"
                f" got {user.username!r}",
            )
        if user.username in usernames:
            raise bad(f"web.users[{i}].username", f"user {user.username} is given twice")
        if user.phone and user.username == s.carrier.name:
            raise bad(f"web.users[{i}].username", f"{user.username} is the carrier's SIP name; pick another")
        if user.phone and user.role == "qa":
            raise bad(f"web.users[{i}].phone", "only supervisors and admins listen to calls")
        if user.webrtc and not user.phone:
            raise bad(
                f"web.users[{i}].webrtc", "the browser softphone is the user's phone: add `phone: true`"
            )
        if user.webrtc and user.contact is not None:
            raise bad(
                f"web.users[{i}].webrtc",
                "a browser softphone registers from wherever the user signs in; drop `contact`",
            )
        if user.contact is not None and not user.phone:
            raise bad(
                f"web.users[{i}].contact", "a contact is the address of the user's phone: add `phone: true`"
            )
        if user.contact is not None and not _SIP_URI.fullmatch(user.contact):
            raise bad(f"web.users[{i}].contact", f"not a SIP URI: {user.contact!r}")
        usernames.add(user.username)
    if not s.web.not_ready_reasons:
        raise bad("web.not_ready_reasons", "give at least one reason code")
    codes: set[str] = set()
    for i, reason in enumerate(s.web.not_ready_reasons):
        if not re.fullmatch(r"[a-z0-9_]{1,32}", reason.code):
            raise bad(
                f"web.not_ready_reasons[{i}].code",
                f"use 1-32 characters from a-z, 0-9 and '_', got {reason.code!r}",
            )
        if reason.code in codes:
            raise bad(f"web.not_ready_reasons[{i}].code", f"reason {reason.code} is given twice")
        codes.add(reason.code)
    if s.web.session_idle_s < 60 or s.web.session_max_s < s.web.session_idle_s:
        raise bad("web.session_idle_s", "session_idle_s must be >= 60 and session_max_s >= session_idle_s")
    if (
        min(s.web.login_max_failures_per_user, s.web.login_max_failures_per_address)
        < s.web.login_max_failures
    ):
        raise bad("web.login_max_failures_per_user", "the wider limits must be at least login_max_failures")
    if s.web.login_max_failures < 1 or s.web.login_window_s <= 0:
        raise bad("web.login_max_failures", "login_max_failures must be >= 1 and login_window_s positive")
    if not s.web.wrap_up_codes:
        raise bad("web.wrap_up_codes", "give at least one disposition code")
    wrap_codes: set[str] = set()
    for i, code in enumerate(s.web.wrap_up_codes):
        if not re.fullmatch(r"[a-z0-9_]{1,32}", code.code):
            raise bad(
                f"web.wrap_up_codes[{i}].code",
                f"use 1-32 characters from a-z, 0-9 and '_', got {code.code!r}",
            )
        if code.code in wrap_codes:
            raise bad(f"web.wrap_up_codes[{i}].code", f"code {code.code} is given twice")
        wrap_codes.add(code.code)
    skill_codes: set[str] = set()
    for i, label in enumerate(s.web.skill_labels):
        if not label.code or label.code in skill_codes:
            raise bad(f"web.skill_labels[{i}].code", f"give each skill once, got {label.code!r}")
        skill_codes.add(label.code)
    if s.web.idle_not_ready_s != 0 and s.web.idle_not_ready_s < 2:
        raise bad("web.idle_not_ready_s", "0 (off) or at least 2 seconds")


_RETRY_RESULTS = ("busy", "no_answer", "machine", "congestion", "failed", "abandoned")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _check_campaigns(s: Settings, queue_names: set[str], bad: Callable[[str, str], ConfigError]) -> None:
    names: set[str] = set()
    for i, c in enumerate(s.campaigns):
        at = f"campaigns[{i}]"
        if not re.fullmatch(r"[a-z0-9_-]{1,40}", c.name):
            raise bad(f"{at}.name", f"use 1-40 characters from a-z, 0-9, '_' and '-', got {c.name!r}")
        if c.name in names:
            raise bad(f"{at}.name", f"campaign {c.name} is given twice")
        names.add(c.name)
        if c.queue not in queue_names:
            raise bad(f"{at}.queue", f"no queue named {c.queue!r}")
        if c.ring_s < 15:
            raise bad(f"{at}.ring_s", "let a phone ring at least 15 s before giving up")
        if not 5 <= c.preview_hold_s <= 3600:
            raise bad(f"{at}.preview_hold_s", "give 5 to 3600 seconds")
        if not 0 < c.connect_window_s <= 2:
            raise bad(f"{at}.connect_window_s", "a live answer must reach an agent or the message within 2 s")
        if not 0 < c.abandon_target_pct <= 5:
            raise bad(f"{at}.abandon_target_pct", "between 0 and 5 (the US and UK limit is 3)")
        if not 1 <= c.max_lines_per_agent <= 5:
            raise bad(f"{at}.max_lines_per_agent", "between 1 and 5")
        if c.caller_id is not None and not _DID.fullmatch(c.caller_id):
            raise bad(f"{at}.caller_id", f"not a phone number: {c.caller_id!r}")
        if s.carrier.outbound_contact is None:
            raise bad(f"{at}", "campaigns need carrier.outbound_contact (where the carrier takes our calls)")
        try:
            ZoneInfo(c.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise bad(f"{at}.timezone", f"unknown time zone {c.timezone!r}") from exc
        if not c.window.days or any(d not in _DAYS for d in c.window.days):
            raise bad(f"{at}.window.days", f"days from {', '.join(_DAYS)}")
        for attr in ("start", "end"):
            if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", getattr(c.window, attr)):
                raise bad(f"{at}.window.{attr}", "a time of day like 09:00")
        if c.window.start >= c.window.end:
            raise bad(f"{at}.window.end", "the calling window must end after it starts, the same day")
        for result, rule in c.retries.items():
            if result not in _RETRY_RESULTS:
                raise bad(
                    f"{at}.retries.{result}", f"results that can be retried: {', '.join(_RETRY_RESULTS)}"
                )
            if rule.after_s < 0 or rule.max_attempts < 1:
                raise bad(f"{at}.retries.{result}", "after_s >= 0 and max_attempts >= 1")
        if c.max_attempts < 1 or c.lockout_after_abandon_s < 0:
            raise bad(f"{at}.max_attempts", "max_attempts >= 1 and lockout_after_abandon_s >= 0")
        for j, q in enumerate(c.blend_with):
            if q not in queue_names:
                raise bad(f"{at}.blend_with[{j}]", f"no queue named {q!r}")
        if not 0 < c.blend_service_level_pct <= 100:
            raise bad(f"{at}.blend_service_level_pct", "a percentage, 0-100")
        for j, route in enumerate(c.trunks):
            if not re.fullmatch(r"\+?[0-9]*", route.prefix):
                raise bad(f"{at}.trunks[{j}].prefix", f"digits only, got {route.prefix!r}")
            if route.trunk != s.carrier.name:
                raise bad(
                    f"{at}.trunks[{j}].trunk", f"no trunk named {route.trunk!r} (have: {s.carrier.name})"
                )


def _check_experts(
    s: Settings, agent_ids: set[str], agent_groups: set[str], bad: Callable[[str, str], ConfigError]
) -> None:
    x = s.experts
    names: set[str] = set()
    for i, g in enumerate(x.groups):
        at = f"experts.groups[{i}]"
        if not re.fullmatch(r"[a-z0-9_-]{1,40}", g.name):
            raise bad(f"{at}.name", f"use 1-40 characters from a-z, 0-9, '_' and '-', got {g.name!r}")
        if g.name in names:
            raise bad(f"{at}.name", f"expert group {g.name} is given twice")
        names.add(g.name)
        if not 3 <= g.offer_s <= 120:
            raise bad(f"{at}.offer_s", f"an offer waits 3-120 s, got {g.offer_s}")
        for j, asker in enumerate(g.asked_by):
            if asker not in agent_groups:
                raise bad(f"{at}.asked_by[{j}]", f"no agent is in group {asker!r}")
    ids: set[str] = set()
    agents_used: set[str] = set()
    for i, e in enumerate(x.directory):
        at = f"experts.directory[{i}]"
        if not re.fullmatch(r"[a-z0-9_-]{1,32}", e.id):
            raise bad(f"{at}.id", f"use 1-32 characters from a-z, 0-9, '_' and '-', got {e.id!r}")
        if e.id in ids:
            raise bad(f"{at}.id", f"expert {e.id} is given twice")
        ids.add(e.id)
        if (e.agent is None) == (e.number is None):
            raise bad(at, "give one way to reach the expert: `agent` (an agent id) or `number`")
        if e.agent is not None:
            if e.agent not in agent_ids:
                raise bad(f"{at}.agent", f"no agent {e.agent!r} (an expert with a panel is an agent account)")
            if e.agent in agents_used:
                raise bad(f"{at}.agent", f"agent {e.agent} is already another expert")
            agents_used.add(e.agent)
            if e.max_calls != 1:
                raise bad(f"{at}.max_calls", "an expert on an agent's phone takes one call at a time")
        if e.number is not None:
            if not re.fullmatch(r"\+?[0-9]{3,20}", e.number):
                raise bad(f"{at}.number", f"not a phone number: {e.number!r}")
            if s.carrier.outbound_contact is None:
                raise bad(f"{at}.number", "experts on outside numbers need carrier.outbound_contact")
        for tag, level in e.expertise.items():
            if not re.fullmatch(r"[a-z0-9_-]{1,40}", tag):
                raise bad(f"{at}.expertise.{tag}", "use 1-40 characters from a-z, 0-9, '_' and '-'")
            if not 1 <= level <= 10:
                raise bad(f"{at}.expertise.{tag}", f"level must be 1-10, got {level}")
        for j, g_name in enumerate(e.groups):
            if g_name not in names:
                raise bad(f"{at}.groups[{j}]", f"no expert group {g_name!r} (experts.groups)")
        try:
            ZoneInfo(e.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise bad(f"{at}.timezone", f"unknown time zone {e.timezone!r}") from exc
        if e.hours is not None:
            if not e.hours.days or any(d not in _DAYS for d in e.hours.days):
                raise bad(f"{at}.hours.days", f"days from {', '.join(_DAYS)}")
            for attr in ("start", "end"):
                if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", getattr(e.hours, attr)):
                    raise bad(f"{at}.hours.{attr}", "a time of day like 09:00")
        if not 1 <= e.max_calls <= 10:
            raise bad(f"{at}.max_calls", f"1-10 calls at once, got {e.max_calls}")
    for g in x.groups:
        if g.expertise is not None and not any(g.expertise in e.expertise for e in x.directory):
            raise bad(f"experts.groups[{x.groups.index(g)}].expertise", f"no expert has {g.expertise!r}")
    if not x.no_response_reason.strip() or len(x.no_response_reason) > 40:
        raise bad("experts.no_response_reason", "1-40 characters")
    if not 10 <= x.number_ring_s <= 120:
        raise bad("experts.number_ring_s", f"10-120 s, got {x.number_ring_s}")
    if not 3 <= x.key_s <= 60:
        raise bad("experts.key_s", f"3-60 s, got {x.key_s}")
    if not 5 <= x.link_ttl_s <= 3600:
        raise bad("experts.link_ttl_s", f"5-3600 s, got {x.link_ttl_s}")
    if x.link_base_url is not None and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", x.link_base_url):
        raise bad("experts.link_base_url", f"an http(s) address, got {x.link_base_url!r}")
    for i, e in enumerate(x.directory):
        if e.email is not None and not re.fullmatch(r"[^@\s,;<>]+@[^@\s,;<>]+", e.email):
            raise bad(f"experts.directory[{i}].email", f"not an e-mail address: {e.email!r}")


def expert_directory(s: Settings) -> Directory:
    """The configured experts as the rules see them (app/domain/experts.py)."""
    groups = tuple(ExpertGroup(g.name, g.offer_s, g.expertise, g.asked_by) for g in s.experts.groups)
    experts = tuple(
        Expert(
            id=e.id,
            name=e.name,
            expertise=dict(e.expertise),
            groups=e.groups,
            languages=e.languages,
            agent_id=e.agent,
            number=e.number,
            hours=None
            if e.hours is None
            else Hours(days=e.hours.days, start=e.hours.start, end=e.hours.end, timezone=e.timezone),
            max_calls=e.max_calls,
            email=e.email,
        )
        for e in s.experts.directory
    )
    return Directory(experts, groups)


def _check_recording(s: Settings, queue_names: set[str], bad: Callable[[str, str], ConfigError]) -> None:
    r = s.recording
    rules = [("recording.default", r.default)]
    for name, rule in r.queues.items():
        if name not in queue_names:
            raise bad(f"recording.queues.{name}", f"no queue named {name!r}")
        rules.append((f"recording.queues.{name}", rule))
    campaign_names = {c.name for c in s.campaigns}
    for name, rule in r.campaigns.items():
        if name not in campaign_names:
            raise bad(f"recording.campaigns.{name}", f"no campaign named {name!r}")
        rules.append((f"recording.campaigns.{name}", rule))
    for name, rule in r.directions.items():
        if name not in ("inbound", "outbound"):
            raise bad(f"recording.directions.{name}", "a direction is 'inbound' or 'outbound'")
        rules.append((f"recording.directions.{name}", rule))
    for at, rule in rules:
        if not 0 <= rule.percent <= 100:
            raise bad(f"{at}.percent", f"a percentage, 0-100; got {rule.percent}")
        if rule.mode == "sample" and rule.percent in (0, 100):
            raise bad(f"{at}.mode", "a sample needs a percent between 0 and 100 (or use mode all / none)")
        if rule.retention_days < 0:
            raise bad(f"{at}.retention_days", "0 (kept for ever) or more days")
    if not r.directory.strip():
        raise bad("recording.directory", "name a directory")
    if r.retention_check_s < 1:
        raise bad("recording.retention_check_s", "at least 1 second")
    t = r.transcripts
    if t.engine == "vosk" and not t.model_path:
        raise bad("recording.transcripts.model_path", "the vosk engine needs the directory of a vosk model")
    if not 1 <= t.workers <= 64:
        raise bad("recording.transcripts.workers", f"1 to 64 worker processes; got {t.workers}")
    if not 0 <= t.nice <= 19:
        raise bad("recording.transcripts.nice", f"a niceness of 0 to 19; got {t.nice}")
    if not 0.1 <= t.line_pause_s <= 10:
        raise bad("recording.transcripts.line_pause_s", f"0.1 to 10 seconds; got {t.line_pause_s}")
    if t.max_attempts < 1:
        raise bad("recording.transcripts.max_attempts", "at least 1")
    if t.retry_s < 0:
        raise bad("recording.transcripts.retry_s", "0 or more seconds")
