"""Masking of PINs, card and ID numbers (SPEC rule 3): the masker on numbers in every form
a caller writes or a recogniser hears, then real calls (text and voice) that say secrets,
scanned wherever the words could land: call-log events, the handoff bundle, the console's
JSON, the metrics text and the server log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from test_fuzz_properties import Secret, revealed

from ivr.call import KEYPAD_PROMPTS
from ivr.calllog import CallEvent
from ivr.masking import longest_number, mask_card, mask_entry, mask_text


def test_card_keeps_only_its_last_four():
    assert mask_card("6222 0200 0000 1234") == "************1234"
    assert mask_card("6222.0200.0000\u200b1234") == "************1234"
    assert mask_card("六二二二 零二零零 零零零零 幺二三四") == "************1234"


@pytest.mark.parametrize(("text", "expected"), [
    ("我的密码是123456", "我的密码是******"),
    ("卡号6222020000001234", "卡号************1234"),
    ("卡号 6222-0200-0000-1234 丢了", "卡号 ************1234 丢了"),
    ("身份证11010519491231002X", "身份证**************002X"),
    ("密码是一二三四五六", "密码是******"),
    # Separators of any kind and length, invisible characters inside.
    ("卡号6222.0202.0011.2233", "卡号************2233"),
    ("卡号6222/0202/0011/2233", "卡号************2233"),
    ("卡号6222_0202_0011_2233", "卡号************2233"),
    ("卡号6222、0202、0011、2233", "卡号************2233"),
    ("卡号6222，0202，0011，2233", "卡号************2233"),
    ("卡号6222    0202    0011    2233", "卡号************2233"),
    ("卡号６２２２－０２０２－００１１－２２３３", "卡号************２２３３"),
    ("密码123\u200b456", "密码******"),
    ("密码1\u200c2\u200d3\u20604\ufeff5\u00ad6", "密码******"),
    # Chinese numerals: digit by digit, financial, 幺 and 两, with place values.
    ("密码一二三，四五六", "密码******"),
    ("密码壹贰叁肆伍陆", "密码******"),
    ("密码幺两三 四五六", "密码******"),
    ("账号十二万三千四百五十六", "账号******"),
    # Korean: run together, as words, native numbers.
    ("비밀번호는 일이삼사오육입니다", "비밀번호는 ******입니다"),
    ("비밀번호는 일 이 삼 사 오 육", "비밀번호는 ******"),
    ("비밀번호는 하나 둘 셋 넷 다섯 여섯", "비밀번호는 ******"),
    ("비밀번호는 십이만 삼천사백오십육", "비밀번호는 **********"),
    # A word glued to a number keeps its letters.
    ("금요일 123456", "금요일 ******"),
    ("星期一 123456", "星期一 ******"),
    # Amounts and dates stay readable.
    ("还款3210元，25号", "还款3210元，25号"),
    ("还款3210.00元，25号", "还款3210.00元，25号"),
    ("余额12,345.67元", "余额12,345.67元"),
    ("刷了五千八，3月25日", "刷了五千八，3月25日"),
    ("两万块", "两万块"),
    ("被骗了二十万", "被骗了二十万"),
    ("이십만 원 보냈어요", "이십만 원 보냈어요"),
    ("2024年5月25日12:30", "2024年5月25日12:30"),
])
def test_free_text_masks_long_numbers(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_an_entry_masks_every_word_and_a_number_is_measured_in_any_form() -> None:
    assert mask_entry("幺二三 思悟流") == "*** ***"  # whatever the recogniser heard
    assert longest_number("等一下") == 1 and longest_number("一二三") == 3
    assert longest_number("十二万三千四百五十六") == 6 and longest_number("二十万") == 1


# --- real calls: nothing said aloud is kept -------------------------------------------------
def strings(data: Any) -> list[str]:
    """Every string in a JSON-like structure (keys too): where text can be read."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in [str(k), *strings(v)]]
    if isinstance(data, list | tuple):
        return [s for v in data for s in strings(v)]
    return []


def assert_hidden(where: str, data: Any, *hidden: Secret) -> None:
    for text in strings(data):
        for secret in hidden:
            assert not revealed(text, secret), f"{where}: {text!r} reveals {secret.text!r}"


@dataclass
class Logged:
    """A call's events, as the call log got them."""

    events: list[CallEvent]

    def record(self, event: CallEvent) -> None:
        self.events.append(event)

    def data(self) -> list[dict[str, Any]]:
        return [{"kind": e.kind, **e.data} for e in self.events]


async def test_a_pin_said_while_it_is_asked_for_is_refused_and_never_kept(call, ko_call) -> None:
    result = await call([{"say": "查余额"}, {"say": "幺二三 四五六"}, {"dtmf": "123456#"}])
    turns = result["turns"]
    assert turns[1]["input"] == {"say": "*** ***", "masked": "pin"}
    assert turns[1]["prompts"][0] == KEYPAD_PROMPTS["zh"]["pin"]
    assert result["outcome"] == "self_service"  # keyed, it verifies
    ko = await ko_call([{"say": "잔액 조회"}, {"say": "일이삼사오육"}, {"say": "일 이 삼 사 오 육"}])
    assert ko["turns"][1]["prompts"][0] == KEYPAD_PROMPTS["ko"]["pin"]
    assert ko["reason"] == "no_match"  # twice: not a dead end (SPEC rule 1)
    for said in (result, ko):
        assert_hidden("result", said, Secret("123456", "", digits="123456"))
