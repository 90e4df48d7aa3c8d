"""Whole calls through the real trained model: each routing rule, queue and handoff field
of SPEC.md, driven by ``ivr simulate``'s code path."""

import json
import logging

import pytest

from tests.conftest import KNOWN, UNKNOWN, VAGUE, VIP, prompts

PIN = "123456"


# --- self-service after verification (rule 3: nothing about the account before) --------

async def test_balance_is_said_only_after_the_pin(call):
    result = await call([{"say": "帮我查一下余额"}, {"dtmf": PIN + "#"}])
    first, second = result["turns"]
    assert "12345.67" not in " ".join(result["greeting"] + first["prompts"])
    assert any("密码" in p for p in first["prompts"])
    assert any("12345.67" in p for p in second["prompts"])
    assert result["outcome"] == "self_service"
    assert result["intent"] == "check_balance"


@pytest.mark.parametrize(("utterance", "expected"), [
    ("我想看看最近的交易明细", "11月20日，超市消费，-268.50元。"),
    ("我的信用卡这个月要还多少钱", "3210.00"),
    ("我刚收到新信用卡，想激活一下", "9012"),
])
async def test_account_services_after_verification(call, utterance, expected):
    result = await call([{"say": utterance}, {"dtmf": PIN}])
    assert expected not in prompts({**result, "turns": result["turns"][:1]})
    assert expected in prompts(result)
    assert result["outcome"] == "self_service"


async def test_bill_tells_the_due_day(call):
    result = await call([{"say": "信用卡最低还款是多少，哪天要还"}, {"dtmf": PIN}])
    assert "25日" in prompts(result)
    assert result["intent"] == "credit_card_bill"


async def test_unknown_caller_gives_card_number_then_pin(call):
    result = await call([{"say": "查一下信用卡账单"}, {"dtmf": "6258880000005678#"},
                         {"dtmf": PIN + "#"}], caller=UNKNOWN)
    first, second, third = result["turns"]
    assert any("卡号" in p for p in first["prompts"])
    assert any("密码" in p for p in second["prompts"])
    assert "3210.00" in " ".join(third["prompts"])
    assert second["input"]["dtmf"] == "************5678"


async def test_lost_card_is_frozen_then_cards_offered(call):
    result = await call([{"say": "我的信用卡丢了"}, {"dtmf": PIN}, {"say": "好的"}])
    said = prompts(result)
    assert "冻结尾号5678" in said
    assert result["outcome"] == "escalated"
    assert (result["queue"], result["reason"]) == ("cards", "offer_accepted")
    assert result["handoff"]["verification"]["verified"] is True


async def test_lost_card_asks_which_card_when_not_said(call):
    result = await call([{"say": "我要挂失"}, {"say": "借记卡"}, {"dtmf": PIN}, {"say": "不用了"}])
    assert "借记卡还是信用卡" in prompts(result)
    assert "冻结尾号1234" in prompts(result)
    assert result["outcome"] == "self_service"


@pytest.mark.parametrize(("utterance", "expected"), [
    ("你们上海的网点在哪里，几点关门", "陆家嘴环路100号"),
    ("今天美元汇率多少", "美元712.35"),
    ("现在一年定期存款利率是多少", "一年定期0.95%"),
])
async def test_knowledge_answers_need_no_verification(call, utterance, expected):
    result = await call([{"say": utterance}])
    turn = result["turns"][0]
    assert expected in " ".join(turn["prompts"])
    assert "密码" not in " ".join(turn["prompts"])
    assert result["outcome"] == "self_service"


# --- escalation to each queue -----------------------------------------------------------

@pytest.mark.parametrize(("utterance", "queue", "intent"), [
    ("我的密码输错三次被锁了", "cards", "password_reset"),
    ("我要投诉你们网点的工作人员态度太差", "complaints", "complaint"),
    ("我想咨询一下房贷提前还款", "loans", "loan_inquiry"),
    ("最近有什么收益高一点的基金推荐吗", "wealth", "wealth_management"),
])
async def test_agent_topics_go_to_their_queue(call, utterance, queue, intent):
    result = await call([{"say": utterance}])
    assert result["outcome"] == "escalated"
    assert (result["queue"], result["intent"], result["reason"]) == (queue, intent, "intent")
    assert result["priority"] == "normal"


