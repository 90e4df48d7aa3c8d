"""The dialect/near-homophone normaliser, on its own and on the shipped data files."""

from pathlib import Path

import pytest

from ivr.errors import DataFileError
from ivr.nlu.normalizer import MANDARIN, Normalizer
from ivr.project import Project

FUZZY = [("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"), ("an", "ang"), ("en", "eng"),
         ("in", "ing")]


@pytest.fixture(scope="module")
def small() -> Normalizer:
    return Normalizer(
        {"yue": {"睇下": "看下", "唔见咗": "丢了", "几多": "多少"}, "wu": {"几钿": "多少钱"},
         "db": {"咋整": "怎么办"}},
        ["余额", "挂失", "信用卡", "账单", "转人工"],
        FUZZY,
    )


@pytest.fixture(scope="module")
def shipped() -> Normalizer:
    return Normalizer.from_files(*Project.discover().normalizer_files())


def test_dialect_phrases_become_mandarin_and_name_the_dialect(small):
    result = small.normalize("我张卡唔见咗，咋整")
    assert result.text == "我张卡丢了，怎么办"
    assert result.dialect == "yue"  # 3 Cantonese characters outweigh 2 Northeastern ones


def test_plain_mandarin_is_untouched(small):
    result = small.normalize("帮我查一下信用卡账单")
    assert result.text == "帮我查一下信用卡账单"
    assert result.dialect == MANDARIN
    assert result.replacements == ()


@pytest.mark.parametrize(("heard", "meant"), [
    ("我要刮失", "我要挂失"),      # same pinyin, one character shared
    ("查一下与额", "查一下余额"),
    ("信用咖账单", "信用卡账单"),
    ("我要赚人工", "我要转人工"),  # zhuan/zhuan: exact pinyin
])
def test_near_homophones_become_the_banking_term(small, heard, meant):
    assert small.normalize(heard).text == meant


def test_fuzzy_pinyin_needs_a_shared_character(small):
    # zang dan ~ zhang dan only through fuzzy z/zh: allowed because 单 is shared.
    assert small.normalize("查脏单").text == "查账单"
    # 然后 (ran hou) sounds like nothing in the lexicon and must survive.
    assert small.normalize("然后呢").text == "然后呢"


def test_offsets_map_back_through_length_changes(small):
    result = small.normalize("几钿信用卡")  # 2 chars -> 3 chars before the entity
    assert result.text == "多少钱信用卡"
    start, end = result.map_offset(2), result.map_offset(5)
    assert result.text[start:end] == "信用卡"


def test_shipped_data_covers_every_dialect_and_the_spec_examples(shipped):
    for heard, dialect in [("睇下我仲有几多钱", "yue"), ("卡搞掉了咋个办", "sc"),
                           ("卡丢了咋整", "db"), ("还要还几钿", "wu")]:
        result = shipped.normalize(heard)
        assert result.dialect == dialect, (heard, result)
        assert result.text != heard
    assert shipped.normalize("我要刮失").text == "我要挂失"
    assert shipped.normalize("查与额").text == "查余额"
    assert "信用卡" in shipped.normalize("信用咖还款").text


def test_a_new_synonym_in_the_data_file_changes_behaviour(tmp_path: Path):
    dialects, lexicon = Project.discover().normalizer_files()
    utterance = "荷包仲有几多"
    assert "荷包" in Normalizer.from_files(dialects, lexicon).normalize(utterance).text
    edited = tmp_path / "dialects.yml"
    text = dialects.read_text(encoding="utf-8")
    edited.write_text(text.replace("  yue:", "  yue:\n    荷包: 账户", 1), encoding="utf-8")
    after = Normalizer.from_files(edited, lexicon).normalize(utterance)
    assert after.text.startswith("账户")
    assert after.dialect == "yue"


def test_broken_data_file_is_a_one_line_error(tmp_path: Path):
    bad = tmp_path / "dialects.yml"
    bad.write_text("dialects:\n  yue: [unclosed\n", encoding="utf-8")
    lexicon = Project.discover().normalizer_files()[1]
    with pytest.raises(DataFileError, match=r"dialects.yml: line \d+: not valid YAML"):
        Normalizer.from_files(bad, lexicon)
    missing = tmp_path / "nope.yml"
    with pytest.raises(DataFileError, match="file not found"):
        Normalizer.from_files(missing, lexicon)
