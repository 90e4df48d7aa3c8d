"""After the engine: where the telephony sends a call once the engine has finished with it.

When a call escalates, the engine's part ends (the stream or socket closes) and the
telephony must put the caller through to the queue the engine chose. These routes give
the telephony that next step, decided from the call's result:

- ``POST /twilio/voice``: the phone number's voice webhook. TwiML that connects the call
  to ``/twilio`` (``<Connect action=...><Stream>``), the caller's number passed along.
- ``POST /twilio/after-stream``: Twilio's ``<Connect action>`` request when the stream
  ends. TwiML: ``<Enqueue>`` or ``<Dial>`` to the queue's target (``$IVR_QUEUE_NUMBERS``),
  or ``<Hangup/>`` when the engine finished the call itself.
- ``GET /audiosocket/result?uuid=...``: what the dialplan reads after ``AudioSocket()``
  returns, as ``key=value&...`` (``CURLOPT(hashcompat)`` and ``HASH()`` read it).

The rule every path keeps (docs/telephony.md): a caller still on the line is hung up on
only when the engine finished the call itself (served, said goodbye, or busy); an
escalation goes to its queue, and anything the engine cannot vouch for (no result, a
call cut off on the engine's side) goes to the ``general`` queue: to a person.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from aiohttp import web

from ivr.calllog.store import CallLogError, CallStore
from ivr.core.events import CallEnded, CallEvent, HungUp, TurnTaken
from ivr.core.report import CallReport
from ivr.dialogue.routing import QUEUES
from ivr.errors import IvrError
from ivr.telephony import is_loopback
from ivr.telephony.twilio import twilio_signature
from ivr.telephony.websocket import authorized
from ivr.voice.gateway import Gateway

log = logging.getLogger(__name__)

FALLBACK_QUEUE = "general"  # where a caller goes when the engine cannot say where
PRIORITY_WEIGHT = {"normal": 0, "high": 5, "urgent": 10}  # QUEUE_PRIO, TaskRouter priority
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
PHONE = re.compile(r"\+?[0-9]{3,20}")  # what Twilio's From is passed on as the caller id
# A call Twilio reports in one of these is over: there is nobody left to route.
CALL_OVER = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
MAX_FORM_FIELD = 256  # Twilio's values are short; anything longer is not Twilio's
QUEUE_NUMBERS_ENV = "IVR_QUEUE_NUMBERS"


@dataclass(frozen=True)
class Target:
    """Where Twilio sends a queue's callers: a phone number or SIP address (``<Dial>``),
    a TaskRouter workflow or a named Twilio queue (``<Enqueue>``)."""

    kind: str  # number | sip | workflow | queue
    value: str

    @classmethod
    def parse(cls, text: str) -> Target:
        text = text.strip()
        if re.fullmatch(r"\+[1-9][0-9]{5,14}", text):
            return cls("number", text)
        if re.fullmatch(r"sips?:[^\s<>\"&]{3,200}", text):
            return cls("sip", text)
        if re.fullmatch(r"WW[0-9a-fA-F]{32}", text):
            return cls("workflow", text)
        name = text.removeprefix("queue:")
        if text.startswith("queue:") and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            return cls("queue", name)
        raise IvrError(f"${QUEUE_NUMBERS_ENV}: {text[:80]!r} is not a target: give +E.164 "
                       "digits, sip:user@host, a TaskRouter workflow (WW + 32 hex) or "
                       "queue:NAME")



class QueueTargets:
    """Each agent queue's target, per locale where the bank gives one (``cards.ko=``).
    Unconfigured: the Twilio queue ``ivr-<queue>-<locale>``; configured: every queue must
    have a target (or ``*=`` one for all the rest), so no escalation is left nowhere."""

    def __init__(self, targets: dict[tuple[str, str | None], Target] | None = None) -> None:
        self.targets = targets or {}

    @classmethod
    def parse(cls, text: str | None) -> QueueTargets:
        """``queue[.locale]=target`` entries, comma-separated (``$IVR_QUEUE_NUMBERS``)."""
        targets: dict[tuple[str, str | None], Target] = {}
        for entry in (text or "").split(","):
            if not entry.strip():
                continue
            key, sep, value = entry.partition("=")
            queue, _, locale = key.strip().partition(".")
            if not sep or (queue not in QUEUES and queue != "*") or (
                    locale and not re.fullmatch(r"[a-z]{2,3}", locale)):
                raise IvrError(f"${QUEUE_NUMBERS_ENV}: {entry.strip()[:80]!r}: need "
                               f"QUEUE[.LOCALE]=TARGET, QUEUE one of {', '.join(QUEUES)} or *")
            targets[(queue, locale or None)] = Target.parse(value)
        missing = [q for q in QUEUES if (q, None) not in targets]
        if targets and missing and ("*", None) not in targets:
            raise IvrError(f"${QUEUE_NUMBERS_ENV} has no target for {', '.join(missing)} "
                           "(add them, or *=TARGET for every other queue)")
        return cls(targets)

    def target(self, queue: str, locale: str) -> Target:
        for key in ((queue, locale), (queue, None), ("*", locale), ("*", None)):
            if key in self.targets:
                return self.targets[key]
        return Target("queue", f"ivr-{queue}-{locale}")


@dataclass(frozen=True)
class NextStep:
    """What the telephony does with the caller now."""

    action: str  # queue | hangup
    queue: str | None
    locale: str
    outcome: str  # the engine's outcome, or "unknown" when it has none
    reason: str | None = None
    priority: str = "normal"
    skills: tuple[str, ...] = ()
    call_id: str | None = None

    def fields(self) -> dict[str, str]:
        """For the dialplan: ``action``, ``queue``, ``locale``, ``prio`` (QUEUE_PRIO)..."""
        return {"action": self.action, "queue": self.queue or "", "locale": self.locale,
                "outcome": self.outcome, "reason": self.reason or "", "priority": self.priority,
                "prio": str(PRIORITY_WEIGHT.get(self.priority, 0)),
                "skills": " ".join(self.skills), "call_id": self.call_id or ""}


def next_step(summary: dict[str, Any] | None, default_locale: str) -> NextStep:
    """The rule of the module's doc, from a call's summary (``summarize_result`` or
    ``summarize_events``; None: no finished call found)."""
    if summary is None:
        return NextStep("queue", FALLBACK_QUEUE, default_locale, "unknown", "no_result")
    locale = str(summary.get("locale") or default_locale)
    outcome = str(summary.get("outcome") or "unknown")
    call_id = summary.get("call_id")
    if outcome == "escalated" and summary.get("queue") in QUEUES:
        skills = summary.get("skills") or ()
        return NextStep("queue", summary["queue"], locale, outcome, summary.get("reason"),
                        str(summary.get("priority") or "normal"),
                        tuple(skills.split(",") if isinstance(skills, str) else skills),
                        call_id)
    if outcome == "busy" or (outcome in ("self_service", "hangup")
                             and not summary.get("cut_off")):
        return NextStep("hangup", None, locale, outcome, summary.get("reason"),
                        call_id=call_id)
    # The conversation ended with the line going down on the engine's side (a shutdown,
    # a network cut) while the telephony still has the caller; or an outcome unknown here.
    return NextStep("queue", FALLBACK_QUEUE, locale, outcome, "cut_off", call_id=call_id)


def summarize_result(report: CallReport) -> dict[str, Any]:
    """A call's summary from this instance's own report (``Gateway.results``)."""
    turns = report.turns
    cut_off = not turns or bool(turns[-1].get("input", {}).get("hangup"))
    return {**{k: getattr(report, k) for k in ("call_id", "outcome", "queue", "reason",
                                               "priority", "skills", "locale")},
            "cut_off": cut_off}


def summarize_events(call_id: str, events: Iterable[CallEvent]) -> dict[str, Any] | None:
    """A call's summary from the call log (any instance's call); None before its end."""
    end: CallEnded | None = None
    turned, hung_up = False, False
    for event in events:
        turned = turned or isinstance(event, TurnTaken)
        hung_up = hung_up or isinstance(event, HungUp)
        if isinstance(event, CallEnded):
            end = event
    if end is None:
        return None
    return {**{k: getattr(end, k) for k in ("outcome", "queue", "reason", "priority", "skills",
                                            "locale")},
            "call_id": call_id, "cut_off": hung_up or not turned}


@dataclass
class Handoff:
    """What the routes need: the calls this instance ran, the shared call log, targets."""

    gateway: Gateway
    store: CallStore
    targets: QueueTargets
    default_locale: str
    twilio_auth_token: str | None
    public_url: str | None
    ws_token: str | None
    wait_s: float = 2.0  # how long a result may take to appear (another instance's log)

    async def summary(self, external_id: str) -> dict[str, Any] | None:
        """The finished call the telephony knows as ``external_id``: this instance's
        own result, else the call log's; waits up to ``wait_s`` for a call still ending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while True:
            for report in reversed(self.gateway.results):  # the latest, if an id recurs
                if report.external_id == external_id:
                    return summarize_result(report)
            why = "its call has not ended"
            try:
                found = await asyncio.to_thread(self._logged, external_id)
            except (CallLogError, sa.exc.SQLAlchemyError) as e:  # none, several, or down
                found, why = None, str(e).splitlines()[0][:200]
            if found is not None:
                return found
            if loop.time() >= deadline:
                log.warning("no result for %s (%s): the caller goes to %s", external_id,
                            why, FALLBACK_QUEUE)
                return None
            await asyncio.sleep(0.1)

    def _logged(self, external_id: str) -> dict[str, Any] | None:
        call = self.store.find_call(external_id, exact=True)
        return summarize_events(call["call_id"], self.store.events(call["call_id"]))