async def test_fraud_goes_first_to_fraud_urgent_without_menus(call):
    result = await call([{"say": "我的卡被盗刷了，好几笔不是我刷的"}])
    assert len(result["turns"]) == 1
    assert (result["queue"], result["priority"]) == ("fraud", "urgent")
    assert "密码" not in prompts(result)


async def test_vip_wealth_goes_to_private_banking(call):
    result = await call([{"say": "我想买点理财产品"}], caller=VIP)
    assert (result["queue"], result["priority"]) == ("private_banking", "high")


# --- rule 2: 转人工 / 0 in every state ----------------------------------------------------

async def test_agent_without_topic_asks_once_then_routes_by_topic(call):
    result = await call([{"say": "转人工"}, {"say": "信用卡账单的问题"}])
    assert "什么业务" in " ".join(result["turns"][0]["prompts"])
    assert (result["queue"], result["reason"]) == ("cards", "caller_request")


async def test_agent_asked_twice_goes_to_general(call):
    result = await call([{"say": "我要人工服务"}, {"say": "人工"}])
    assert (result["queue"], result["reason"]) == ("general", "caller_request")


@pytest.mark.parametrize("agent_request", [{"say": "转人工"}, {"dtmf": "0"}])
async def test_agent_mid_verification_goes_to_topic_queue(call, agent_request):
    result = await call([{"say": "我的信用卡账单还要还多少"}, agent_request])
    assert result["outcome"] == "escalated"
    assert (result["queue"], result["reason"]) == ("cards", "caller_request")
    assert result["handoff"]["verification"]["verified"] is False


# --- rule 1: no dead ends ------------------------------------------------------------------

async def test_two_no_match_turns_escalate(call):
    result = await call([{"say": "今天天气怎么样"}, {"say": "给我讲个笑话吧"}])
    assert (result["outcome"], result["queue"], result["reason"]) == (
        "escalated", "general", "no_match")


async def test_two_silences_escalate(call):
    result = await call([{"silence": True}, {"silence": True}])
    assert (result["queue"], result["reason"]) == ("general", "no_input")


async def test_silences_mid_verification_escalate_to_topic_queue(call):
    result = await call([{"say": "我想激活新卡"}, {"silence": True}, {"silence": True}])
    assert (result["queue"], result["reason"]) == ("cards", "no_input")


async def test_understood_turn_resets_the_count(call):
    result = await call([{"silence": True}, {"say": "网点几点开门"}, {"silence": True},
                         {"say": "再见"}])
    assert result["outcome"] == "self_service"


async def test_three_wrong_pins_escalate(call):
    result = await call([{"say": "查余额"}, {"dtmf": "111111"}, {"dtmf": "222222"},
                         {"dtmf": "333333"}])
    assert "还可以再试2次" in prompts(result)
    assert (result["queue"], result["reason"]) == ("general", "verification_failed")
    assert result["handoff"]["verification"] == {
        "verified": False, "identified_by": "caller_id", "failed_attempts": 3}


# --- rule 4: corrections; context across turns ----------------------------------------------

async def test_correction_reroutes_and_is_flagged(call):
    result = await call([{"say": "查一下余额"}, {"say": "不是，我要查信用卡账单"}, {"dtmf": PIN}])
    assert result["turns"][1]["correction_of"] == "check_balance"
    assert "3210.00" in prompts(result)
    assert "12345.67" not in prompts(result)


async def test_plain_no_after_routing_asks_again(call):
    result = await call([{"say": "我要查余额"}, {"say": "不对"}, {"say": "我要投诉"}])
    assert result["turns"][1]["correction_of"] == "check_balance"
    assert result["queue"] == "complaints"


async def test_elliptical_follow_up_keeps_context(call):
    result = await call([{"say": "查一下余额"}, {"dtmf": PIN}, {"say": "那信用卡呢"}])
    assert "12345.67" in prompts(result)
    assert "3210.00" in " ".join(result["turns"][2]["prompts"])
    assert result["served"] == ["check_balance", "credit_card_bill"]


async def test_vague_bill_request_is_clarified(vague_call):
    result = await vague_call([{"say": VAGUE}, {"say": "信用卡的"}, {"dtmf": PIN}])
    first = " ".join(result["turns"][0]["prompts"])
    assert "信用卡账单" in first and "交易明细" in first
    assert "3210.00" in prompts(result)


# --- dialects, skills and the handoff bundle (rule 5) ------------------------------------------

async def test_cantonese_caller_gets_a_yue_agent(call):
    result = await call([{"say": "我想投诉，你哋啲职员态度好差"}])
    assert result["dialect"] == "yue"
    assert result["skills"] == ["yue"]
    assert result["queue"] == "complaints"


