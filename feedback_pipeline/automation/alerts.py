"""Alerts: what a failed gate or run tells the people on call, and where it is sent.

An alert names the check, the asset, the partition, the rule and the offending ids, and carries
counts and figures, never record text: every free-text field is passed through the independent
residue scan and cut short before it leaves. Sinks are chosen in `policy.yaml`:

```yaml
alerts:
  sinks: [log, jsonl, webhook, slack, pagerduty]   # default: log and jsonl, plus each network
                                       # sink whose address or secret is set
  jsonl_path: restricted/alerts/alerts.jsonl   # relative to the data root, or absolute
  webhook_url: https://hooks.example/...       # better: FEEDBACK_ALERT_WEBHOOK_URL
  slack_channel: "#ml-data-oncall"     # token: FEEDBACK_SLACK_TOKEN (dagster-slack)
  pagerduty_events_url: https://events.pagerduty.com/v2/enqueue   # routing key:
                                       # FEEDBACK_PAGERDUTY_ROUTING_KEY (dagster-pagerduty)
  webhook_timeout_seconds: 5
  outbox_max_age_hours: 24             # a delivery that keeps failing is retried until then
```

Alerting must not depend on the config whose fault it may be reporting: a policy.yaml that does
not parse, or an `alerts:` section that is wrong, falls back to the default sinks (log, jsonl,
and the network sinks whose secrets are in the environment) and the config problem is itself
alerted. A webhook, Slack or PagerDuty delivery that fails goes to an outbox in the restricted zone and is retried on later
sensor ticks with exponential backoff until it is delivered or expires (logged). Every alert
carries a stable dedup key (check or job, asset, partition) for sinks that group repeats, and
links into the Dagster UI (FEEDBACK_DAGSTER_UI_URL, default http://127.0.0.1:3000).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import yaml

from feedback_pipeline.core.locks import exclusive_lock
from feedback_pipeline.core.redaction import find_residue
from feedback_pipeline.settings import ConfigError, Policy
from feedback_pipeline.storage import RESTRICTED, Storage

SINKS = ("log", "jsonl", "webhook", "slack", "pagerduty")
RETRIED_SINKS = ("webhook", "slack", "pagerduty")
"""Sinks across a network: a failed delivery waits in the outbox for a later tick."""
WEBHOOK_ENV = "FEEDBACK_ALERT_WEBHOOK_URL"
SLACK_TOKEN_ENV = "FEEDBACK_SLACK_TOKEN"
PAGERDUTY_KEY_ENV = "FEEDBACK_PAGERDUTY_ROUTING_KEY"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
UI_URL_ENV = "FEEDBACK_DAGSTER_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
DEFAULT_JSONL_PATH = f"{RESTRICTED}/alerts/alerts.jsonl"
OUTBOX_PATH = f"{RESTRICTED}/alerts/outbox.jsonl"
DEFAULT_OUTBOX_MAX_AGE_HOURS = 24.0
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 3600.0
ALERT_ON = "alert_on"
STATE_CHANGE = "state_change"
"""A check result whose metadata holds `alert_on: state_change` reports a standing state, not
an event (a judge short of its gate is the normal state until a judge is good enough): it is
alerted when its state changes, failing or passing again, not on every evaluation."""
MAX_TEXT = 240
MAX_IDS = 25
SAFE_ID = re.compile(r"^[\w.:/+-]{1,100}$")
MORE_IDS = re.compile(r"\(\+(\d+) more\)\s*$")
SAFE_ERROR_CLASSES = frozenset({"DagsterAssetCheckFailedError", "Failure", "ConfigError",
                                "ReleaseExistsError"})
ERROR_PREFIX = re.compile(r"^\s*(?:[\w]+\.)+(?=\w+(?:Error|Exception|Failure)\b)")


class AlertLog(Protocol):
    def error(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go; read from the `alerts:` key of policy.yaml and the environment."""

    sinks: tuple[str, ...] = ("log", "jsonl")
    jsonl_path: str = DEFAULT_JSONL_PATH
    webhook_url: str | None = None
    webhook_timeout_seconds: float = 5.0
    outbox_max_age_hours: float = DEFAULT_OUTBOX_MAX_AGE_HOURS
    ui_url: str = DEFAULT_UI_URL
    slack_token: str | None = field(default=None, repr=False)
    slack_channel: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    pagerduty_routing_key: str | None = field(default=None, repr=False)
    pagerduty_events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL

    def jsonl_file(self, storage: Storage) -> Path:
        path = Path(self.jsonl_path)
        return path if path.is_absolute() else storage.root / path