HANDOFF = web.AppKey("handoff", Handoff)


def add_handoff_routes(app: web.Application) -> None:
    """The routes; ``app[HANDOFF]`` is set by the server's lifecycle."""
    app.router.add_post("/twilio/voice", twilio_voice)
    app.router.add_post("/twilio/after-stream", twilio_after_stream)
    app.router.add_get("/audiosocket/result", audiosocket_result)


# --- Twilio ------------------------------------------------------------------------------
def _base(request: web.Request, public_url: str | None, websocket: bool) -> str:
    """This server's URL as Twilio reaches it (``$IVR_PUBLIC_URL`` behind a proxy), in
    the WebSocket or the HTTP scheme. The Host header has passed the host check."""
    if public_url:
        given, _, rest = public_url.rstrip("/").partition("://")
        secure = given.lower() in ("https", "wss")
    else:
        secure, rest = request.secure, request.host
    scheme = ("wss" if secure else "ws") if websocket else ("https" if secure else "http")
    return f"{scheme}://{rest}"


async def _twilio_form(request: web.Request, handoff: Handoff) -> dict[str, str] | web.Response:
    """Twilio's form, once it is Twilio's: signed with the auth token when one is set,
    else from this machine only (as ``/twilio``)."""
    is_form = request.content_type == "application/x-www-form-urlencoded"
    form = await request.post() if is_form else {}
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    token = handoff.twilio_auth_token
    if token:  # the signature covers the URL and every parameter, as sent
        url = _base(request, handoff.public_url, websocket=False) + request.path_qs
        given = request.headers.get("X-Twilio-Signature", "")
        if not hmac.compare_digest(given.encode(), twilio_signature(token, url, fields).encode()):
            return web.Response(status=403, text="bad X-Twilio-Signature\n")
    elif not is_loopback(request):
        return web.Response(status=403, text="no Twilio auth token configured\n")
    if not is_form:
        return web.Response(status=415, text="send application/x-www-form-urlencoded\n")
    return {k: v for k, v in fields.items() if len(v) <= MAX_FORM_FIELD}


