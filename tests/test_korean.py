"""The Korean (ko) locale: the same routing contract and dialogue as zh, understood and
said in Korean, on the real trained ko model."""

import pytest

from ivr.dialogue.handoff import skills_for
from tests.conftest import UNKNOWN, VIP, prompts

PIN = "123456"

# The spoken menu of the Korean greeting: callers are told to say these (the voice layer
# listens for exactly them), so each must route to its intent.
MENU = {
    "잔액 조회": "check_balance",
    "거래 내역": "recent_transactions",
    "카드 대금": "credit_card_bill",
    "카드 분실": "report_lost_card",
    "카드 등록": "activate_card",
    "지점 안내": "branch_info",
    "환율": "exchange_rate",
    "이자율": "interest_rate",
    "비밀번호 변경": "password_reset",
    "사기 신고": "fraud_report",
    "민원": "complaint",
    "대출 상담": "loan_inquiry",
    "금융 상품": "wealth_management",
    "상담원 연결": "human_agent",
}
# Other closed phrases a Korean caller is offered (yes/no, card type, repeat, menu, end).
CONTROL = {
    "네": "affirm",
    "예": "affirm",
    "아니요": "deny",
    "상담원": "human_agent",
    "다시 듣기": "repeat",
    "처음으로": "main_menu",
    "종료": "goodbye",
    "체크카드": "inform",
    "신용카드": "inform",
}

# Free sentences, none of them in the training data.
FREE = [
    ("안녕하세요 제 예금 계좌에 남은 금액이 얼마인지 궁금합니다", "check_balance"),
    ("잔액이 궁금해요", "check_balance"),
    ("지난달에 돈 어디에 썼는지 확인하고 싶어요", "recent_transactions"),
    ("최근에 들어온 돈이랑 나간 돈 알려 주세요", "recent_transactions"),
    ("다음 결제일에 얼마 나가는지 알려 주세요", "credit_card_bill"),
    ("카드 대금 얼마야", "credit_card_bill"),
    ("신용카드가 없어졌어요 빨리 정지시켜 주세요", "report_lost_card"),
    ("체크카드 분실 신고합니다", "report_lost_card"),
    ("새로 나온 체크카드 사용하려면 어떻게 해요", "activate_card"),
    ("카드가 배송됐는데 활성화해 주세요", "activate_card"),
    ("광저우 지점 영업시간 알려 주세요", "branch_info"),
    ("일요일에 문 여는 지점이 있나요", "branch_info"),
    ("유로 지금 얼마예요", "exchange_rate"),
    ("엔화로 환전하려면 얼마예요", "exchange_rate"),
    ("정기예금 이자 얼마 줘요", "interest_rate"),
    ("대출 이자율이 몇 퍼센트예요", "interest_rate"),
    ("비밀번호가 기억이 안 나서 바꾸고 싶어요", "password_reset"),
    ("비번 잠겼어요", "password_reset"),
    ("제 카드로 모르는 결제가 됐어요", "fraud_report"),
    ("보이스피싱 같은 전화에 속아서 돈을 보냈어요", "fraud_report"),
    ("직원 태도가 너무 불쾌해서 민원 넣고 싶어요", "complaint"),
    ("불만이 있어서 전화했어요", "complaint"),
    ("전세 대출 받고 싶은데요", "loan_inquiry"),
    ("대출 한도가 얼마나 나올까요", "loan_inquiry"),
    ("펀드 추천해 주세요", "wealth_management"),
    ("투자할 만한 상품 있어요", "wealth_management"),
    ("사람이랑 통화하고 싶어요", "human_agent"),
    ("상담원 바꿔 줘요", "human_agent"),
]


# --- understanding ---------------------------------------------------------------------

@pytest.mark.parametrize(("phrase", "intent"), [*MENU.items(), *CONTROL.items()])
async def test_menu_phrases_route(ko_engine, phrase, intent):
    parse = await ko_engine.parse(phrase)
    assert parse["intent"]["name"] == intent, parse["intent_ranking"][:3]


@pytest.mark.parametrize(("text", "intent"), FREE)
async def test_free_korean_sentences_route(ko_engine, text, intent):
    parse = await ko_engine.parse(text)
    assert parse["intent"]["name"] == intent, parse["intent_ranking"][:3]


@pytest.mark.parametrize(("text", "entity", "value"), [
    ("신용카드가 없어졌어요", "card_type", "信用卡"),
    ("체크 카드 잔액", "card_type", "借记卡"),
    ("직불카드요", "card_type", "借记卡"),
    ("미국 달러 환율", "currency", "美元"),
    ("1달러에 몇 위안이에요", "currency", "美元"),
    ("엔화로 바꾸면 얼마예요", "currency", "日元"),
    ("만 엔은 얼마예요", "currency", "日元"),
    ("홍콩 달러는요", "currency", "港币"),
    ("원화 환율", "currency", "韩元"),
])
async def test_card_types_and_currencies_get_the_canonical_values(ko_engine, text, entity,
                                                                  value):
    parse = await ko_engine.parse(text)
    assert [(e["entity"], e["value"]) for e in parse["entities"]] == [(entity, value)]


