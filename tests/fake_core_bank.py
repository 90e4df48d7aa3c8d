"""A stand-in for a bank's core-banking API (docs/bank-adapter.md): an aiohttp server on
loopback that answers the contract from the demo customers, and can be slow or failing."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ivr.dialogue.bank import DemoBank


class FakeCoreBank:
    """``fail_first``: that many requests answer 503 first; ``status``: every request gets
    it; ``delay_s``: each answer is that late; ``garbage``: bodies that are not JSON;
    ``down`` / ``slow``: path endings answered 503 / ``delay_s`` late, others as usual.
    Freeze and activate honour ``Idempotency-Key`` (a repeated key gets the first answer)."""

    def __init__(self, fail_first: int = 0, status: int | None = None, delay_s: float = 0.0,
                 garbage: bool = False) -> None:
        self.bank = DemoBank()
        self.fail_first = fail_first
        self.status = status
        self.delay_s = delay_s
        self.garbage = garbage
        self.down: tuple[str, ...] = ()
        self.slow: tuple[str, ...] = ()
        self.requests: list[dict[str, Any]] = []  # method, path (raw), query, headers, body
        self.writes: dict[str, tuple[int, dict[str, Any]]] = {}  # by idempotency key
        self.url = ""
        self._runner: web.AppRunner | None = None

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append({"method": request.method, "path": request.raw_path,
                              "headers": dict(request.headers), "body": body})
        request["body"] = body or {}
        if self.delay_s and (not self.slow or request.path.endswith(self.slow)):
            await asyncio.sleep(self.delay_s)
        if self.down and request.path.endswith(self.down):
            return web.json_response({"error": "down"}, status=503)
        if len(self.requests) <= self.fail_first:
            return web.json_response({"error": "busy"}, status=503)
        if self.status:
            return web.json_response({"error": "refused"}, status=self.status)
        if self.garbage:
            return web.Response(text="<html>gateway</html>", content_type="text/html")
        return await handler(request)

    @staticmethod
    def _info(info: Any) -> web.Response:
        if info is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response({"customer_id": info.customer_id, "vip": info.vip,
                                  "card_types": list(info.card_types)})

    def _known(self, request: web.Request) -> str:
        customer = request.match_info["id"]
        if customer not in self.bank._customers:
            raise web.HTTPNotFound(text='{"error": "no such customer"}')
        return customer

    async def by_phone(self, request: web.Request) -> web.Response:
        return self._info(await self.bank.customer_by_phone(request["body"]["phone"]))

    async def by_card(self, request: web.Request) -> web.Response:
        return self._info(await self.bank.customer_by_card(request["body"]["card_number"]))

    async def customer(self, request: web.Request) -> web.Response:
        return self._info(await self.bank.customer_info(request.match_info["id"]))

    async def verify_pin(self, request: web.Request) -> web.Response:
        verified = await self.bank.verify_pin(self._known(request), request["body"]["pin"])
        return web.json_response({"verified": verified})

    async def balance(self, request: web.Request) -> web.Response:
        last4, amount = await self.bank.balance(self._known(request))
        return web.json_response({"last4": last4, "balance": str(amount)})

    async def transactions(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "10"))
        last4, items = await self.bank.recent_transactions(self._known(request), limit)
        return web.json_response({"last4": last4, "transactions": [
            {"date": t.date.isoformat(), "description": t.description,
             "amount": str(t.amount)} for t in items]})

    async def bill(self, request: web.Request) -> web.Response:
        bill = await self.bank.credit_card_bill(self._known(request))
        if bill is None:
            return web.json_response({"error": "no credit card"}, status=404)
        return web.json_response({"last4": bill.last4, "amount": str(bill.amount),
                                  "minimum": str(bill.minimum), "due_day": bill.due_day})

    async def _once(self, request: web.Request, write: Any) -> web.Response:
        """A write's answer, the first one again for a key already seen."""
        key = request.headers.get("Idempotency-Key", "")
        if key and key in self.writes:
            status, body = self.writes[key]
        else:
            status, body = await write()
            if key:
                self.writes[key] = status, body
        return web.json_response(body, status=status)

    async def freeze(self, request: web.Request) -> web.Response:
        async def write() -> tuple[int, dict[str, Any]]:
            last4 = await self.bank.freeze_card(self._known(request),
                                                request["body"]["card_type"])
            return (404, {"error": "no such card"}) if last4 is None else (200, {"last4": last4})
        return await self._once(request, write)

    async def activate(self, request: web.Request) -> web.Response:
        async def write() -> tuple[int, dict[str, Any]]:
            done = await self.bank.activate_card(self._known(request))
            return ((404, {"error": "nothing to activate"}) if done is None
                    else (200, {"last4": done[0], "card_type": done[1]}))
        return await self._once(request, write)

    async def __aenter__(self) -> FakeCoreBank:
        app = web.Application(middlewares=[self._faults])
        app.router.add_post("/ivr/v1/customers/by-phone", self.by_phone)
        app.router.add_post("/ivr/v1/customers/by-card", self.by_card)
        app.router.add_get("/ivr/v1/customers/{id}", self.customer)
        app.router.add_post("/ivr/v1/customers/{id}/verify-pin", self.verify_pin)
        app.router.add_get("/ivr/v1/customers/{id}/balance", self.balance)
        app.router.add_get("/ivr/v1/customers/{id}/transactions", self.transactions)
        app.router.add_get("/ivr/v1/customers/{id}/credit-card-bill", self.bill)
        app.router.add_post("/ivr/v1/customers/{id}/cards/freeze", self.freeze)
        app.router.add_post("/ivr/v1/customers/{id}/cards/activate", self.activate)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/ivr/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner
        await self._runner.cleanup()