def _twiml(response: ET.Element) -> web.Response:
    body = '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")
    return web.Response(text=body, content_type="text/xml", charset="utf-8")


async def twilio_voice(request: web.Request) -> web.StreamResponse:
    """The number's voice webhook: connect the call to the engine's stream, and come back
    to ``/twilio/after-stream`` when it ends. ``?locale=ko`` skips the language menu."""
    handoff = request.app[HANDOFF]
    form = await _twilio_form(request, handoff)
    if isinstance(form, web.Response):
        return form
    response = ET.Element("Response")
    connect = ET.SubElement(response, "Connect", action=(
        _base(request, handoff.public_url, websocket=False) + "/twilio/after-stream"))
    stream = ET.SubElement(connect, "Stream",
                           url=_base(request, handoff.public_url, websocket=True) + "/twilio")
    caller = form.get("From", "")
    # Only a number is passed on (a client: or sip: caller is nobody the bank knows).
    ET.SubElement(stream, "Parameter", name="caller",
                  value=caller if PHONE.fullmatch(caller) else "")
    locale = request.query.get("locale")
    if locale in handoff.gateway.services.engines:
        ET.SubElement(stream, "Parameter", name="locale", value=locale)
    elif locale is not None:
        log.warning("/twilio/voice: no locale %r; the caller hears the language menu",
                    locale[:20])
    return _twiml(response)


