"""The knowledge base file ops edit, with each locale's spoken labels."""

import datetime

import pytest

from ivr.dialogue.bank import CREDIT, DEBIT
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.dialogue.routing import QUEUES, TOPICS
from ivr.errors import DataFileError
from ivr.project import Project
from ivr.yamlfile import read_mapping


def test_shipped_knowledge_base_loads(project):
    kb = KnowledgeBase.load(project.knowledge)
    assert {"美元", "欧元", "日元", "港币"} <= kb.exchange_rates.keys()
    assert [b.city for b in kb.branches_in("上海哪里有网点")] == ["上海"]
    assert len(kb.branches_in("最近的网点")) == len(kb.branches)


@pytest.mark.parametrize("locale", ["zh", "ko"])
def test_every_locale_labels_every_topic_queue_card_and_currency(project, locale):
    kb = KnowledgeBase.load(Project(project.root, locale).knowledge)
    assert set(TOPICS) <= kb.labels.topics.keys()
    assert set(QUEUES) <= kb.labels.queues.keys()
    assert {CREDIT, DEBIT} <= kb.labels.card_types.keys()
    assert kb.exchange_rates.keys() <= kb.labels.currencies.keys()


def test_korean_knowledge_is_the_same_bank_in_korean(project):
    zh = KnowledgeBase.load(project.knowledge)
    ko = KnowledgeBase.load(Project(project.root, "ko").knowledge)
    assert ko.exchange_rates == zh.exchange_rates  # same canonical currencies, same numbers
    assert list(ko.interest_rates.values()) == list(zh.interest_rates.values())
    assert len(ko.branches) == len(zh.branches)
    assert [b.city for b in ko.branches_in("상하이 지점 어디예요")] == ["상하이"]
    assert ko.labels.card_type(CREDIT) == "신용카드" and ko.labels.queue("fraud")
    assert ko.exchange_answer("美元") == "미국 달러 712.35위안"
    assert zh.exchange_answer("美元") == "美元712.35元"
    assert zh.exchange_answer(None) == "美元712.35元；欧元776.8元；港币91.48元；日元4.72元"
    assert zh.labels.date(datetime.date(2026, 11, 5)) == "11月5日"
    assert ko.labels.date(datetime.date(2026, 11, 5)) == "11월 5일"


@pytest.mark.parametrize(("content", "fragment"), [
    ("branches: [\n", "not valid YAML"),
    ("branches: []\n", "malformed knowledge base"),
    ("- just a list\n", "expected a mapping"),
])
def test_broken_knowledge_base_is_a_clear_error(tmp_path, content, fragment):
    path = tmp_path / "kb.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match=fragment):
        KnowledgeBase.load(path)


def _edit_labels(data: dict, change: str) -> None:
    labels = data["labels"]
    if change == "no labels":
        del data["labels"]
    elif change == "topic":
        del labels["topics"]["complaint"]
    elif change == "queue":
        labels["queues"]["fraud"] = ""
    elif change == "card":
        del labels["card_types"]["信用卡"]
    elif change == "currency":
        del labels["currencies"]["英镑"]
    elif change == "default":
        labels["rates"]["default_currencies"] = ["美元", "比特币"]
    elif change == "template":
        labels["rates"]["exchange_rate"] = "{currency}元"
    elif change == "broken template":
        labels["rates"]["interest_rate"] = "{name}{rate"
    elif change == "date":
        labels["date"] = "{month}月"
    elif change == "money":
        labels["money"] = "元"
    elif change == "memo":
        labels["memo"] = {"scripts": ["HANGUL"]}
    elif change == "keyed":
        del labels["keyed_secrets"]["pin"]


@pytest.mark.parametrize(("change", "fragment"), [
    ("no labels", "labels must be a mapping"),
    ("topic", "labels.topics has no label for 'complaint'"),
    ("queue", "labels.queues has no label for 'fraud'"),
    ("card", "labels.card_types has no label for '信用卡'"),
    ("currency", "labels.currencies has no label for '英镑'"),
    ("default", "no exchange rate for '比特币'"),
    ("template", "lacks {rate}"),
    ("broken template", "labels.rates.interest_rate: bad template"),
    ("date", "labels.date: template '{month}月' lacks {day}"),
    ("money", "labels.money: template '元' lacks {amount}"),
    ("memo", "labels.memo.otherwise is missing"),
    ("keyed", "labels.keyed_secrets has no label for 'pin'"),
])
def test_a_missing_or_malformed_label_is_a_one_line_error(project, tmp_path, change, fragment):
    import yaml

    data = read_mapping(project.knowledge)
    _edit_labels(data, change)
    path = tmp_path / "zh.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DataFileError) as error:
        KnowledgeBase.load(path)
    message = str(error.value)
    # Named by the file: a path outside the project is never shown whole (docs/security.md).
    assert fragment in message and message.startswith("zh.yml: ") and "\n" not in message
    assert str(tmp_path) not in message


@pytest.mark.parametrize("locale", ["zh", "ko"])
def test_knowledge_topics_are_answered_from_the_file_not_the_code(project, tmp_path, locale):
    """An ops edit of knowledge/<locale>.yml is what the caller hears, with no code change;
    every knowledge topic has an answer, said with a response the domain has."""
    import yaml

    from ivr.dialogue.knowledge import Answer
    from ivr.dialogue.routing import Service

    data = read_mapping(Project(project.root, locale).knowledge)
    first = data["branches"][0]
    first["hours"] = "00:00-24:00"
    data["interest_rates"]["rates"] = {"X": "9.99%"}
    edited = tmp_path / f"{locale}.yml"
    edited.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    kb = KnowledgeBase.load(edited)

    assert kb.answer("branch_info", f"{first['city']}的网点") == [Answer(
        "utter_branch", {"name": first["name"], "address": first["address"],
                         "hours": "00:00-24:00"})]
    assert "9.99%" in kb.answer("interest_rate", "")[0].values["rates"]
    responses = read_mapping(project.domain)["responses"]
    for topic in (t for t, v in TOPICS.items() if v.service is Service.KNOWLEDGE):
        said = kb.answer(topic, "")
        assert said and all(a.response in responses for a in said), topic
    assert kb.answer("check_balance", "") == []  # account topics are the bank's


def test_amounts_are_said_in_the_locales_currency_words(project):
    from decimal import Decimal

    zh = KnowledgeBase.load(project.knowledge).labels
    ko = KnowledgeBase.load(Project(project.root, "ko").knowledge).labels
    assert zh.amount(Decimal("12345.6")) == "12345.60元"
    assert ko.amount(Decimal("-268.5")) == "-268.50위안"


def test_a_memo_is_said_as_recorded_only_where_the_locales_voice_can_read_it(project):
    zh = KnowledgeBase.load(project.knowledge).labels
    ko = KnowledgeBase.load(Project(project.root, "ko").knowledge).labels
    assert zh.memo("超市消费") == "超市消费"
    assert ko.memo("超市消费") == ko.memo("ATM取款") == "가맹점 거래"
    assert ko.memo("Starbucks 강남점") == "Starbucks 강남점"
    assert ko.memo("이마트 2024") == "이마트 2024"  # digits and spaces are no script
