"""Handoff delivery to the ACD webhook over real loopback sockets."""

from ivr.dialogue.handoff import AcdWebhook, skills_for
from tests.conftest import KNOWN, free_port
from tests.fake_acd import FakeAcd

BUNDLE = {"call_id": "c-1", "queue": "cards", "transcript": [{"speaker": "caller", "text": "挂失"}]}


def test_skills_follow_language_and_dialect():
    assert skills_for("zh", "yue") == ["yue"]
    assert skills_for("zh", "sc") == []
    assert skills_for("ko", "mandarin") == ["ko"]


async def test_delivered_once_with_idempotency_key_and_chinese_as_is():
    async with FakeAcd() as acd:
        delivery = await AcdWebhook(acd.url, token="s3cret").deliver(BUNDLE)
    assert (delivery.status, delivery.attempts, delivery.acd_reference) == ("delivered", 1, "T0001")
    assert acd.requests == [BUNDLE]
    assert acd.headers[0]["Idempotency-Key"] == "c-1"
    assert acd.headers[0]["Authorization"] == "Bearer s3cret"


async def test_server_errors_are_retried():
    async with FakeAcd(fail_first=2) as acd:
        delivery = await AcdWebhook(acd.url, backoff_s=0.01).deliver(BUNDLE)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)


async def test_a_refusal_is_not_retried():
    async with FakeAcd(status=422) as acd:
        delivery = await AcdWebhook(acd.url, backoff_s=0.01).deliver(BUNDLE)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "422" in delivery.error


async def test_unreachable_and_slow_acds_fail_cleanly():
    unreachable = await AcdWebhook(f"http://127.0.0.1:{free_port()}/h", backoff_s=0.01).deliver(
        BUNDLE)
    assert (unreachable.status, unreachable.attempts) == ("failed", 3)
    assert "unreachable" in unreachable.error
    async with FakeAcd(delay_s=1.0) as acd:
        slow = await AcdWebhook(acd.url, timeout_s=0.2, attempts=2, backoff_s=0.01).deliver(BUNDLE)
    assert slow.status == "failed" and "TimeoutError" in slow.error


async def test_a_simulated_escalation_reaches_the_acd_whole(call):
    async with FakeAcd() as acd:
        result = await call([{"say": "我的信用卡被人盗刷了"}], acd=AcdWebhook(acd.url))
    assert result["delivery"]["status"] == "delivered"
    [sent] = acd.requests
    assert sent == result["handoff"]
    assert (sent["queue"], sent["priority"], sent["caller_id"]) == ("fraud", "urgent", KNOWN)


async def test_a_failed_delivery_keeps_the_call_result(call):
    acd = AcdWebhook(f"http://127.0.0.1:{free_port()}/h", backoff_s=0.01)
    result = await call([{"say": "我要投诉"}], acd=acd)
    assert result["delivery"]["status"] == "failed"
    assert result["outcome"] == "escalated" and result["queue"] == "complaints"