async def test_words_that_merely_contain_a_currency_are_not_one(ko_engine):
    parse = await ko_engine.parse("엔진 소리가 나요 센터에 연결해 주세요")
    assert parse["entities"] == []


# --- whole calls -------------------------------------------------------------------------

async def test_greeting_offers_the_spoken_menu_and_the_agent_key(ko_call):
    result = await ko_call([{"say": "처음으로"}])
    greeting = " ".join(result["greeting"])
    menu = " ".join(result["turns"][0]["prompts"])
    for phrase in MENU:  # the full menu names every topic, grouped
        assert phrase in menu, phrase
    for group in ("계좌 업무", "카드 업무", "안내", "상담 업무"):
        assert group in menu, group
    # The greeting is short: three examples, how to hear the full menu, and the agent key.
    assert sum(phrase in greeting for phrase in MENU) <= 4
    assert "메뉴라고" in greeting and "0번" in greeting and "0번" in menu
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in greeting + menu)  # no Chinese


async def test_transactions_after_the_pin_then_no_ends_the_call(ko_call):
    result = await ko_call([{"say": "거래 내역"}, {"dtmf": PIN + "#"}, {"say": "아니요"}])
    first, second, third = result["turns"]
    assert first["intent"] == "recent_transactions"
    assert any("우물 정(#) 키" in p for p in first["prompts"])
    assert "-268.50" not in " ".join(first["prompts"])  # rule 3: nothing before the PIN
    said = " ".join(second["prompts"])
    assert "본인 확인이 완료되었습니다" in said and "최근 거래 3건" in said
    # The bank's memo is Chinese, which a Korean voice cannot read: a Korean word instead.
    assert "11월 20일, 가맹점 거래, -268.50위안." in said and "超市" not in said
    assert "-268.50위안" in said
    assert third["prompts"] == ["전화 주셔서 감사합니다. 좋은 하루 보내십시오."]
    assert (result["outcome"], result["intent"]) == ("self_service", "recent_transactions")
    assert second["input"]["dtmf"] == "******"  # the PIN, masked


async def test_balance_and_bill_in_korean(ko_call):
    result = await ko_call([{"say": "잔액 조회"}, {"dtmf": PIN}, {"say": "카드 대금"}])
    said = prompts(result)
    assert "끝자리 1234 체크카드 사용 가능 잔액은 12345.67위안입니다" in said
    assert "결제 금액은 3210.00위안" in said and "매월 25일" in said
    assert result["served"] == ["check_balance", "credit_card_bill"]


async def test_complaint_goes_to_complaints_with_a_korean_agent(ko_call):
    result = await ko_call([{"say": "민원"}])
    assert result["outcome"] == "escalated"
    assert (result["queue"], result["reason"], result["priority"]) == (
        "complaints", "intent", "normal")
    assert "ko" in result["skills"]
    assert result["handoff"]["locale"] == "ko"
    assert result["handoff"]["dialect"] == "standard"  # not "mandarin": zh detects dialects
    assert result["turns"][0]["prompts"] == [
        "네, 민원 담당 상담원에게 연결해 드리겠습니다. 잠시만 기다려 주세요."]


async def test_agent_without_topic_asks_once_then_routes(ko_call):
    result = await ko_call([{"say": "상담원 연결"}, {"say": "카드 대금 때문에요"}])
    asked = " ".join(result["turns"][0]["prompts"])
    assert "어떤 업무로 전화하셨는지" in asked
    assert (result["queue"], result["reason"]) == ("cards", "caller_request")
    assert "카드 담당 상담원에게 연결해 드리겠습니다" in prompts(result)


async def test_agent_asked_twice_goes_to_general(ko_call):
    result = await ko_call([{"say": "상담원 연결"}, {"say": "상담원"}])
    assert (result["queue"], result["reason"]) == ("general", "caller_request")
    assert result["skills"] == ["ko"]


async def test_agent_key_mid_verification(ko_call):
    result = await ko_call([{"say": "카드 대금"}, {"dtmf": "0"}])
    assert (result["queue"], result["reason"]) == ("cards", "caller_request")
    assert result["handoff"]["verification"]["verified"] is False


async def test_exchange_rates_in_korean(ko_call):
    result = await ko_call([{"say": "환율"}, {"say": "엔화는요"}])
    first, second = (" ".join(t["prompts"]) for t in result["turns"])
    assert "2026-11-23 기준" in first
    assert "미국 달러 712.35위안, 유로 776.8위안, 홍콩 달러 91.48위안, 일본 엔 4.72위안" in first
    assert "일본 엔 4.72위안" in second and "미국 달러" not in second
    assert "비밀번호" not in first  # knowledge answers need no verification
    assert result["outcome"] == "self_service"


