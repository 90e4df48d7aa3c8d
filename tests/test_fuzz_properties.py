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
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import WSMsgType
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ivr.core.masking import mask_card, mask_entry, mask_text
from ivr.telephony import Limits, ProtocolError, audiosocket, json_object, twilio, websocket
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, PlaybackDone

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
# Digits as people write them in other scripts: full width, Arabic-Indic, circled.
SCRIPTS = [str.maketrans("0123456789", d) for d in (
    "０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "⓪①②③④⑤⑥⑦⑧⑨")]
CN_SPOKEN = {"0": "零〇", "1": "一幺壹", "2": "二两贰", "3": "三叁", "4": "四肆", "5": "五伍",
             "6": "六陆", "7": "七柒", "8": "八捌", "9": "九玖"}
KO_SPOKEN = {"0": "공영", "1": "일", "2": "이", "3": "삼", "4": "사", "5": "오", "6": "육륙",
             "7": "칠", "8": "팔", "9": "구"}
KO_NATIVE = {"0": ["공", "영"], "1": ["하나"], "2": ["둘"], "3": ["셋"], "4": ["넷"],
             "5": ["다섯"], "6": ["여섯"], "7": ["일곱"], "8": ["여덟"], "9": ["아홉"]}
CN_DIGITS = "".join(CN_SPOKEN.values())
KO_DIGITS = "".join(KO_SPOKEN.values())
ALL_DIGITS = "0123456789０１２３４５６７８９" + CN_DIGITS + KO_DIGITS
CN_PLACES = "十拾百佰千仟万萬亿億"
KO_PLACES = "십백천만억"
# Anything that is neither letter nor digit separates the groups of one number, at any
# length: spaces, punctuation, full-width and ideographic marks, invisible characters.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
SEPARATOR_CHARS = " \t\n\u3000-.,/_、，。．／＿－·:;|~+*" + INVISIBLE
separator = st.text(st.sampled_from(SEPARATOR_CHARS), min_size=1, max_size=6)

# Words next to a number: nothing that is part of one (digits of any script, numerals, X
# after digits, 둘/셋/넷), nor a currency word (money is kept: test_masking).
_HANZI = "我的卡号是请帮查余额信用账单还款日挂失密码转人工谢谢您好银行手机身份证到期时间月年"
_word = (st.sampled_from(_HANZI + string.ascii_letters.replace("X", "").replace("x", ""))
         | st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)
         .filter(lambda c: c not in KO_DIGITS + KO_PLACES + "둘셋넷원"))
_filler = st.text(_word | st.sampled_from(SEPARATOR_CHARS), max_size=12)
# Amounts and dates: fewer than six digits, set off by words ("3210元", "25号", "12.5"), so
# two of them never make one number.
_short_number = st.builds(
    lambda word1, digits, script, word2: word1 + script(digits) + word2, _word,
    st.text("0123456789", min_size=1, max_size=5),
    st.sampled_from([str, lambda d: d.translate(WIDE),
                     lambda d: "".join(CN_SPOKEN[c][0] for c in d)]),
    _word)
context = st.lists(_filler | _short_number, max_size=4).map("".join)


@dataclass
class Secret:
    text: str  # as written or recognised
    masked: str  # what mask_text must make of it
    korean: bool = False  # words of their own: needs a separator around it
    digits: str = ""  # the secret itself, as ASCII digits


def masked(units: str | list[str]) -> str:
    """SPEC: a card-length number keeps its last four (as written), a shorter one is masked
    whole. ``units``: the number's digits as written, one each."""
    units = list(units)
    return "*" * (len(units) - 4) + "".join(units[-4:]) if len(units) >= 12 else \
        "*" * len(units)


@st.composite
def grouped(draw: st.DrawFn, units: list[str], seps: st.SearchStrategy[str] | None = None
            ) -> str:
    """Digits split into groups of three or more, as people write them (6222 0202-0011 2233,
    6222.0202.0011.2233, 一二三，四五六), with separators of any kind and length."""
    out, i = "", 0
    while i < len(units):
        size = draw(st.integers(3, 6))
        if len(units) - (i + size) < 3:
            size = len(units) - i  # no lone digit at the end, glued to the word after
        seps = separator if seps is None else seps
        sep = draw(st.sampled_from(["", "", ""]) | seps) if i else ""
        out += sep + "".join(units[i:i + size])
        i += size
    return out


def _digits(n_min: int, n_max: int) -> st.SearchStrategy[str]:
    return st.integers(n_min, n_max).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n))