def alert_settings(policy: Policy, environ: Mapping[str, str] | None = None) -> AlertSettings:
    """Parse `alerts:` from the policy; the webhook URL may come from FEEDBACK_ALERT_WEBHOOK_URL
    so that a secret URL never sits in a versioned config file."""
    return _settings(policy.extra.get("alerts") or {}, os.environ if environ is None else environ)


def _settings(raw: Any, environ: Mapping[str, str]) -> AlertSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError("policy.yaml: 'alerts' must be a mapping")
    url = environ.get(WEBHOOK_ENV) or raw.get("webhook_url") or None
    slack_token = environ.get(SLACK_TOKEN_ENV) or None  # secrets: the environment only
    slack_channel = raw.get("slack_channel") or None
    routing_key = environ.get(PAGERDUTY_KEY_ENV) or None
    sinks = raw.get("sinks")
    if sinks is None:
        sinks = (["log", "jsonl"] + (["webhook"] if url else [])
                 + (["slack"] if slack_token and slack_channel else [])
                 + (["pagerduty"] if routing_key else []))
    if isinstance(sinks, str):
        sinks = [sinks]
    unknown = [s for s in sinks if s not in SINKS]
    if unknown:
        raise ConfigError(f"policy.yaml: alerts.sinks has unknown sink(s) {unknown}; "
                          f"expected some of {list(SINKS)}")
    numbers = {}
    for key, default in (("webhook_timeout_seconds", 5.0),
                         ("outbox_max_age_hours", DEFAULT_OUTBOX_MAX_AGE_HOURS)):
        try:
            numbers[key] = float(raw.get(key, default))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"policy.yaml: alerts.{key} must be a number") from err
    return AlertSettings(sinks=tuple(dict.fromkeys(sinks)),
                         jsonl_path=str(raw.get("jsonl_path") or DEFAULT_JSONL_PATH),
                         webhook_url=url, ui_url=_ui_url(environ), slack_token=slack_token,
                         slack_channel=str(slack_channel) if slack_channel else None,
                         slack_api_url=str(raw.get("slack_api_url") or DEFAULT_SLACK_API_URL),
                         pagerduty_routing_key=routing_key,
                         pagerduty_events_url=str(raw.get("pagerduty_events_url")
                                                  or DEFAULT_PAGERDUTY_EVENTS_URL),
                         **numbers)


def _ui_url(environ: Mapping[str, str]) -> str:
    return (environ.get(UI_URL_ENV) or DEFAULT_UI_URL).rstrip("/")


def resolve_alert_settings(storage: Storage, environ: Mapping[str, str] | None = None
                           ) -> tuple[AlertSettings, Alert | None]:
    """The sinks from policy.yaml's `alerts:` section, read on their own (not through the
    whole policy, whose fault may be what is being reported); when that fails, the default
    sinks and an alert naming the config problem (never a value from the file)."""
    environ = os.environ if environ is None else environ
    path = storage.config_path("policy.yaml")
    try:
        loaded = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None) or {}
        if not isinstance(loaded, Mapping):
            raise ConfigError("policy.yaml: expected a mapping at the top level")
        return _settings(loaded.get("alerts") or {}, environ), None
    except ConfigError as err:
        problem = str(err)
    except (yaml.YAMLError, ValueError, OSError) as err:
        problem = f"policy.yaml cannot be read ({type(err).__name__})"
    fallback = _settings({}, environ)  # the defaults: log, jsonl, and what the environment holds
    return fallback, Alert(kind="config_error", severity="ERROR", check_name="alert_config",
                           rule="policy.yaml must parse; alerts use the default sinks until "
                                "it does", reason=scrub(problem), source_id="config:policy")


