"""A guest's checkout over HTTP (``usecases/checkout.py``), how pages take a card
(``GET /billing/processor``), and the simulated processor's card form and 3-D Secure page
(served only when the simulated processor is configured, as Stripe serves its own).

A refusal is committed before it is answered: the refused checkout and the decline count stay.
Cancels of holds that will not be used are made after the commit (journalled: the sweeper
retries one that fails).
"""

from __future__ import annotations

import html
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from plugpay_events.types import Money
from plugpay_platform.errors import Refusal
from plugpay_platform.http_security import INLINE_STYLE_CSP, NO_PERMISSIONS, page_headers
from plugpay_platform.security import CurrentPayer, Principal

from billing_svc import schemas
from billing_svc.processor import (
    CHALLENGE_PATH,
    CardEntryRefused,
    SimulatedProcessor,
)
from billing_svc.receipts import money_text
from billing_svc.usecases import checkout
from billing_svc.usecases.common import Billing, ProcessorCall, make_call

router = APIRouter(prefix="/billing", tags=["billing"])
log = logging.getLogger(__name__)


def require_guest(payer: CurrentPayer) -> Principal:
    """Only a guest checks out this way (a driver's card is held when its charger is ready)."""
    if not payer.is_guest:
        raise Refusal("guests_only", "the card checkout is for guests", status_code=403)
    return payer


CurrentGuest = Annotated[Principal, Depends(require_guest)]


def _billing(request: Request) -> Billing:
    billing: Billing = request.app.state.billing
    return billing


def _client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _view(answer: checkout.CheckoutAnswer | Refusal) -> schemas.CheckoutView:
    if isinstance(answer, Refusal):
        raise answer
    return schemas.CheckoutView(
        status="requires_action" if answer.status == "requires_action" else "held",
        amount=Money(amount_minor=answer.amount, currency=answer.currency),
        next_action=schemas.NextAction(url=answer.redirect_url) if answer.redirect_url else None,
    )


async def _after_commit(request: Request, calls: list[ProcessorCall]) -> None:
    for call in calls:
        try:
            await make_call(_billing(request), request.app.state.runtime.database.write, call)
        except Exception:
            log.exception("processor call %s left to the sweeper", call.key)


@router.post("/checkout", response_model=schemas.CheckoutView)
async def start_checkout(
    request: Request, guest: CurrentGuest, body: schemas.CheckoutRequest
) -> schemas.CheckoutView:
    async with request.app.state.runtime.database.write() as session:
        answer = await checkout.start(
            _billing(request),
            session,
            guest.user_id,
            max_power_w=body.max_power_w,
            currency=body.currency,
            return_url=request.app.state.checkout_return_url,
            client_address=_client_address(request),
        )
    return _view(answer)


@router.post("/checkout/confirm", response_model=schemas.CheckoutView)
async def confirm_checkout(request: Request, guest: CurrentGuest) -> schemas.CheckoutView:
    async with request.app.state.runtime.database.write() as session:
        answer, calls = await checkout.confirm(
            _billing(request), session, guest.user_id, _client_address(request)
        )
    await _after_commit(request, calls)
    return _view(answer)


@router.delete("/checkout", status_code=204)
async def cancel_checkout(request: Request, guest: CurrentGuest) -> Response:
    async with request.app.state.runtime.database.write() as session:
        calls = await checkout.release(_billing(request), session, guest.user_id)
    await _after_commit(request, calls)
    return Response(status_code=204)


# --- how a page takes a card ---------------------------------------------------------------


@router.get("/processor", response_model=schemas.ProcessorView)
async def card_entry(request: Request) -> schemas.ProcessorView:
    """Public: which card form the page shows. The simulated processor's own, or Stripe.js
    with the publishable key (the card never reaches Plugpay in either case)."""
    if isinstance(_billing(request).processor, SimulatedProcessor):
        return schemas.ProcessorView(kind="simulated")
    return schemas.ProcessorView(
        kind="stripe", publishable_key=request.app.state.stripe_publishable_key
    )


@router.post("/processor/cards", response_model=schemas.CardTokenView, status_code=201)
async def tokenise_simulated_card(
    request: Request, body: schemas.CardEntryRequest
) -> schemas.CardTokenView:
    """The simulated processor's hosted card form (Stripe Elements' part): a typed card in, a
    token out; the page sends only the token to billing. Absent (404) with a real processor."""
    processor = _billing(request).processor
    if not isinstance(processor, SimulatedProcessor):
        raise Refusal("not_found", "cards are entered at the payment processor", status_code=404)
    try:
        card = processor.tokenise(body.number, body.expiry, body.cvc)
    except CardEntryRefused as refused:
        raise Refusal(refused.code, refused.message, status_code=422) from None
    return schemas.CardTokenView.model_validate(card)


# --- the simulated processor's 3-D Secure page (Stripe's test page has the same two buttons) ---

_CHALLENGE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Confirm your payment</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}
button{{display:block;width:100%;padding:.9rem;margin:.6rem 0;font-size:1rem}}</style></head>
<body><h1>Confirm your payment</h1>
<p>Simulated bank (3-D Secure test page): {amount} to be reserved on card •••• {last4}.</p>
<form method="post" action="{path}/complete"><button>Complete authentication</button></form>
<form method="post" action="{path}/fail"><button>Fail authentication</button></form>
</body></html>
"""


def _simulated(request: Request, challenge_id: str) -> SimulatedProcessor:
    processor = _billing(request).processor
    if not isinstance(processor, SimulatedProcessor) or processor.challenge(challenge_id) is None:
        raise Refusal("not_found", "no such authentication", status_code=404)
    return processor


@router.get(
    CHALLENGE_PATH.removeprefix("/billing") + "/{challenge_id}", response_class=HTMLResponse
)
async def simulated_challenge(request: Request, challenge_id: str) -> HTMLResponse:
    processor = _simulated(request, challenge_id)
    state = processor.challenge(challenge_id)
    assert state is not None
    token = processor.intents[state.intent_id].token
    page = _CHALLENGE_PAGE.format(
        amount=html.escape(money_text(state.amount, state.currency)),
        last4=html.escape(processor.card_last4(token)),
        path=html.escape(f"{CHALLENGE_PATH}/{challenge_id}"),
    )
    return HTMLResponse(page, headers=page_headers(INLINE_STYLE_CSP, NO_PERMISSIONS))


@router.post(CHALLENGE_PATH.removeprefix("/billing") + "/{challenge_id}/{outcome}")
async def answer_simulated_challenge(
    request: Request, challenge_id: str, outcome: Literal["complete", "fail"]
) -> RedirectResponse:
    processor = _simulated(request, challenge_id)
    back = processor.answer_challenge(challenge_id, authenticated=outcome == "complete")
    assert back is not None
    return RedirectResponse(back, status_code=303)