@st.composite
def with_invisible(draw: st.DrawFn, units: list[str]) -> list[str]:
    """Invisible characters (zero-width space, joiners, BOM, soft hyphen) inside a number."""
    return [u + draw(st.sampled_from(["", "", "", *INVISIBLE])) if i < len(units) - 1 else u
            for i, u in enumerate(units)]


@st.composite
def card(draw: st.DrawFn) -> Secret:
    digits = draw(_digits(13, 19))
    units = list(digits.translate(draw(st.sampled_from([{}, *SCRIPTS]))))
    text = draw(grouped(draw(with_invisible(units))))
    return Secret(text, masked(units), digits=digits)


@st.composite
def pin(draw: st.DrawFn) -> Secret:
    """Six to eleven digits (a PIN, an account fragment), written in any script, mixed."""
    digits = draw(_digits(6, 11))
    units = [c.translate(draw(st.sampled_from([{}, *SCRIPTS]))) for c in digits]
    return Secret(draw(grouped(draw(with_invisible(units)))), masked(units), digits=digits)


@st.composite
def resident_id(draw: st.DrawFn) -> Secret:
    digits = draw(_digits(17, 17)) + draw(st.sampled_from("0123456789Xx"))
    return Secret(draw(grouped(list(digits[:17]))) + digits[17], masked(digits),
                  digits=digits[:17])


@st.composite
def mobile(draw: st.DrawFn) -> Secret:
    digits = "1" + draw(st.sampled_from("3456789")) + draw(_digits(9, 9))
    sep = draw(st.sampled_from(["", " ", "-"]) | separator)
    text = f"{digits[:3]}{sep}{digits[3:7]}{sep}{digits[7:]}"
    if draw(st.booleans()):
        cc = draw(st.sampled_from(["", " ", "-"]))
        return Secret(f"+86{cc}{text}", "+" + masked("86" + digits), digits=digits)
    return Secret(text, masked(digits), digits=digits)


@st.composite
def spoken_chinese(draw: st.DrawFn) -> Secret:
    """Digit by digit (一二三, 幺, 两, financial 壹贰叁), ASR-spaced or punctuated."""
    digits = draw(_digits(6, 19))
    words = [draw(st.sampled_from(CN_SPOKEN[d])) for d in digits]
    return Secret(draw(grouped(words, st.sampled_from([" ", "，", "、"]) | separator)),
                  masked(words), digits=digits)


def place_value(number: int, numerals: str, places: str, korean: bool) -> str:
    """123456 as 十二万三千四百五十六 (or 십이만삼천사백오십육): how amounts are said."""
    zero_word = "" if korean else numerals[0]  # 一百零五, but 백오

    def four(x: int, lead: bool) -> str:
        out, zero = "", False
        for place, name in ((1000, places[2]), (100, places[1]), (10, places[0]), (1, "")):
            d = x // place % 10
            if not d:
                zero = zero or bool(out)
                continue
            out += zero_word if zero else ""
            zero = False
            silent = d == 1 and place > 1 and (korean or (place == 10 and lead and not out))
            out += ("" if silent else numerals[d]) + name
        return out

    high, low = divmod(number, 10000)
    if not high:
        return four(low, True)
    return four(high, True) + places[3] + (zero_word if 0 < low < 1000 else "") + (
        four(low, False) if low else "")


@st.composite
def spoken_amount(draw: st.DrawFn) -> Secret:
    """A secret said as a number with place values: six to eight digits, the last not
    zero (a round amount, 二十万, is no secret: ivr/core/masking.py)."""
    digits = draw(_digits(5, 7)) + draw(st.sampled_from("123456789"))
    value = int(digits)
    digits = str(value)
    assume(len(digits) >= 6)
    if draw(st.booleans()):
        return Secret(place_value(value, "零一二三四五六七八九", "十百千万", False),
                      "*" * len(digits), digits=digits)
    return Secret(place_value(value, "영일이삼사오육칠팔구", "십백천만", True),
                  "*" * len(digits), korean=True, digits=digits)