def scrub(text: object, limit: int = MAX_TEXT) -> str | None:
    """Free text made safe to page with: anything that still looks raw becomes <KIND>."""
    if text is None:
        return None
    value = " ".join(str(text).split())
    for kind, matched in sorted(find_residue(value), key=lambda m: -len(m[1])):
        value = value.replace(matched, f"<{kind}>")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def safe_ids(ids: Sequence[str] | str | None) -> tuple[list[str], int]:
    """Offending ids fit to show (id-shaped and residue-free), and how many there were.

    Accepts a list or the `a, b (+N more)` text the stages put in check metadata.
    """
    if ids is None:
        return [], 0
    extra = 0
    if isinstance(ids, str):
        more = MORE_IDS.search(ids)
        if more:
            extra = int(more.group(1))
            ids = ids[: more.start()]
        ids = [part.strip() for part in ids.split(",")]
    cleaned = [i for i in (str(x).strip() for x in ids) if i and i.lower() != "none"]
    total = len(cleaned) + extra
    shown = [i if SAFE_ID.match(i) and not find_residue(i) else "<withheld-id>"
             for i in cleaned[:MAX_IDS]]
    return shown, total


@dataclass(frozen=True)
class Alert:
    """One page: a failed check evaluation (`check_failed`) or a failed run (`run_failed`)."""

    kind: str
    check_name: str | None = None
    asset: str | None = None
    partition: str | None = None
    severity: str = "ERROR"
    blocking: bool | None = None
    rule: str | None = None
    reason: str | None = None
    offending_ids: list[str] = field(default_factory=list)
    offending_count: int = 0
    figures: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    job_name: str | None = None
    source_id: str | None = None
    created_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def dedup_key(self) -> str:
        """Stable over repeats of one failure (check or job, asset, partition): what a
        PagerDuty-style sink groups on."""
        return ":".join([self.kind, self.check_name or self.job_name or "-",
                         self.asset or "-", self.partition or "-"])

    def links(self, ui_url: str) -> dict[str, str]:
        """Where the failure is in the Dagster UI: the run, and a failed check's asset
        checks (for its partition)."""
        out = {}
        if self.run_id:
            out["run"] = f"{ui_url}/runs/{urllib.parse.quote(self.run_id)}"
        if self.kind in ("check_failed", "check_recovered") and self.asset:
            query = {"view": "checks"}
            if self.partition:
                query["partition"] = self.partition
            out["checks"] = (f"{ui_url}/assets/{urllib.parse.quote(self.asset)}?"
                             f"{urllib.parse.urlencode(query)}")
        return out

    @property
    def title(self) -> str:
        where = f"{self.asset}" + (f" [{self.partition}]" if self.partition else "")
        if self.kind == "config_error":
            return "the pipeline config cannot be read"
        if self.kind == "check_recovered":
            return f"check {self.check_name} passes again on {where}"
        if self.kind == "check_failed":
            gate = "blocking gate" if self.blocking else "check"
            return f"{gate} {self.check_name} failed on {where}"
        part = f" [{self.partition}]" if self.partition else ""
        return f"run of {self.job_name}{part} failed"

    def text(self, ui_url: str | None = None) -> str:
        """The Slack-compatible message body: names, ids, figures and UI links only."""
        lines = [f"[{self.severity}] feedback-pipeline: {self.title}"]
        if self.rule:
            lines.append(f"rule: {self.rule}")
        if self.reason:
            lines.append(f"reason: {self.reason}")
        if self.offending_count:
            shown = ", ".join(self.offending_ids)
            hidden = self.offending_count - len(self.offending_ids)
            label = "failed steps" if self.kind == "run_failed" else "offending ids"
            lines.append(f"{label} ({self.offending_count}): {shown}"
                         + (f" (+{hidden} more)" if hidden > 0 else ""))
        if self.figures:
            lines.append("figures: " + ", ".join(f"{k}={v:g}" for k, v in self.figures.items()))
        if self.run_id:
            lines.append(f"run: {self.run_id}" + (f" ({self.job_name})" if self.job_name else ""))
        for name, url in self.links(ui_url or DEFAULT_UI_URL).items():
            lines.append(f"{name}: {url}")
        return "\n".join(lines)

    def to_json(self, ui_url: str | None = None) -> dict[str, Any]:
        return {**asdict(self), "title": self.title, "dedup_key": self.dedup_key,
                "links": self.links(ui_url or DEFAULT_UI_URL)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Alert:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in obj.items() if k in names})


