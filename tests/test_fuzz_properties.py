"""Property-based tests of every wire-protocol parser and of the masker (docs/fuzzing.md).

Parsers: whatever a client sends gives a well-typed engine event, None, or a ProtocolError;
any other exception would end the call instead of skipping one bad message. Masker: no
PIN, card, ID or phone number survives (SPEC rule 3), and nothing around it is touched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import string
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import WSMsgType
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ivr.masking import mask_card, mask_text
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, PlaybackDone
from ivr.voice.transports import Limits, ProtocolError, audiosocket, json_object, twilio, websocket

# Bounded so the whole file stays well under a minute on a 2-core machine.
BOUNDED = settings(max_examples=300, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(BOUNDED, max_examples=60)  # examples that carry up to 64 KiB each

DTMF_KEYS = "0123456789*#"
MAX_ERROR_CHARS = 200  # errors are logged per message: a client must not make them huge

# --- parsers: messages ----------------------------------------------------------------------


def text_msg(data: str) -> SimpleNamespace:
    return SimpleNamespace(type=WSMsgType.TEXT, data=data)


def binary_msg(data: bytes) -> SimpleNamespace:
    return SimpleNamespace(type=WSMsgType.BINARY, data=data)


def parsed(parse: Callable[[Any], Any], msg: Any) -> tuple[Any, str | None]:
    """The parser's result, or its ProtocolError's text; any other exception fails the test."""
    try:
        return parse(msg), None
    except ProtocolError as e:
        error = str(e)
        assert error and len(error) <= MAX_ERROR_CHARS, error[:300]
        return None, error


def check_event(event: object) -> None:
    """None, or one engine event whose fields have the types the session relies on."""
    if event is None:
        return
    if isinstance(event, AudioIn):
        assert isinstance(event.pcm, bytes) and event.pcm and len(event.pcm) % 2 == 0
    elif isinstance(event, DigitIn):
        assert isinstance(event.digit, str) and len(event.digit) == 1
        assert event.digit in DTMF_KEYS
    elif isinstance(event, PlaybackDone):
        assert isinstance(event.mark, str) and event.mark
    else:
        assert isinstance(event, CallerHangup), f"not an engine event: {event!r}"
        assert isinstance(event.reason, str)


def check_start(start: object, keys: set[str], optional: set[str]) -> None:
    """A parsed start message: exactly ``keys``, all strings (``optional`` ones may be None)."""
    assert isinstance(start, dict) and set(start) == keys
    for key, value in start.items():
        assert isinstance(value, str) or (key in optional and value is None), (key, value)


# JSON of every shape: what a broken or hostile client can put in any field.
_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
            | st.text(max_size=12))
_json_values = st.recursive(
    _scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                         kids, max_size=4),
    max_leaves=12)
_NASTY = ["x" * 70_000, "１２３４", "\x00", "\ud800", "", 0, -1, 1e308, float("inf"),
          float("nan"), True, [], {}, [[[[[]]]]], {"digit": "1"}, "8000", "8k", 8000.5]
garbage = _json_values | st.sampled_from(_NASTY)
_MISSING = object()


def near(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Messages like ``valid``: each field kept, dropped, replaced by garbage or (an object)
    varied the same way, plus extra fields."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for key, value in valid.items():
        # Kept twice as often: the deeper fields are reached only past the valid ones.
        options = [st.just(value), st.just(value), st.just(_MISSING), garbage]
        if isinstance(value, dict):
            options.append(near(value))
        fields[key] = st.one_of(options)

    def build(kept: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        return {**extra, **{k: v for k, v in kept.items() if v is not _MISSING}}

    return st.builds(build, st.fixed_dictionaries(fields),
                     st.dictionaries(st.text(max_size=8), garbage, max_size=2))


def as_json(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    return st.builds(lambda v, ascii_only: json.dumps(v, ensure_ascii=ascii_only),
                     values, st.booleans())


# Text that is not one JSON object, or not JSON at all; deep nesting overflowed json.loads.
_not_json = st.text(max_size=40) | st.sampled_from(
    ["[" * 100_000, '{"a":' * 50_000, "9" * 5000, '{"event": "media"', "{'a': 1}", "NaN"])

_B64 = base64.b64encode(b"\xff\x7f\x00\x80" * 40).decode()
TWILIO_VALID: list[dict[str, Any]] = [
    {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": "CA1", "accountSid": "AC1", "tracks": ["inbound"],
        "customParameters": {"caller": "+8613800000001", "locale": "zh"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
    {"event": "media", "streamSid": "MZ1", "media": {
        "track": "inbound", "chunk": "2", "timestamp": "5", "payload": _B64}},
    {"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": "5"}},
    {"event": "mark", "streamSid": "MZ1", "mark": {"name": "p-1"}},
    {"event": "stop", "streamSid": "MZ1", "stop": {"callSid": "CA1"}},
]
WEBSOCKET_VALID: list[dict[str, Any]] = [
    {"type": "start", "caller": "+8613800000001", "locale": "ko", "call_id": "c-1",
     "encoding": "pcm16", "sample_rate": 8000},
    {"type": "dtmf", "digit": "#"},
    {"type": "mark", "name": "p-1"},
    {"type": "hangup"},
]
twilio_text = (as_json(st.sampled_from(TWILIO_VALID).flatmap(near)) | as_json(garbage)
               | _not_json)
websocket_text = (as_json(st.sampled_from(WEBSOCKET_VALID).flatmap(near)) | as_json(garbage)
                  | _not_json)


# --- Twilio Media Streams -------------------------------------------------------------------

@BOUNDED
@given(twilio_text)
@example('{"event": "start", "start": {"streamSid": "s", "mediaFormat": [1]}}')
@example('{"event": "start", "start": {"streamSid": "s", "mediaFormat": {"sampleRate": "x"}}}')
@example('{"event": "start", "start": {"streamSid": "s", "mediaFormat": '
         '{"sampleRate": Infinity}}}')
@example('{"event": "start", "start": {"streamSid": "s", "customParameters": "caller"}}')
@example('{"event": "dtmf", "dtmf": "1"}')
@example('{"event": "mark", "mark": ["p-1"]}')
@example("[" * 100_000)
def test_twilio_messages_give_an_event_or_a_protocol_error(data: str) -> None:
    start, start_error = parsed(twilio.parse_start, text_msg(data))
    if start_error is None and start is not None:
        check_start(start, {"stream_sid", "call_sid", "caller", "locale"}, {"locale"})
        # Accepted only with a stream id and the one format bidirectional streams carry.
        message = json.loads(data)
        assert message["event"] == "start" and start["stream_sid"]
        assert message["start"]["mediaFormat"]["encoding"] == "audio/x-mulaw"
    event, _ = parsed(twilio.parse_message, text_msg(data))
    check_event(event)


@BOUNDED
@given(raw=st.binary(max_size=200))
def test_twilio_media_is_decoded_to_telephone_pcm(raw: bytes) -> None:
    media = {"event": "media", "media": {"payload": base64.b64encode(raw).decode()}}
    event = twilio.parse_message(text_msg(json.dumps(media)))
    assert (event is None) if not raw else (isinstance(event, AudioIn)
                                           and len(event.pcm) == 2 * len(raw))


@BOUNDED
@given(raw=st.binary(max_size=60), bad=st.sampled_from("!$%&*()~中 \x00\n.,"),
       at=st.integers(min_value=0))
def test_twilio_media_payload_that_is_not_base64_is_refused(raw: bytes, bad: str,
                                                            at: int) -> None:
    payload = base64.b64encode(raw).decode()
    at %= len(payload) + 1
    media = {"event": "media", "media": {"payload": payload[:at] + bad + payload[at:]}}
    with pytest.raises(ProtocolError, match="not base64"):
        twilio.parse_message(text_msg(json.dumps(media)))


# --- the plain WebSocket --------------------------------------------------------------------

@BOUNDED
@given(websocket_text)
@example('{"type": "start", "sample_rate": "8k"}')
@example('{"type": "start", "sample_rate": NaN}')
@example('{"type": "start", "sample_rate": [8000]}')
@example('{"type": "start", "sample_rate": 1e999}')
def test_websocket_messages_give_an_event_or_a_protocol_error(data: str) -> None:
    start, start_error = parsed(websocket.parse_start, text_msg(data))
    if start_error is None:
        check_start(start, {"caller", "locale", "call_id"}, {"locale", "call_id"})
        message = json.loads(data)
        assert message["type"] == "start" and message.get("encoding", "pcm16") == "pcm16"
    event, _ = parsed(websocket.parse_message, text_msg(data))
    check_event(event)


@BOUNDED
@given(st.binary(max_size=2000) | st.sampled_from([b"\0" * 65_536, b"\1" * 65_535]))
def test_websocket_audio_is_whole_samples_or_refused(data: bytes) -> None:
    event, error = parsed(websocket.parse_message, binary_msg(data))
    if len(data) % 2:
        assert error is not None and "16-bit samples" in error
    else:
        assert event == (AudioIn(data) if data else None)
    # Binary is never a start message: the call must begin with JSON.
    assert parsed(websocket.parse_start, binary_msg(data))[1] is not None


# --- both JSON protocols ----------------------------------------------------------------

JSON_PARSERS = [twilio.parse_start, twilio.parse_message, websocket.parse_start,
                websocket.parse_message, lambda msg: json_object(msg, "a client")]


@pytest.mark.fault("malformed messages")
@BOUNDED
@given(data=as_json(garbage.filter(lambda v: not isinstance(v, dict))) | _not_json,
       parse=st.sampled_from(JSON_PARSERS))
def test_anything_but_one_json_object_is_a_protocol_error(data: str,
                                                          parse: Callable[[Any], Any]) -> None:
    _, error = parsed(parse, text_msg(data))
    assert error is not None


@BOUNDED
@given(data=st.binary(max_size=50),
       parse=st.sampled_from([p for p in JSON_PARSERS if p is not websocket.parse_message]))
def test_binary_where_json_is_expected_is_a_protocol_error(data: bytes,
                                                           parse: Callable[[Any], Any]) -> None:
    assert parsed(parse, binary_msg(data))[1] is not None


def _twilio_dtmf(digit: Any) -> SimpleNamespace:
    return text_msg(json.dumps({"event": "dtmf", "dtmf": {"digit": digit}}))


def _websocket_dtmf(digit: Any) -> SimpleNamespace:
    return text_msg(json.dumps({"type": "dtmf", "digit": digit}))


@BOUNDED
@given(digit=st.text(max_size=30) | garbage,
       wire=st.sampled_from([(twilio.parse_message, _twilio_dtmf),
                             (websocket.parse_message, _websocket_dtmf)]))
@example(digit="123456", wire=(twilio.parse_message, _twilio_dtmf))
@example(digit=123456, wire=(websocket.parse_message, _websocket_dtmf))
def test_a_refused_key_is_never_echoed(
        digit: Any, wire: tuple[Callable[[Any], Any], Callable[[Any], SimpleNamespace]]) -> None:
    parse, message = wire
    event, error = parsed(parse, message(digit))
    if error is None:
        assert event == DigitIn(str(digit)) and str(digit) in set(DTMF_KEYS)
        return
    # The error reads the same for any content of that length: it may be part of a PIN.
    placeholder = "?" * len(str(digit))
    assert error == parsed(parse, message(placeholder))[1]
    if str(digit).isdigit() and len(str(digit)) >= 3:
        assert str(digit) not in error


# --- Asterisk AudioSocket -----------------------------------------------------------------

@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()  # its own loop: the suite's session loop is left alone
    yield loop
    loop.close()


@dataclass
class Stream:
    frames: list[tuple[int, bytes]]
    ended_by: BaseException
    unread: bytes


def read_stream(loop: asyncio.AbstractEventLoop, data: bytes, limits: Limits) -> Stream:
    """Frames read from ``data`` until the stream ends or a frame is refused."""

    async def read() -> Stream:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        frames: list[tuple[int, bytes]] = []
        try:
            while True:
                frames.append(await audiosocket.read_frame(reader, limits))
        except (ProtocolError, asyncio.IncompleteReadError) as e:
            return Stream(frames, e, await reader.read())

    return loop.run_until_complete(read())


def _parse_frame(kind: int, payload: bytes) -> tuple[Any, str | None]:
    return parsed(lambda f: audiosocket.parse_frame(*f), (kind, payload))


_payloads = st.binary(max_size=400) | st.integers(0, 0xFFFF).map(lambda n: b"\xa5" * n)


@FEW
@given(st.lists(st.tuples(st.integers(0, 0xFF), _payloads), max_size=4))
@example([(audiosocket.KIND_AUDIO, b"\0" * 0xFFFF), (audiosocket.KIND_HANGUP, b"")])
def test_audiosocket_frames_round_trip(loop: asyncio.AbstractEventLoop,
                                       frames: list[tuple[int, bytes]]) -> None:
    data = b"".join(audiosocket.frame(kind, payload) for kind, payload in frames)
    stream = read_stream(loop, data, Limits())
    assert stream.frames == frames
    # The stream ended cleanly on a frame boundary: nothing half-read.
    assert isinstance(stream.ended_by, asyncio.IncompleteReadError)
    assert stream.ended_by.partial == b"" and stream.unread == b""


@pytest.mark.fault("oversized and hostile frames")
@BOUNDED
@given(cap=st.integers(0, 0xFFFE), kind=st.integers(0, 0xFF), over=st.integers(1, 0xFFFF),
       tail=st.binary(max_size=50))
def test_audiosocket_oversize_frame_is_refused_before_its_payload(
        loop: asyncio.AbstractEventLoop, cap: int, kind: int, over: int, tail: bytes) -> None:
    length = min(cap + over, 0xFFFF)
    stream = read_stream(loop, struct.pack(">BH", kind, length) + tail,
                         Limits(max_message_bytes=cap))
    assert stream.frames == []
    assert isinstance(stream.ended_by, ProtocolError) and "cap" in str(stream.ended_by)
    assert stream.unread == tail  # the payload was never read: no 64 KiB wait per frame


@pytest.mark.fault("malformed messages")
@BOUNDED
@given(data=st.binary(max_size=600), cap=st.integers(0, 600))
def test_audiosocket_any_byte_stream_gives_frames_events_or_protocol_errors(
        loop: asyncio.AbstractEventLoop, data: bytes, cap: int) -> None:
    stream = read_stream(loop, data, Limits(max_message_bytes=cap))
    consumed = b"".join(audiosocket.frame(kind, payload) for kind, payload in stream.frames)
    assert data.startswith(consumed)
    for kind, payload in stream.frames:
        assert len(payload) <= cap
        check_event(_parse_frame(kind, payload)[0])


@BOUNDED
@given(kind=st.integers(0, 0xFF), payload=st.binary(max_size=300))
@example(kind=audiosocket.KIND_AUDIO, payload=b"\0\0\0")
@example(kind=0x12, payload=b"\0\0")
def test_audiosocket_frame_kinds(kind: int, payload: bytes) -> None:
    event, error = _parse_frame(kind, payload)
    check_event(event)
    if kind == audiosocket.KIND_AUDIO:
        assert (error is not None) if len(payload) % 2 else event == (AudioIn(payload)
                                                                       if payload else None)
    elif 0x11 <= kind <= 0x18:
        assert error is not None and "slin" in error  # says how to fix the dialplan
    elif kind in (audiosocket.KIND_HANGUP, audiosocket.KIND_ERROR):
        assert isinstance(event, CallerHangup)
    elif kind != audiosocket.KIND_DTMF:
        assert error is not None


@BOUNDED
@given(st.binary(max_size=40))
@example(b"123456")
@example(b"5")
def test_audiosocket_refused_key_is_never_echoed(payload: bytes) -> None:
    event, error = _parse_frame(audiosocket.KIND_DTMF, payload)
    if error is None:
        assert len(payload) == 1 and event == DigitIn(payload.decode())
        return
    assert error == _parse_frame(audiosocket.KIND_DTMF, b"\0" * len(payload))[1]
    if payload.isdigit() and len(payload) >= 3:
        assert payload.decode() not in error


# --- the masker -----------------------------------------------------------------------------

WIDE = str.maketrans("0123456789", "０１２３４５６７８９")
CN_SPOKEN = {"0": "零〇", "1": "一幺", "2": "二两", "3": "三", "4": "四", "5": "五", "6": "六",
             "7": "七", "8": "八", "9": "九"}
KO_SPOKEN = {"0": "공영", "1": "일", "2": "이", "3": "삼", "4": "사", "5": "오", "6": "육륙",
             "7": "칠", "8": "팔", "9": "구"}
CN_DIGITS = "".join(CN_SPOKEN.values())
KO_DIGITS = "".join(KO_SPOKEN.values())
ALL_DIGITS = "0123456789０１２３４５６７８９" + CN_DIGITS + KO_DIGITS
SEPARATORS = ["", "", " ", "-", "  ", " - ", "\u3000"]  # "" twice: most numbers are unbroken

# Filler is free of anything that can be part of a number (digits of any script, X after
# digits, spaces and dashes between them), so it cannot join the secret next to it. A digit
# syllable glued to the secret IS masked with it (금요일 123456 → 금요*******): the masker
# errs towards masking there.
_HANZI = "我的卡号是请帮查余额信用账单还款日挂失密码转人工谢谢您好银行手机身份证到期时间元月年"
_PUNCT = "，。！？、,.!?:：;()（）/@#"
_hard = (st.sampled_from(_HANZI + _PUNCT + string.ascii_letters.replace("X", "").replace("x", ""))
         | st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)
         .filter(lambda c: c not in KO_DIGITS))
_filler = st.text(_hard | st.sampled_from(" Xx"), max_size=12)
# Amounts and dates: fewer than six digits, each set off by a character that is not a digit,
# a space or a dash ("3210元", "25号", "12.5"), so two of them never make one run.
_short_number = st.builds(
    lambda hard1, digits, script, hard2: hard1 + script(digits) + hard2, _hard,
    st.text("0123456789", min_size=1, max_size=5),
    st.sampled_from([str, lambda d: d.translate(WIDE),
                     lambda d: "".join(CN_SPOKEN[c][0] for c in d)]),
    _hard)
context = st.lists(_filler | _short_number, max_size=4).map("".join)


@dataclass
class Secret:
    text: str  # as written or recognised
    masked: str  # what mask_text must make of it
    korean: bool = False  # words of their own: needs spaces around it


def masked(run: str) -> str:
    """SPEC: a card-length run keeps its last four, a shorter one is masked whole."""
    return "*" * (len(run) - 4) + run[-4:] if len(run) >= 12 else "*" * len(run)


@st.composite
def grouped(draw: st.DrawFn, digits: str) -> str:
    """Digits split into groups as people write them: 6222 0202-0011 2233."""
    out, i = "", 0
    while i < len(digits):
        size = draw(st.integers(3, 6))
        out += (draw(st.sampled_from(SEPARATORS)) if i else "") + digits[i:i + size]
        i += size
    return out


def _digits(n_min: int, n_max: int) -> st.SearchStrategy[str]:
    return st.integers(n_min, n_max).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n))


@st.composite
def card(draw: st.DrawFn) -> Secret:
    digits = draw(_digits(13, 19))
    if draw(st.booleans()):
        digits = digits.translate(WIDE)
    return Secret(draw(grouped(digits)), masked(digits))


@st.composite
def resident_id(draw: st.DrawFn) -> Secret:
    digits = draw(_digits(17, 17)) + draw(st.sampled_from("0123456789Xx"))
    return Secret(draw(grouped(digits[:17])) + digits[17], masked(digits))


@st.composite
def mobile(draw: st.DrawFn) -> Secret:
    digits = "1" + draw(st.sampled_from("3456789")) + draw(_digits(9, 9))
    sep = draw(st.sampled_from(SEPARATORS))
    text = f"{digits[:3]}{sep}{digits[3:7]}{sep}{digits[7:]}"
    if draw(st.booleans()):
        cc = draw(st.sampled_from(["", " ", "-"]))
        return Secret(f"+86{cc}{text}", "+" + masked("86" + digits))
    return Secret(text, masked(digits))


@st.composite
def spoken_chinese(draw: st.DrawFn) -> Secret:
    words = [draw(st.sampled_from(CN_SPOKEN[d])) for d in draw(_digits(6, 19))]
    gaps = [draw(st.sampled_from(["", "", " "])) for _ in words[1:]]  # ASR may space them
    text = words[0] + "".join(g + w for g, w in zip(gaps, words[1:], strict=True))
    return Secret(text, masked("".join(words)))


@st.composite
def spoken_korean(draw: st.DrawFn) -> Secret:
    words = [draw(st.sampled_from(KO_SPOKEN[d])) for d in draw(_digits(6, 19))]
    return Secret(" ".join(words), masked("".join(words)), korean=True)


secrets = st.one_of(card(), resident_id(), mobile(), spoken_chinese(), spoken_korean())


@st.composite
def surroundings(draw: st.DrawFn, korean: bool) -> tuple[str, str]:
    """Text before and after a secret: context, a non-number character, maybe a space."""
    def space() -> str:
        return " " if korean or draw(st.booleans()) else ""

    before = draw(context) + draw(_hard) + space()
    after = space() + draw(_hard) + draw(context)
    return before, after


@st.composite
def in_text(draw: st.DrawFn) -> tuple[str, Secret, str]:
    secret = draw(secrets)
    before, after = draw(surroundings(secret.korean))
    return before, secret, after


def digit_runs(text: str) -> list[str]:
    """Independent of the masker: runs of digits of any script, up to three spaces or
    dashes between two of them."""
    runs: list[str] = []
    run, gap = "", 0
    for c in text:
        if c in ALL_DIGITS:
            run, gap = run + c, 0
        elif run and gap < 3 and re.fullmatch(r"[\s-]", c):
            gap += 1
        else:
            if run:
                runs.append(run)
            run, gap = "", 0
    return [*runs, run] if run else runs


@BOUNDED
@given(in_text())
@example(("卡号", Secret("6222  0202 0011 2233", "************2233"), "丢了"))
@example(("卡号", Secret("6222 - 0202 - 0011 - 2233", "************2233"), "。"))
@example(("密码", Secret("１２３４５６", "******"), "。"))
@example(("번호는 ", Secret("공 일 공 일 이 삼 사 오 육 칠 팔 구", "********육칠팔구", korean=True),
          " 입니다"))
def test_mask_text_hides_the_secret_and_keeps_the_rest(case: tuple[str, Secret, str]) -> None:
    before, secret, after = case
    out = mask_text(before + secret.text + after)
    assert out == before + secret.masked + after
    assert all(len(run) < 6 for run in digit_runs(out))
    squeezed = re.sub(r"[\s-]", "", out)
    run = re.sub(r"[\s+-]", "", secret.text)
    assert not any(run[i:i + 6] in squeezed for i in range(len(run) - 5))


@BOUNDED
@given(in_text())
def test_every_digit_leaves_no_digit(case: tuple[str, Secret, str]) -> None:
    before, secret, after = case
    text = before + secret.text + after
    out = mask_text(text, every_digit=True)
    assert not any(c in ALL_DIGITS and c not in KO_DIGITS for c in out)
    assert not any(word in set(KO_DIGITS) for word in out.split())  # 이 in 이것 is no digit
    # Only digits were touched, one star for each.
    assert len(out) == len(text)
    assert all(a == b or (b == "*" and a in ALL_DIGITS) for a, b in zip(text, out, strict=True))


@BOUNDED
@given(context)
@example("还款3210.00元，25号")
@example("2024年5月25日12:30")
@example("余额12,345.67元")
def test_short_runs_are_kept(text: str) -> None:
    assert mask_text(text) == text


@BOUNDED
@given(st.text(max_size=60) | st.builds(lambda c, s: c[0] + s.text + c[1], st.tuples(
    context, context), secrets) | st.text(st.sampled_from(ALL_DIGITS + " -Xx"), max_size=40))
@example("123456789012X3456")
@example("1234567890123 4")
def test_masking_is_idempotent_and_leaves_no_long_run(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once
    assert all(len(run) < 6 for run in digit_runs(once))
    every = mask_text(text, every_digit=True)
    assert mask_text(every, every_digit=True) == every


@BOUNDED
@given(card().map(lambda s: s.text) | st.text(max_size=40))
def test_mask_card_keeps_the_last_four_digits_only(number: str) -> None:
    digits = [c for c in number if c.isdecimal()]
    out = mask_card(number)
    assert out == "*" * max(len(digits) - 4, 0) + "".join(digits[-4:])