@st.composite
def spoken_korean(draw: st.DrawFn) -> Secret:
    """Sino-Korean digits as words (일 이 삼) or run together (일이삼사오육), or native
    Korean numbers as words (하나 둘 셋)."""
    digits = draw(_digits(6, 19))
    form = draw(st.sampled_from(["words", "run", "native"]))
    if form == "native":
        words = [draw(st.sampled_from(KO_NATIVE[d])) for d in digits]
    else:
        words = [draw(st.sampled_from(KO_SPOKEN[d])) for d in digits]
    if form == "run":
        return Secret(draw(grouped(words, st.sampled_from([" ", ", "]) | separator)),
                      masked(words), korean=True, digits=digits)
    gaps = [draw(st.sampled_from([" ", "  ", ", "]) | separator) for _ in words[1:]]
    text = words[0] + "".join(g + w for g, w in zip(gaps, words[1:], strict=True))
    return Secret(text, masked(words), korean=True, digits=digits)


secrets = st.one_of(card(), pin(), resident_id(), mobile(), spoken_chinese(), spoken_amount(),
                    spoken_korean())


@st.composite
def surroundings(draw: st.DrawFn, korean: bool) -> tuple[str, str]:
    """Text before and after a secret: context, a word, maybe separators (always, for
    Korean words: a digit syllable glued to a word is part of it)."""
    def apart() -> str:
        return draw(separator) if korean or draw(st.booleans()) else ""

    before = draw(context) + draw(_word) + apart()
    after = apart() + draw(_word) + draw(context)
    return before, after


@st.composite
def in_text(draw: st.DrawFn) -> tuple[str, Secret, str]:
    secret = draw(secrets)
    before, after = draw(surroundings(secret.korean))
    return before, secret, after


_DIGIT_OF = {c: d for d, chars in CN_SPOKEN.items() for c in chars} | {
    c: d for d, chars in KO_SPOKEN.items() for c in chars}
_HANGUL = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
_NATIVE = re.compile("(?<![{0}])({1})(?![{0}])".format(_HANGUL, "|".join(
    w for words in KO_NATIVE.values() for w in words if len(w) > 1 or w in "둘셋넷")))
_NATIVE_DIGIT = {w: d for d, words in KO_NATIVE.items() for w in words}
# Money, which the masker keeps (余额为12345.67元): not a number a secret can hide in.
_MONEY = re.compile(r"(?<![\d.,])(?:\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+\.\d{1,2})(?=\s*[元块원])")


def hangul(text: str, i: int) -> bool:
    return 0 <= i < len(text) and re.fullmatch(f"[{_HANGUL}]", text[i]) is not None


def digit_stream(text: str) -> str:
    """Independent of the masker: every digit of the text as ASCII in order, separators
    left out, "|" for a letter. A Korean digit syllable glued to Korean letters counts
    only in a run of three (이 is also "this": 이것)."""
    text = _MONEY.sub("|", _NATIVE.sub(lambda m: _NATIVE_DIGIT[m.group()], text))
    out = []
    for i, c in enumerate(text):
        if c in KO_DIGITS:
            j, k = i, i
            while j > 0 and text[j - 1] in KO_DIGITS + KO_PLACES:
                j -= 1
            while k < len(text) and text[k] in KO_DIGITS + KO_PLACES:
                k += 1
            glued = hangul(text, j - 1) or hangul(text, k)
            out.append(_DIGIT_OF[c] if k - j >= 3 or not glued else "|")
        elif c in _DIGIT_OF:
            out.append(_DIGIT_OF[c])
        elif c.isalnum() and unicodedata.digit(c, None) is not None:
            out.append(str(unicodedata.digit(c)))
        elif c.isalnum():
            out.append("|")
    return "".join(out)


def digit_runs(text: str) -> list[str]:
    """The numbers of the text, as digit strings (place values read as words)."""
    return [run for run in digit_stream(text).split("|") if run]