def as_number(value: object) -> float | None:
    """A figure worth showing: a number, or text that is exactly a number (JSON metadata)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def check_alert(*, check_name: str, asset: str, partition: str | None, severity: str, blocking: bool | None, metadata: Mapping[str, Any],
                run_id: str | None, job_name: str | None, source_id: str | None) -> Alert:
    """An alert from one failed check evaluation's plain values (metadata unwrapped)."""
    ids: list[str] = []
    total = 0
    for key, value in metadata.items():
        if key.endswith("_ids") and isinstance(value, str | list | tuple):
            shown, count = safe_ids(value)
            ids += shown
            total += count
    figures = {k: number for k, v in metadata.items() if (number := as_number(v)) is not None}
    return Alert(
        kind="check_failed",
        check_name=check_name, asset=asset, partition=partition,
        severity=severity, blocking=blocking,
        rule=scrub(metadata.get("rule")),
        reason=scrub(metadata.get("reason")),
        offending_ids=ids, offending_count=total, figures=figures,
        run_id=run_id, job_name=job_name, source_id=source_id,
    )


def error_reason(cls_name: str | None, message: str) -> str | None:
    """What a run failure may say: the message of errors our own code words (gate failures,
    config errors, `dg.Failure`), scrubbed; for anything else only the error's class, since an
    arbitrary exception may quote the data it choked on."""
    if cls_name is None or cls_name in SAFE_ERROR_CLASSES:
        return scrub(ERROR_PREFIX.sub("", message), 200)
    return f"{cls_name} (message withheld; see the run's logs)"


def run_failure_alert(*, job_name: str, run_id: str, partition: str | None,
                      failed_steps: Sequence[str],
                      errors: Sequence[tuple[str | None, str]]) -> Alert:
    """An alert for a failed run: its job, partition, failed steps and their errors.

    `errors` holds (error class name or None for Dagster's own run message, message)."""
    reasons = [r for r in (error_reason(cls, msg) for cls, msg in errors) if r]
    return Alert(kind="run_failed", job_name=job_name, run_id=run_id, partition=partition,
                 severity="ERROR", rule="a run of a production job must succeed",
                 reason="; ".join(dict.fromkeys(reasons)) or None,
                 offending_ids=list(failed_steps)[:MAX_IDS], offending_count=len(failed_steps),
                 source_id=f"run:{run_id}")


@dataclass(frozen=True)
class Delivery:
    sink: str
    ok: bool
    detail: str = ""


def post_webhook(url: str, alert: Alert, timeout: float, ui_url: str | None = None
                 ) -> Delivery:
    """JSON POST with a Slack-compatible body ({"text": ...}) plus the dedup key and links."""
    body = json.dumps({"text": alert.text(ui_url), "dedup_key": alert.dedup_key,
                       "links": alert.links(ui_url or DEFAULT_UI_URL)}).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Delivery("webhook", 200 <= response.status < 300, f"HTTP {response.status}")
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        return Delivery("webhook", False, type(err).__name__)