async def test_handoff_carries_every_field_and_no_secret(call):
    result = await call([{"say": "查余额"}, {"dtmf": "654321"},
                         {"say": "我说我的卡号是6222020000001234"}, {"say": "转人工"}])
    handoff = result["handoff"]
    for field in ("call_id", "caller_id", "locale", "dialect", "intent_history", "slots",
                  "transcript", "verification", "reason", "queue", "skills", "priority"):
        assert field in handoff, field
    assert handoff["caller_id"] == KNOWN and handoff["locale"] == "zh"
    assert [h["intent"] for h in handoff["intent_history"]][:2] == ["check_balance", "dtmf"]
    assert all(0 <= h["confidence"] <= 1 for h in handoff["intent_history"])
    dump = json.dumps(result, ensure_ascii=False)
    assert "654321" not in dump
    assert "6222020000001234" not in dump  # said while the PIN was asked for: masked whole
    said = {"speaker": "caller", "say": "*" * len("我说我的卡号是6222020000001234"),
            "masked": "pin"}
    assert said in handoff["transcript"]


async def test_no_secret_reaches_any_log(call, caplog):
    with caplog.at_level(logging.DEBUG):
        await call([{"say": "我忘了卡号，卡号是6258880000005678"}, {"dtmf": PIN},
                    {"say": "转人工"}], caller=UNKNOWN)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PIN not in logged and "6258880000005678" not in logged


@pytest.mark.parametrize(("turns", "dialect", "served", "queue"), [
    ([{"say": "我的卡搞掉了，咋个办嘛"}, {"say": "储蓄卡"}, {"dtmf": PIN}], "sc",
     ["report_lost_card"], None),
    ([{"say": "我那信用卡这个月得还多少钱呐，咋整"}, {"dtmf": PIN}], "db",
     ["credit_card_bill"], None),
    ([{"say": "阿拉想问问卡里还有几钿"}, {"dtmf": PIN}], "wu", ["check_balance"], None),
    ([{"say": "我想睇下最近啲交易记录"}, {"dtmf": PIN}], "yue", ["recent_transactions"], None),
    ([{"say": "阮欲揣真人讲话"}, {"say": "阮欲办贷款"}], "minnan", [], "loans"),
    ([{"say": "我要刮失信用咖"}, {"dtmf": PIN}], "mandarin", ["report_lost_card"], None),
])
async def test_a_whole_call_in_each_dialect(call, turns, dialect, served, queue):
    result = await call(turns)
    assert result["dialect"] == dialect
    assert result["served"] == served
    assert result.get("queue") == queue


# --- the zh words the locale's labels give (knowledge/zh.yml) ----------------------------

async def test_zh_prompts_with_labels_are_unchanged(call, vague_call):
    """Topic, queue, card and rate labels moved from code to knowledge/zh.yml: the Mandarin
    caller hears exactly what they heard before."""
    greeted = await call([{"say": "今天汇率多少"}, {"say": "我要投诉"}])
    assert greeted["greeting"] == [
        "您好，欢迎致电本行客服热线。请问有什么可以帮您？您可以说查余额、信用卡账单、挂失，也可以随时说转人工。"]
    assert greeted["turns"][0]["prompts"] == [
        "截至2026-11-23，每100外币的现汇卖出价为：美元712.35元；欧元776.8元；港币91.48元；日元4.72元。",
        "请问还有什么可以帮您？"]
    assert greeted["turns"][1]["prompts"] == ["好的，正在为您转接投诉处理专员，请稍候。"]

    clarified = await vague_call([{"say": VAGUE}])
    assert clarified["turns"][0]["prompts"][0] in (
        "请问您是要查询信用卡账单，还是查询近期交易明细？",
        "请问您是要查询近期交易明细，还是查询信用卡账单？")

    frozen = await call([{"say": "我的信用卡丢了"}, {"dtmf": PIN}])
    assert ("已为您临时冻结尾号5678的信用卡，冻结期间这张卡无法交易。"
            "需要为您转接卡务专员办理补卡吗？") in frozen["turns"][1]["prompts"]


async def test_no_to_anything_else_ends_the_call(call):
    result = await call([{"say": "网点几点开门"}, {"say": "不用了"}])
    assert result["turns"][1]["prompts"] == ["感谢您的来电，再见。"]
    assert result["outcome"] == "self_service"