async def test_interest_rates_and_branches_in_korean(ko_call):
    result = await ko_call([{"say": "이자율"}, {"say": "상하이 지점 어디 있어요"}])
    first, second = (" ".join(t["prompts"]) for t in result["turns"])
    assert "1년 정기예금 0.95%" in first
    assert "상하이 루자쭈이 지점: 상하이시 푸둥신구 루자쭈이 환로 100호" in second
    assert "베이징" not in second


async def test_lost_card_asks_which_card_freezes_and_offers_cards(ko_call):
    result = await ko_call([{"say": "카드 분실"}, {"say": "신용카드요"}, {"dtmf": PIN},
                            {"say": "네"}])
    said = prompts(result)
    assert "체크카드인가요, 신용카드인가요?" in said
    assert "끝자리 5678 신용카드의 거래를 임시로 정지했습니다" in said
    assert "네 또는 아니요로 말씀해 주세요" in said
    assert (result["queue"], result["reason"]) == ("cards", "offer_accepted")
    assert result["handoff"]["slots"]["card_type"] == "信用卡"  # canonical, as in zh


async def test_declining_the_offer_asks_anything_else_then_no_says_goodbye(ko_call):
    result = await ko_call([{"say": "체크카드 잃어버렸어요"}, {"dtmf": PIN},
                            {"say": "아니요"}, {"say": "아니요"}])
    third, fourth = result["turns"][2:]
    assert any("아니요라고 말씀해 주세요" in p for p in third["prompts"])
    assert any("감사합니다" in p for p in fourth["prompts"])
    assert result["outcome"] == "self_service"


async def test_new_card_is_registered(ko_call):
    result = await ko_call([{"say": "카드 등록"}, {"dtmf": PIN}])
    assert "끝자리 9012 신용카드 등록이 완료되었습니다" in prompts(result)


async def test_unknown_caller_types_the_card_number_then_the_pin(ko_call):
    result = await ko_call([{"say": "카드 대금"}, {"dtmf": "6258880000005678#"},
                            {"dtmf": PIN + "#"}], caller=UNKNOWN)
    first, second, third = result["turns"]
    assert any("카드 번호를 누르신 뒤 우물 정(#) 키" in p for p in first["prompts"])
    assert any("비밀번호 6자리" in p for p in second["prompts"])
    assert "3210.00위안" in " ".join(third["prompts"])


async def test_wrong_pins_are_counted_in_korean(ko_call):
    result = await ko_call([{"say": "잔액 조회"}, {"dtmf": "111111"}, {"dtmf": "222222"},
                            {"dtmf": "333333"}])
    assert "2번 더 입력하실 수 있습니다" in prompts(result)
    assert (result["queue"], result["reason"]) == ("general", "verification_failed")


async def test_fraud_is_urgent_and_vip_wealth_goes_to_private_banking(ko_call):
    fraud = await ko_call([{"say": "누가 제 카드를 몰래 썼어요"}])
    assert (fraud["queue"], fraud["priority"]) == ("fraud", "urgent")
    wealth = await ko_call([{"say": "금융 상품"}], caller=VIP)
    assert (wealth["queue"], wealth["priority"]) == ("private_banking", "high")
    assert "프라이빗 뱅킹 전담 매니저" in prompts(wealth)


async def test_no_dead_ends_in_korean(ko_call):
    result = await ko_call([{"say": "오늘 날씨 어때요"}, {"say": "노래 하나 불러 줘"}])
    assert (result["queue"], result["reason"]) == ("general", "no_match")
    silent = await ko_call([{"silence": True}, {"silence": True}])
    assert "말씀이 들리지 않습니다" in prompts(silent)
    assert (silent["queue"], silent["reason"]) == ("general", "no_input")


async def test_correction_reroutes_in_korean(ko_call):
    result = await ko_call([{"say": "잔액 조회"}, {"say": "아니요"}, {"say": "민원"}])
    assert result["turns"][1]["correction_of"] == "check_balance"
    assert "어떤 업무를 도와드릴까요" in " ".join(result["turns"][1]["prompts"])
    assert result["queue"] == "complaints"


async def test_repeat_says_the_korean_prompt_again(ko_call):
    result = await ko_call([{"say": "카드 분실"}, {"say": "다시 듣기"}])
    assert result["turns"][1]["prompts"] == ["분실하신 카드가 체크카드인가요, 신용카드인가요?"]


def test_korean_calls_need_korean_speaking_agents():
    assert skills_for("ko", "mandarin") == ["ko"]
    assert skills_for("zh", "mandarin") == []