def post_slack(settings: AlertSettings, alert: Alert) -> Delivery:
    """The alert's text as a message in `slack_channel`, through dagster-slack's client
    (slack_sdk); `slack_api_url` for Slack's other clouds (GovSlack)."""
    from dagster_slack import SlackResource
    from slack_sdk.errors import SlackApiError

    if not settings.slack_token or not settings.slack_channel:
        return Delivery("slack", False, f"no token ({SLACK_TOKEN_ENV}) or alerts.slack_channel")
    client = SlackResource(token=settings.slack_token).get_client()
    client.base_url = settings.slack_api_url.rstrip("/") + "/"
    client.timeout = max(1, int(settings.webhook_timeout_seconds))
    try:
        client.chat_postMessage(channel=settings.slack_channel, text=alert.text(settings.ui_url))
    except SlackApiError as err:
        return Delivery("slack", False, f"Slack refused: {err.response.get('error')}")
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        return Delivery("slack", False, type(err).__name__)
    return Delivery("slack", True)


PAGERDUTY_SEVERITY = {"ERROR": "error", "WARN": "warning"}


def post_pagerduty(settings: AlertSettings, alert: Alert) -> Delivery:
    """A PagerDuty Events v2 event through dagster-pagerduty: triggered with the alert's dedup
    key, so repeats of one failure group into one incident, and resolved by the alert a check
    sends when it passes again. `pagerduty_events_url` for another region's endpoint."""
    import pypd
    from dagster_pagerduty import PagerDutyService

    if not settings.pagerduty_routing_key:
        return Delivery("pagerduty", False, f"no routing key ({PAGERDUTY_KEY_ENV})")
    pypd.EventV2.base_url = settings.pagerduty_events_url.rstrip("/")
    links = alert.links(settings.ui_url)
    try:
        PagerDutyService(routing_key=settings.pagerduty_routing_key).EventV2_create(
            summary=alert.title[:1024], source="feedback-pipeline",
            severity=PAGERDUTY_SEVERITY.get(alert.severity, "info"),
            event_action="resolve" if alert.kind == "check_recovered" else "trigger",
            dedup_key=alert.dedup_key, component=alert.asset,
            group=alert.job_name or alert.check_name, event_class=alert.kind,
            custom_details={"text": alert.text(settings.ui_url), **links})
    except Exception as err:  # noqa: BLE001 - pypd raises requests' and its own errors
        return Delivery("pagerduty", False, type(err).__name__)
    return Delivery("pagerduty", True)


def deliver(sink: str, settings: AlertSettings, alert: Alert) -> Delivery:
    """One alert to one network sink (RETRIED_SINKS)."""
    if sink == "slack":
        return post_slack(settings, alert)
    if sink == "pagerduty":
        return post_pagerduty(settings, alert)
    if not settings.webhook_url:
        return Delivery("webhook", False, f"no URL ({WEBHOOK_ENV})")
    return post_webhook(settings.webhook_url, alert, settings.webhook_timeout_seconds,
                        settings.ui_url)


def _configured(sink: str, settings: AlertSettings) -> bool:
    """Whether a network sink can be tried at all (nothing to retry without its address)."""
    return bool(settings.webhook_url if sink == "webhook" else
                settings.slack_token and settings.slack_channel if sink == "slack" else
                settings.pagerduty_routing_key)


