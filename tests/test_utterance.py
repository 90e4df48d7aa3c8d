"""What the classifier gets of an utterance (ivr/dialogue/utterance.py): hesitations,
fillers and line checks are nothing said (SPEC rule 1), alone a no-match and never an
intent, in a yes/no state never a yes; traditional characters read as simplified; English
banking words as the locale's; a correction leaves what the caller wants."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.dialogue.utterance import Hesitations, UtterancePrep
from tests.conftest import KNOWN, VAGUE, prompts

LOCALES = Path(__file__).resolve().parent.parent / "locales"
PIN = "123456"
ZH_NOTHING = ["嗯嗯嗯", "那个……", "呃，等一下", "就是那个什么", "喂喂", "喂？喂？听得到吗",
              "嗯。。。", "呃 那个", "额……", "您好", "嗯哼", "你稍等我一下，我翻一下",
              "喂，听唔听到啊", "吗 的 了 呢", "嗯……嗰个……", "等阵先", "等一哈", ""]
KO_NOTHING = ["음", "어", "음... 저기요", "여보세요 여보세요", "잠깐만요", "저기 그러니까",
              "잘 들리세요?"]


@pytest.fixture(scope="module")
def zh() -> UtterancePrep:
    return UtterancePrep.for_locale(LOCALES / "zh.yml")


@pytest.fixture(scope="module")
def ko() -> UtterancePrep:
    return UtterancePrep.for_locale(LOCALES / "ko.yml")


@pytest.mark.parametrize("text", ZH_NOTHING)
def test_zh_fillers_alone_are_nothing_said(zh: UtterancePrep, text: str) -> None:
    assert zh(text) == ""


@pytest.mark.parametrize("text", KO_NOTHING)
def test_ko_fillers_alone_are_nothing_said(ko: UtterancePrep, text: str) -> None:
    assert ko(text) == ""


@pytest.mark.parametrize(("text", "wanted"), [
    ("嗯，我想查一下余额", "我想查一下余额"),
    ("呃……那个，信用卡账单", "信用卡账单"),
    ("嗯 我 想 查 余额", "我想查余额"),  # a recogniser's spaces between Chinese words
    ("喂，你好，我卡丢了", "我卡丢了"),
])
def test_zh_fillers_around_a_request_are_taken_out(zh: UtterancePrep, text: str,
                                                   wanted: str) -> None:
    assert zh(text) == wanted


@pytest.mark.parametrize("text", [
    "那个卡丢了",        # a determiner, not a filler
    "额度还有多少",      # 额 starts a word
    "等额本息怎么算",    # 等 starts a word
    "就这样吧",
    "唔系呢个",          # Cantonese "not this one": 唔 is a negation
    "我要查余额",
    "什么时候还款",
    "好的",
    "是",
    "是 是 的",          # particles, but an explicit yes among them
    "那 个 卡 丢 了",    # recogniser spacing, unchanged when nothing is taken out
    "不用了，谢谢",       # a plain no: nothing after it asks for something
    "没有，我从来没办过这个",
    "不好",
])
def test_zh_words_that_look_like_fillers_are_kept(zh: UtterancePrep, text: str) -> None:
    assert zh(text) == text


@pytest.mark.parametrize(("text", "kept"), [
    ("어디에 지점이 있어요", "어디에 지점이 있어요"),  # 어 starts a word
    ("음 잔액 조회", "잔액 조회"),
    ("네", "네"),  # an explicit yes is never a filler
    ("저기요 카드 분실이요", "카드 분실이요"),
])
def test_ko_fillers_are_words_of_their_own(ko: UtterancePrep, text: str, kept: str) -> None:
    assert ko(text) == kept


@pytest.mark.parametrize(("text", "wanted"), [
    ("不是挂失，我的卡没丢，是新卡要激活", "是新卡要激活"),
    ("我不查余额了，帮我找一下最近的网点", "帮我找一下最近的网点"),
    ("不要回主菜单，给我转人工", "给我转人工"),
    ("不是查余额我要查账单", "我要查账单"),      # no punctuation, as a recogniser writes it
    ("不是，我要查信用卡账单", "我要查信用卡账单"),  # a correction (rule 4) keeps its request
    ("嗯，不是那个，是信用卡账单", "是信用卡账单"),
    ("唔系查余额，我想睇下信用卡账单", "我想睇下信用卡账单"),
])
def test_zh_a_correction_leaves_what_the_caller_wants(zh: UtterancePrep, text: str,
                                                      wanted: str) -> None:
    assert zh(text) == wanted


@pytest.mark.parametrize(("text", "wanted"), [
    ("我想查一下 balance", "我想查一下 余额"),
    ("帮我转 Customer  Service", "帮我转 人工客服"),
    ("我的 credit card 丢了", "我的 信用卡 丢了"),
    ("cardiff 是哪里", "cardiff 是哪里"),      # a word inside a longer one is not a loanword
])
def test_zh_loanwords(zh: UtterancePrep, text: str, wanted: str) -> None:
    assert zh(text) == wanted


@pytest.mark.parametrize(("text", "wanted"), [
    ("잔액 말고 카드 대금이요", "카드 대금이요"),
    ("분실 신고가 아니고요 새 카드를 등록하려고요", "새 카드를 등록하려고요"),
    ("메인 menu로 돌아가 주세요", "메인 메뉴로 돌아가 주세요"),  # a particle glued on
])
def test_ko_corrections_and_loanwords(ko: UtterancePrep, text: str, wanted: str) -> None:
    assert ko(text) == wanted


@pytest.mark.parametrize(("text", "wanted"), [
    ("上礼拜六在商场刷了六千三，不是我刷的", "上礼拜六在商场刷了一笔钱，不是我刷的"),
    ("我要给我儿子转三千块", "我要给我儿子转一笔钱"),
    ("20号发的4500元工资到账没有", "那天发的一笔钱工资到账没有"),
    ("二十万存两年定期利率多少", "一笔钱存两年定期利率多少"),
    ("一千二百美金换多少人民币", "一些美金换多少人民币"),
    ("帮我查一下9月份的账单", "帮我查一下那个月的账单"),
])
def test_zh_amounts_and_dates_become_plain_words(zh: UtterancePrep, text: str,
                                                 wanted: str) -> None:
    assert zh(text) == wanted


@pytest.mark.parametrize("text", [
    "贷款分三十年还", "九十天的理财", "晚上十一点还开门吗",  # time words
    "万一卡丢了怎么办", "千万别挂", "我们一块儿去网点",  # words, not figures
    "尾号是8261", "我的身份证后六位是123456", "十五乘以八十等于几",  # figures, no money
])
def test_zh_figures_that_are_not_amounts_stay(zh: UtterancePrep, text: str) -> None:
    assert zh(text) == text


def test_a_broken_fillers_entry_is_a_clear_error(tmp_path: Path) -> None:
    from ivr.errors import DataFileError

    bad = tmp_path / "xx.yml"
    bad.write_text("fillers:\n  phrases: 嗯\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"xx\.yml: fillers\.phrases must be a list"):
        Hesitations.from_locale_file(bad)
    bad.write_text("fillers:\n  patterns: ['[']\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"xx\.yml: fillers\.patterns: "):
        UtterancePrep.for_locale(bad)
    bad.write_text("quantities:\n  - {pattern: '(', as: 一笔钱}\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"xx\.yml: quantities: "):
        UtterancePrep.for_locale(bad)
    bad.write_text("quantities: {pattern: x}\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"xx\.yml: quantities: must be a list"):
        UtterancePrep.for_locale(bad)
    bad.write_text("loanwords: [balance]\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"xx\.yml: loanwords: must be a mapping"):
        UtterancePrep.for_locale(bad)
    assert Hesitations.from_locale_file(tmp_path / "none.yml").strip("嗯") == "嗯"


# --- through the real models -----------------------------------------------------------------

@pytest.mark.parametrize("text", ZH_NOTHING[:-1])
async def test_zh_model_never_takes_a_filler_for_an_intent(engine, text: str) -> None:
    parse = await engine.parse(text)
    assert parse["intent"]["name"] == "nlu_fallback" and parse["nothing_said"], parse


async def test_ko_model_never_takes_a_filler_for_an_intent(ko_engine) -> None:
    for text in KO_NOTHING:
        parse = await ko_engine.parse(text)
        assert parse["intent"]["name"] == "nlu_fallback", (text, parse)


async def test_a_request_in_fillers_is_understood_and_keeps_its_text(engine) -> None:
    parse = await engine.parse("嗯，我想查一下余额")
    assert parse["intent"]["name"] == "check_balance"
    assert parse["text"] == "嗯，我想查一下余额" and parse["prepared"] == "我想查一下余额"


@pytest.mark.parametrize(("text", "intent"), [
    ("上礼拜六在商场刷了六千三，不是我刷的", "fraud_report"),
    ("我想贷八十万买房子，要什么条件", "loan_inquiry"),
    ("一千二百美金换多少人民币", "exchange_rate"),
    ("9月份的信用卡账单要还多少", "credit_card_bill"),
])
async def test_a_request_with_an_amount_or_a_date_is_understood(engine, text: str,
                                                                intent: str) -> None:
    parse = await engine.parse(text)
    assert parse["intent"]["name"] == intent, parse


async def test_two_hesitations_escalate_as_no_match(call) -> None:
    result = await call([{"say": "嗯嗯嗯"}, {"say": "呃，等一下"}])
    assert (result["outcome"], result["queue"], result["reason"]) == (
        "escalated", "general", "no_match")
    assert [t["intent"] for t in result["turns"]] == ["nlu_fallback", "nlu_fallback"]


async def test_two_ko_hesitations_escalate_as_no_match(ko_call) -> None:
    result = await ko_call([{"say": "음"}, {"say": "저기요"}])
    assert (result["outcome"], result["queue"], result["reason"]) == (
        "escalated", "general", "no_match")


async def test_a_hesitation_mid_topic_escalates_to_the_topics_queue(call) -> None:
    result = await call([{"say": "我想激活新卡"}, {"say": "那个……"}, {"say": "嗯"}])
    assert (result["queue"], result["reason"]) == ("cards", "no_match")


async def test_a_hesitation_never_accepts_an_offer(call) -> None:
    """需要为您转接卡务专员办理补卡吗？ — 嗯 is not a yes: asked again, no transfer; a yes
    after it is."""
    result = await call([{"say": "我的信用卡丢了"}, {"dtmf": PIN}, {"say": "嗯……"}],
                        caller=KNOWN)
    assert result["outcome"] != "escalated", result
    assert result["turns"][2]["intent"] == "nlu_fallback"
    accepted = await call([{"say": "我的信用卡丢了"}, {"dtmf": PIN}, {"say": "嗯……"},
                           {"say": "好的"}])
    assert (accepted["outcome"], accepted["queue"]) == ("escalated", "cards")


async def test_a_hesitation_after_anything_else_does_not_end_the_call(call) -> None:
    result = await call([{"say": "网点几点开门"}, {"say": "呃"}])
    assert "感谢您的来电，再见。" not in prompts(result)
    assert result["turns"][1]["intent"] == "nlu_fallback"


# --- traditional characters ------------------------------------------------------------------

@pytest.mark.parametrize(("traditional", "intent"), [
    ("我要查詢餘額", "check_balance"),
    ("信用卡帳單要還幾多", "credit_card_bill"),
    ("我張卡唔見咗", "report_lost_card"),
    ("嗯，幫我轉人工", "human_agent"),
])
async def test_traditional_characters_are_understood_as_simplified(
        engine, traditional: str, intent: str) -> None:
    parse = await engine.parse(traditional)
    assert parse["intent"]["name"] == intent, parse
    assert parse["text"] == traditional  # the caller's words, as said
    assert not any("\u8a62" in e["value"] for e in parse["entities"])  # 詢 never reaches them


def test_an_unknown_script_conversion_is_a_clear_error(tmp_path: Path) -> None:
    from ivr.errors import DataFileError

    bad = tmp_path / "xx.yml"
    bad.write_text("script: {convert: klingon}\n", encoding="utf-8")
    with pytest.raises(DataFileError,
                       match=r"xx\.yml: script\.convert: 'klingon' is not an OpenCC"):
        UtterancePrep.for_locale(bad)


def test_dialect_characters_survive_the_conversion(zh: UtterancePrep) -> None:
    """t2s would make 嗰 𠮶 and 搵 揾: the dialect data uses them as written."""
    assert zh("我張卡唔見咗，嗰張卡搵唔到") == "我张卡唔见咗，嗰张卡搵唔到"


@pytest.mark.parametrize(("text", "intent"), [
    ("不是挂失，我的卡没丢，是新卡要激活", "activate_card"),
    ("我不查余额了，帮我找一下最近的网点", "branch_info"),
    ("帮我转 customer service", "human_agent"),
    ("我想查一下 balance", "check_balance"),
])
async def test_corrections_and_loanwords_reach_the_right_intent(engine, text: str,
                                                                intent: str) -> None:
    assert (await engine.parse(text))["intent"]["name"] == intent


async def test_a_correction_after_routing_still_reroutes(call) -> None:
    """Rule 4: the dialogue sees the new topic right after the first and flags it."""
    result = await call([{"say": "查一下余额"}, {"say": "不是，不是查余额，我要查信用卡账单"},
                         {"dtmf": PIN}])
    assert result["turns"][1]["correction_of"] == "check_balance"
    assert "3210.00" in prompts(result)


async def test_a_hesitation_is_no_review_item_but_its_escalation_is(engine) -> None:
    """Trainers get no "no_match" item for 嗯 (nothing to label); two of them escalating is
    still worth a look."""
    from ivr.core.events import MisrouteSignal, emitter
    from ivr.core.inputs import Say
    from ivr.dialogue.call import Call

    events: list = []
    call = Call(engine, caller_id=KNOWN, emit=emitter(events.append, "hesitant"))
    await call.start()
    await call.take(Say("嗯……"))
    await call.take(Say("呃，那个"))
    assert [(e.turn, e.signal) for e in events if isinstance(e, MisrouteSignal)] == [
        (2, "escalated_no_match")]


HESITATIONS = ["嗯", "嗯嗯嗯", "那个……", "呃，等一下", "喂？", "就是那个什么"]


@pytest.mark.parametrize("hesitation", HESITATIONS)
async def test_no_hesitation_is_a_yes_in_any_yes_no_state(call, vague_call,
                                                          hesitation: str) -> None:
    """Every state that asks yes or no: the transfer offer after a freeze, 还有什么可以帮您,
    and "A 还是 B？"; a hesitation there is asked again, never taken as an answer."""
    offer = await call([{"say": "我的信用卡丢了"}, {"dtmf": PIN}, {"say": hesitation}])
    assert offer["outcome"] != "escalated" and offer["turns"][-1]["intent"] == "nlu_fallback"
    more = await call([{"say": "网点几点开门"}, {"say": hesitation}])
    assert more["turns"][-1]["intent"] == "nlu_fallback"
    assert more["outcome"] == "self_service" and "再见" not in more["turns"][-1]["prompts"][0]
    which = await vague_call([{"say": VAGUE}, {"say": hesitation}])
    assert which["turns"][-1]["intent"] == "nlu_fallback"
    assert "还是" in which["turns"][0]["prompts"][0] and which.get("intent") is None