def revealed(text: str, secret: Secret) -> list[str]:
    """Six digits in a row of the secret that can be read in the text, in any form."""
    stream = digit_stream(text)
    pieces = [secret.digits[i:i + 6] for i in range(len(secret.digits) - 5)
              if secret.digits[i:i + 6] in stream]
    squeeze = re.compile(r"[\W_]+")  # and the secret as said, separators apart
    if len(secret.digits) >= 6 and squeeze.sub("", secret.text) in squeeze.sub(
            "", _MONEY.sub("|", text)):
        pieces.append(secret.text)
    return pieces


@BOUNDED
@given(in_text())
@example(("卡号", Secret("6222  0202 0011 2233", "************2233"), "丢了"))
@example(("卡号", Secret("6222 - 0202 - 0011 - 2233", "************2233"), "。"))
@example(("卡号", Secret("6222.0202.0011.2233", "************2233"), "丢了"))
@example(("卡号", Secret("6222/0202/0011_2233", "************2233"), "丢了"))
@example(("卡号", Secret("6222、0202，0011    2233", "************2233"), "丢了"))
@example(("密码", Secret("123\u200b456", "******"), "。"))
@example(("密码", Secret("１２３４５６", "******"), "。"))
@example(("密码", Secret("一二三，四五六", "******"), "。"))
@example(("密码", Secret("壹贰叁肆伍陆", "******"), "。"))
@example(("账号", Secret("十二万三千四百五十六", "******"), "。"))
@example(("번호는 ", Secret("일이삼사오육", "******", korean=True), "입니다"))
@example(("번호는 ", Secret("하나 둘 셋 넷 다섯 여섯", "******", korean=True), " 입니다"))
@example(("번호는 ", Secret("공 일 공 일 이 삼 사 오 육 칠 팔 구", "********육칠팔구", korean=True),
          " 입니다"))
def test_mask_text_hides_the_secret_and_keeps_the_rest(case: tuple[str, Secret, str]) -> None:
    before, secret, after = case
    out = mask_text(before + secret.text + after)
    assert out == before + secret.masked + after
    assert all(len(run) < 6 for run in digit_runs(out))
    if secret.digits:
        assert not revealed(out, secret)


@BOUNDED
@given(in_text())
def test_every_digit_leaves_no_digit(case: tuple[str, Secret, str]) -> None:
    before, secret, after = case
    text = before + secret.text + after
    out = mask_text(text, every_digit=True)
    assert not digit_runs(out) and not revealed(out, secret)
    # Only numbers were touched, one star for each character.
    assert len(out) == len(text)
    assert all(a == b or (b == "*" and a.isalnum()) for a, b in zip(text, out, strict=True))


@BOUNDED
@given(in_text())
def test_an_entry_masks_the_whole_utterance(case: tuple[str, Secret, str]) -> None:
    """While a PIN or card number is collected, nothing the caller said is kept."""
    out = mask_entry("".join(case[0::2]) + case[1].text)
    assert set(out) <= {"*"} | set(string.whitespace) | set("\u3000")


@BOUNDED
@given(context)
@example("还款3210.00元，25号")
@example("2024年5月25日12:30")
@example("余额12,345.67元")
@example("刷了五千八，3月25日还款，两万块")
@example("被骗了二十万")
def test_short_runs_are_kept(text: str) -> None:
    assert mask_text(text) == text


@BOUNDED
@given(st.text(max_size=60) | st.builds(lambda c, s: c[0] + s.text + c[1], st.tuples(
    context, context), secrets) | st.text(st.sampled_from(
        ALL_DIGITS + CN_PLACES + KO_PLACES + SEPARATOR_CHARS + "Xx"), max_size=40))
@example("123456789012X3456")
@example("1234567890123 4")
@example("零零零零零零十")
def test_masking_is_idempotent_and_leaves_no_long_run(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once
    assert all(len(run) < 6 for run in digit_runs(once))
    every = mask_text(text, every_digit=True)
    assert mask_text(every, every_digit=True) == every


@BOUNDED
@given(card().map(lambda s: s.text) | spoken_chinese().map(lambda s: s.text)
       | st.text(max_size=40))
def test_mask_card_keeps_the_last_four_digits_only(number: str) -> None:
    digits = digit_stream(number).replace("|", "")
    out = mask_card(number)  # place values read as a number: maybe more digits than these
    assert re.fullmatch(r"\**[0-9]{0,4}", out) and len(out) >= len(digits)
    assert not revealed(out, Secret(number, "", digits=digits))