def dispatch(alerts: Sequence[Alert], settings: AlertSettings, storage: Storage,
             log: AlertLog | None = None, now: datetime | None = None) -> list[Delivery]:
    """Send every alert to every configured sink; a sink that fails is reported, not raised,
    so one broken webhook never silences the others, and a failed webhook delivery waits in
    the outbox for `retry_outbox`."""
    now = now or datetime.now(UTC)
    deliveries: list[Delivery] = []
    for alert in alerts:
        for sink in settings.sinks:
            if sink == "log" and log is not None:
                (log.error if alert.severity == "ERROR" else log.warning)(
                    alert.text(settings.ui_url))
                deliveries.append(Delivery("log", True))
            elif sink == "jsonl":
                path = settings.jsonl_file(storage)
                storage.append_line(path, json.dumps(alert.to_json(settings.ui_url),
                                                     sort_keys=True))
                deliveries.append(Delivery("jsonl", True, storage.relative(path)))
            elif sink in RETRIED_SINKS:
                delivery = deliver(sink, settings, alert)
                if not delivery.ok and _configured(sink, settings):
                    with exclusive_lock(_outbox_lock(storage)):
                        storage.append_line(_outbox_path(storage), json.dumps(
                            _outbox_entry(alert.to_json(), 1, now, now, sink),
                            sort_keys=True))
                deliveries.append(delivery)
    if log is not None:
        for failed in (d for d in deliveries if not d.ok):
            log.warning(f"alert sink {failed.sink} failed: {failed.detail}"
                        + (" (queued in the outbox for retry)" if failed.sink in RETRIED_SINKS
                           and _configured(failed.sink, settings) else ""))
    return deliveries


def _backoff(attempts: int) -> float:
    return min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS)


def _outbox_entry(alert: dict[str, Any], attempts: int, first: datetime | str,
                  now: datetime, sink: str = "webhook") -> dict[str, Any]:
    """An outbox line: the sink, the alert, its attempts so far, when the first was made, and
    when the next is due (_backoff after this one)."""
    return {"alert": alert, "attempts": attempts, "sink": sink,
            "first_attempt_at": first if isinstance(first, str) else first.isoformat(),
            "next_attempt_at": (now + timedelta(seconds=_backoff(attempts))).isoformat()}


def _outbox_path(storage: Storage) -> Path:
    return storage.root / OUTBOX_PATH


def _outbox_lock(storage: Storage) -> Path:
    return storage.root / f"{OUTBOX_PATH}.lock"


def outbox(storage: Storage) -> list[dict[str, Any]]:
    """The webhook deliveries waiting for a retry."""
    path = _outbox_path(storage)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def retry_outbox(settings: AlertSettings, storage: Storage, log: AlertLog | None = None,
                 now: datetime | None = None) -> dict[str, int]:
    """Retry each waiting delivery (webhook, Slack, PagerDuty) that is due (called on every
    alert-sensor tick):
    delivered ones leave the outbox, failed ones wait twice as long (up to an hour), and one
    older than `outbox_max_age_hours` is dropped with a log line saying so. Returns counts.

    The outbox is read and rewritten under a lock that `dispatch` takes to append, so a tick
    of one alert sensor never drops what another queued meanwhile."""
    with exclusive_lock(_outbox_lock(storage)):
        return _retry_outbox(settings, storage, log, now or datetime.now(UTC))


def _retry_outbox(settings: AlertSettings, storage: Storage, log: AlertLog | None,
                  now: datetime) -> dict[str, int]:
    waiting = outbox(storage)
    counts = {"delivered": 0, "waiting": 0, "expired": 0}
    if not waiting:
        return counts
    kept: list[str] = []
    for entry in waiting:
        alert = Alert.from_json(entry["alert"])
        first = datetime.fromisoformat(entry["first_attempt_at"])
        if now - first > timedelta(hours=settings.outbox_max_age_hours):
            counts["expired"] += 1
            if log is not None:
                log.error(f"alert {alert.dedup_key} expired undelivered after "
                          f"{entry['attempts']} {entry.get('sink', 'webhook')} attempt(s)")
            continue
        sink = entry.get("sink", "webhook")  # outboxes written before other sinks existed
        due = datetime.fromisoformat(entry["next_attempt_at"]) <= now
        if due and _configured(sink, settings):
            if deliver(sink, settings, alert).ok:
                counts["delivered"] += 1
                continue
            entry = _outbox_entry(entry["alert"], entry["attempts"] + 1,
                                  entry["first_attempt_at"], now, sink)
        counts["waiting"] += 1
        kept.append(json.dumps(entry, sort_keys=True))
    storage.write_text(_outbox_path(storage), "".join(line + "\n" for line in kept))
    return counts
