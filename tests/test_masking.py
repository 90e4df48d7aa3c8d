"""Masking of PINs, card and ID numbers (SPEC rule 3)."""

import pytest

from ivr.masking import mask_card, mask_text


def test_card_keeps_only_its_last_four():
    assert mask_card("6222 0200 0000 1234") == "************1234"


@pytest.mark.parametrize(("text", "expected"), [
    ("我的密码是123456", "我的密码是******"),
    ("卡号6222020000001234", "卡号************1234"),
    ("卡号 6222-0200-0000-1234 丢了", "卡号 ************1234 丢了"),
    ("身份证11010519491231002X", "身份证**************002X"),
    ("密码是一二三四五六", "密码是******"),
    ("还款3210元，25号", "还款3210元，25号"),  # amounts and dates stay readable
])
def test_free_text_masks_long_digit_runs(text, expected):
    assert mask_text(text) == expected