async def twilio_after_stream(request: web.Request) -> web.StreamResponse:
    """The stream has ended: send the caller where the engine's result says."""
    handoff = request.app[HANDOFF]
    form = await _twilio_form(request, handoff)
    if isinstance(form, web.Response):
        return form
    if form.get("CallStatus") in CALL_OVER:  # the caller has gone: nobody to route
        return _twiml(route_twiml(NextStep("hangup", None, "", "gone"), handoff.targets))
    call_sid = form.get("CallSid", "")
    valid = CALL_SID.fullmatch(call_sid) is not None  # else never looked up, nor logged
    step = next_step(await handoff.summary(call_sid) if valid else None,
                     handoff.default_locale)
    log.info("call %s (Twilio %s): %s %s", step.call_id or "-",
             call_sid if valid else "without a CallSid", step.action, step.queue or "")
    return _twiml(route_twiml(step, handoff.targets))


def route_twiml(step: NextStep, targets: QueueTargets) -> ET.Element:
    """The TwiML of a next step: ``<Hangup/>``, or the queue's target."""
    response = ET.Element("Response")
    if step.action == "hangup" or step.queue is None:
        ET.SubElement(response, "Hangup")
        return response
    target = targets.target(step.queue, step.locale)
    if target.kind in ("number", "sip"):
        dial = ET.SubElement(response, "Dial")
        ET.SubElement(dial, "Number" if target.kind == "number" else "Sip").text = target.value
    elif target.kind == "workflow":
        enqueue = ET.SubElement(response, "Enqueue", workflowSid=target.value)
        task = ET.SubElement(enqueue, "Task",
                             priority=str(PRIORITY_WEIGHT.get(step.priority, 0)))
        # The task's attributes, for the workflow's routing (skills: the agent's language).
        task.text = json.dumps({"queue": step.queue, "locale": step.locale,
                                "skills": list(step.skills), "priority": step.priority,
                                "reason": step.reason, "call_id": step.call_id},
                               ensure_ascii=False)
    else:
        ET.SubElement(response, "Enqueue").text = target.value
    return response


# --- Asterisk ----------------------------------------------------------------------------
async def audiosocket_result(request: web.Request) -> web.StreamResponse:
    """``AudioSocket()`` has returned: the next step as ``key=value&...`` for the
    dialplan. Every answer, an error too, is in that form: a dialplan that finds no
    ``action=hangup`` sends the caller to a person."""
    handoff = request.app[HANDOFF]
    if not authorized(request, handoff.ws_token):
        return _fields({"error": "missing or wrong bearer token"}, 401)
    try:
        call_uuid = str(uuid.UUID(request.query.get("uuid", "")))
    except ValueError:
        return _fields({"error": "need ?uuid= the UUID given to AudioSocket()"}, 400)
    step = next_step(await handoff.summary(call_uuid), handoff.default_locale)
    log.info("call %s (audiosocket %s): %s %s", step.call_id or "-", call_uuid, step.action,
             step.queue or "")
    return _fields(step.fields())


def _fields(fields: dict[str, str], status: int = 200) -> web.Response:
    return web.Response(text=urlencode(fields), status=status, content_type="text/plain")
