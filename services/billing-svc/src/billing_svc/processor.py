"""The payment-processor port, and a simulated processor with Stripe's semantics.

Every call that changes something takes an ``idempotency_key``: a retry after a crash or a
time-out repeats the call with the same key and gets the first answer, so a card is never
charged twice (Stripe keeps keys for at least 24 h; the simulation forever). A key reused with
different parameters is an error, as at Stripe.

Card holds are PaymentIntents with manual capture: ``authorize`` places the hold, ``capture``
takes at most the held amount (the rest is released by the processor), ``cancel`` releases it;
holds expire (Stripe: 7 days) and can then be neither captured nor cancelled.

A hold placed with the cardholder on the page (``authorize_on_session``, a guest's checkout) may
need the cardholder's bank to confirm it first (3-D Secure): the processor then answers
``requires_action`` with a page to send the cardholder to, and ``intent`` reads the outcome
from the processor afterwards (never from the browser).
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from plugpay_events.types import utc_now


@dataclass(frozen=True)
class CardDetails:
    """What we keep of a card: the processor's token and what a person needs to recognise it."""

    token: str
    brand: str
    last4: str
    exp_month: int | None = None
    exp_year: int | None = None


@dataclass(frozen=True)
class CardPayment:
    """What a hold or a charge asks of a customer's saved card."""

    customer_id: str
    token: str
    amount: int
    currency: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Authorization:
    """A hold on a card (a PaymentIntent awaiting capture)."""

    intent_id: str
    amount: int
    currency: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class IntentState:
    """A PaymentIntent as the processor reports it now.

    ``status``: ``requires_capture`` (held), ``requires_action`` (the cardholder must
    authenticate at ``redirect_url``), ``requires_payment_method`` (refused, e.g. a failed
    3-D Secure: ``decline_code`` says why), ``canceled``, ``succeeded``, ``processing``."""

    intent_id: str
    status: str
    amount: int
    currency: str
    redirect_url: str | None = None
    decline_code: str | None = None
    expires_at: datetime | None = None

    @property
    def held(self) -> bool:
        return self.status == "requires_capture"


@dataclass(frozen=True)
class Charge:
    """A completed card payment."""

    intent_id: str
    amount: int
    currency: str


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    object_id: str | None
    payload: dict[str, Any]


class ProcessorError(Exception):
    """The processor refused a request; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PaymentDeclined(ProcessorError):
    """The card was declined (``code``: card_declined, insufficient_funds, expired_card...)."""


class InvalidWebhook(ProcessorError):
    """A webhook whose signature, timestamp or body does not verify."""


class PaymentProcessor(abc.ABC):
    """What billing-svc needs from a card processor."""

    name: str = "abstract"
    simulated: bool = False

    @abc.abstractmethod
    async def create_customer(self, user_id: uuid.UUID, *, idempotency_key: str) -> str: ...

    @abc.abstractmethod
    async def attach_payment_method(
        self, customer_id: str, token: str, *, idempotency_key: str
    ) -> CardDetails:
        """Save a tokenised card for off-session use; refuses unknown tokens."""

    @abc.abstractmethod
    async def detach_payment_method(self, token: str, *, idempotency_key: str) -> None: ...

    @abc.abstractmethod
    async def authorize(self, payment: CardPayment, *, idempotency_key: str) -> Authorization:
        """Place a hold (manual capture); raises PaymentDeclined."""

    @abc.abstractmethod
    async def authorize_on_session(
        self, payment: CardPayment, *, return_url: str, idempotency_key: str
    ) -> IntentState:
        """Place a hold (manual capture) with the cardholder present: ``requires_capture``, or
        ``requires_action`` with the page where the bank asks them (back to ``return_url``);
        raises PaymentDeclined for a plain decline."""

    @abc.abstractmethod
    async def intent(self, intent_id: str) -> IntentState:
        """The intent as the processor has it now."""

    @abc.abstractmethod
    async def capture(self, intent_id: str, amount: int, *, idempotency_key: str) -> int:
        """Capture at most the held amount; the rest of the hold is released. Returns the
        amount captured."""

    @abc.abstractmethod
    async def cancel(self, intent_id: str, *, idempotency_key: str) -> None:
        """Release a hold entirely."""

    @abc.abstractmethod
    async def charge(self, payment: CardPayment, *, idempotency_key: str) -> Charge:
        """Charge a saved card off-session now (top-ups, shortfalls); raises PaymentDeclined."""

    @abc.abstractmethod
    async def refund(self, intent_id: str, amount: int, *, idempotency_key: str) -> str: ...

    @abc.abstractmethod
    def verify_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """Check a webhook's signature and age; raises InvalidWebhook."""

    async def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release connections."""


# --- webhook signatures (Stripe's scheme: t=<unix>,v1=<hex hmac-sha256 of "t.payload">) -----


def sign_webhook(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header a processor would send with ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    payload: bytes, header: str | None, secret: str, tolerance_s: int = 300
) -> None:
    """Raise InvalidWebhook unless ``header`` signs ``payload`` with ``secret`` recently."""
    if not header:
        raise InvalidWebhook("signature_missing", "no signature header")
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k == "t"]
    macs = [v for k, v in parts if k == "v1"]
    if not stamps or not macs or not stamps[0].isdigit():
        raise InvalidWebhook("signature_malformed", "malformed signature header")
    t = int(stamps[0])
    expected = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, m) for m in macs):
        raise InvalidWebhook("signature_mismatch", "the signature does not match")
    if abs(time.time() - t) > tolerance_s:
        raise InvalidWebhook("signature_expired", "the signature is too old")


def parse_webhook_body(payload: bytes) -> WebhookEvent:
    try:
        body = json.loads(payload)
        obj = body.get("data", {}).get("object", {})
        return WebhookEvent(
            id=str(body["id"]), type=str(body["type"]), object_id=obj.get("id"), payload=body
        )
    except (ValueError, KeyError, AttributeError) as error:
        raise InvalidWebhook("payload_malformed", "the webhook body is not an event") from error


# --- the simulation ---------------------------------------------------------------------------

# Stripe's test PaymentMethod tokens: (brand, last4, decline code or None).
TEST_CARDS: dict[str, tuple[str, str, str | None]] = {
    "pm_card_visa": ("visa", "4242", None),
    "pm_card_visa_debit": ("visa", "5556", None),
    "pm_card_mastercard": ("mastercard", "4444", None),
    "pm_card_amex": ("amex", "8431", None),
    "pm_card_chargeDeclined": ("visa", "0002", "card_declined"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "insufficient_funds"),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069", "expired_card"),
    "pm_card_chargeCustomerFail": ("visa", "0341", "card_declined"),
    # 3-D Secure required on every payment: a hold placed without the cardholder is refused.
    "pm_card_authenticationRequired": ("visa", "3184", "authentication_required"),
}


# Stripe's test card numbers, typed into the simulated processor's card form: the same
# behaviour as the test token of the same name (brand, last4 and decline come from it).
TEST_NUMBERS: dict[str, str] = {
    "4242424242424242": "pm_card_visa",
    "4000056655665556": "pm_card_visa_debit",
    "5555555555554444": "pm_card_mastercard",
    "371449635398431": "pm_card_amex",
    "4000000000000002": "pm_card_chargeDeclined",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
    "4000000000000069": "pm_card_chargeDeclinedExpiredCard",
    "4000000000000341": "pm_card_chargeCustomerFail",
    "4000002760003184": "pm_card_authenticationRequired",
}
# A typed card's token carries what the simulation needs to know of it (brand, last4, expiry,
# how it behaves), so a card saved before a restart of the embedded mode still works:
# pm_typed_<outcome>_<brand>_<last4>_<MMYY>_<nonce>. Never a card number or a CVC.
_TYPED = "pm_typed"
_OUTCOMES: dict[str, str | None] = {
    "ok": None,
    "declined": "card_declined",
    "nofunds": "insufficient_funds",
    "expired": "expired_card",
    "3ds": "authentication_required",
}
# How far ahead an expiry may be before it is taken for a typing mistake (Stripe: 50 years).
MAX_EXPIRY_YEARS = 50


def luhn_valid(digits: str) -> bool:
    """The Luhn check every card number passes (ISO/IEC 7812)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_brand(digits: str) -> str:
    """The card network a number's prefix names (what the form shows and the receipt says)."""
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in ("34", "37"):
        return "amex"
    if 51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720:
        return "mastercard"
    if digits.startswith(("6011", "65")):
        return "discover"
    return "unknown"


class CardEntryRefused(ProcessorError):
    """A typed card the processor's form refuses (``code``: card_number_invalid,
    card_expiry_invalid, card_expired, card_cvc_invalid)."""


# Where the simulated processor's 3-D Secure page is served (billing-svc's app, simulated only).
CHALLENGE_PATH = "/billing/processor/3ds"
# Intents not (yet) confirmed by the cardholder: nothing is held, and they can be cancelled.
UNCONFIRMED = ("requires_action", "requires_payment_method")


def _parse_expiry(expiry: str) -> tuple[int, int]:
    """(month, four-digit year) of ``MM/YY`` (``MM/YYYY``, spaces, ``-`` also taken)."""
    parts = expiry.replace(" ", "").replace("-", "/").split("/")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise CardEntryRefused("card_expiry_invalid", "Type the expiry date as MM/YY, e.g. 08/29.")
    month, year = int(parts[0]), int(parts[1])
    if len(parts[1]) == 2:
        year += 2000
    if not 1 <= month <= 12 or len(parts[1]) not in (2, 4):
        raise CardEntryRefused("card_expiry_invalid", "Type the expiry date as MM/YY, e.g. 08/29.")
    return month, year


def _typed_card(token: str) -> tuple[str, str, str | None, int, int] | None:
    """(brand, last4, decline, exp month, exp year) of a token ``tokenise`` made, else None."""
    parts = token.split("_")
    if len(parts) != 7 or "_".join(parts[:2]) != _TYPED or parts[2] not in _OUTCOMES:
        return None
    _, _, outcome, brand, last4, expiry, _ = parts
    if not (len(last4) == 4 and last4.isdigit() and len(expiry) == 4 and expiry.isdigit()):
        return None
    return brand, last4, _OUTCOMES[outcome], int(expiry[:2]), 2000 + int(expiry[2:])


@dataclass
class _Intent:
    id: str
    amount: int
    currency: str
    token: str
    capture_manual: bool
    # requires_capture, requires_action, requires_payment_method, succeeded, canceled
    status: str
    created_at: datetime
    amount_received: int = 0
    refunded: int = 0
    return_url: str | None = None
    challenge_id: str | None = None
    decline_code: str | None = None


@dataclass
class SimulatedProcessor(PaymentProcessor):
    """In-memory processor with Stripe's rules, for the embedded default and tests.

    Never for production: settings refuse it there.
    """

    # Random unless given: a well-known default would let anyone forge "payment" webhooks.
    webhook_secret: str = field(default_factory=lambda: f"whsec_{secrets.token_urlsafe(24)}")
    hold_ttl: timedelta = timedelta(days=7)
    clock: Callable[[], datetime] = utc_now
    intents: dict[str, _Intent] = field(default_factory=dict)
    customers: dict[str, uuid.UUID] = field(default_factory=dict)
    attached: dict[str, str] = field(default_factory=dict)  # token -> customer
    calls: list[tuple[str, str]] = field(default_factory=list)  # (operation, idempotency key)
    challenges: dict[str, str] = field(default_factory=dict)  # challenge id -> intent id
    _keys: dict[str, tuple[str, Any]] = field(default_factory=dict)

    name = "simulated"
    simulated = True

    def _idempotent(
        self, key: str, operation: str, params: dict[str, Any], run: Callable[[], Any]
    ) -> Any:
        self.calls.append((operation, key))
        fingerprint = json.dumps([operation, params], sort_keys=True, default=str)
        if key in self._keys:
            seen, outcome = self._keys[key]
            if seen != fingerprint:
                raise ProcessorError(
                    "idempotency_key_in_use",
                    "keys for idempotent requests can only be reused with the same parameters",
                )
        else:
            try:
                outcome = ("ok", run())
            except ProcessorError as error:
                outcome = ("error", error)
            self._keys[key] = (fingerprint, outcome)
        kind, value = outcome
        if kind == "error":
            raise value
        return value

    def _card(self, token: str) -> tuple[str, str, str | None]:
        card = TEST_CARDS.get(token)
        if card is None:
            typed = _typed_card(token)
            if typed is None:
                raise ProcessorError("resource_missing", f"No such PaymentMethod: '{token}'")
            card = typed[:3]
        return card

    def _expiry(self, token: str) -> tuple[int, int]:
        typed = _typed_card(token)
        return (typed[3], typed[4]) if typed else (12, 2034)

    def card_last4(self, token: str) -> str:
        """What the bank's page shows of the card."""
        return self._card(token)[1]

    def tokenise(self, number: str, expiry: str, cvc: str) -> CardDetails:
        """The hosted card form's work (Stripe.js/Elements at Stripe): a typed card becomes a
        token ``pm_...``, so the card number never reaches the merchant. Raises
        CardEntryRefused for a mistyped number (Luhn), an expiry (MM/YY) in the past or a CVC
        of the wrong length."""
        digits = "".join(number.split()).replace("-", "")
        if not (digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19):
            raise CardEntryRefused("card_number_invalid", "A card number has 12 to 19 digits.")
        if not luhn_valid(digits):
            raise CardEntryRefused(
                "card_number_invalid", "This card number is not valid: check for a typing mistake."
            )
        month, year = _parse_expiry(expiry)
        now = self.clock()
        if (year, month) < (now.year, now.month):
            raise CardEntryRefused(
                "card_expired", "This card has expired (its expiry date is past)."
            )
        if year > now.year + MAX_EXPIRY_YEARS:
            raise CardEntryRefused("card_expiry_invalid", "This expiry date is too far ahead.")
        test_token = TEST_NUMBERS.get(digits)
        brand, last4, decline = (
            TEST_CARDS[test_token] if test_token else (card_brand(digits), digits[-4:], None)
        )
        wanted = 4 if brand == "amex" else 3
        if not (cvc.isascii() and cvc.isdigit() and len(cvc) == wanted):
            raise CardEntryRefused(
                "card_cvc_invalid",
                f"The security code (CVC) is the {wanted} digits on the "
                f"{'front' if brand == 'amex' else 'back'} of the card.",
            )
        outcome = next(k for k, v in _OUTCOMES.items() if v == decline)
        token = f"{_TYPED}_{outcome}_{brand}_{last4}_{month:02d}{year % 100:02d}_"
        token += secrets.token_hex(8)
        return CardDetails(token=token, brand=brand, last4=last4, exp_month=month, exp_year=year)

    def _expired(self, intent: _Intent) -> bool:
        return (
            intent.status == "requires_capture"
            and self.clock() >= intent.created_at + self.hold_ttl
        )

    def _held(self, intent_id: str) -> _Intent:
        """The intent, if it is a hold that can still be captured or cancelled (as at Stripe)."""
        intent = self.intents.get(intent_id)
        if intent is None:
            raise ProcessorError("resource_missing", f"No such payment_intent: '{intent_id}'")
        if self._expired(intent):
            intent.status = "canceled"
        if intent.status != "requires_capture":
            raise ProcessorError(
                "payment_intent_unexpected_state", f"This PaymentIntent is {intent.status}"
            )
        return intent

    async def create_customer(self, user_id: uuid.UUID, *, idempotency_key: str) -> str:
        def run() -> str:
            customer = f"cus_sim_{uuid.uuid4().hex[:14]}"
            self.customers[customer] = user_id
            return customer

        return str(self._idempotent(idempotency_key, "customer", {"user": user_id}, run))

    async def attach_payment_method(
        self, customer_id: str, token: str, *, idempotency_key: str
    ) -> CardDetails:
        def run() -> CardDetails:
            brand, last4, _ = self._card(token)
            if customer_id not in self.customers:
                raise ProcessorError("resource_missing", f"No such customer: '{customer_id}'")
            self.attached[token] = customer_id
            month, year = self._expiry(token)
            return CardDetails(
                token=token, brand=brand, last4=last4, exp_month=month, exp_year=year
            )

        result: CardDetails = self._idempotent(
            idempotency_key, "attach", {"customer": customer_id, "token": token}, run
        )
        return result

    async def detach_payment_method(self, token: str, *, idempotency_key: str) -> None:
        def run() -> None:
            self._card(token)
            self.attached.pop(token, None)

        self._idempotent(idempotency_key, "detach", {"token": token}, run)

    def _new_intent(
        self, payment: CardPayment, *, capture_manual: bool, return_url: str | None = None
    ) -> _Intent:
        """A PaymentIntent as Stripe makes one: a hold (manual capture) or a paid charge. Placed
        with the cardholder on the page (a ``return_url``), a card whose bank asks awaits the
        cardholder's challenge, as Stripe's test page for this card offers (complete or fail)."""
        challenged = (
            return_url is not None and self._card(payment.token)[2] == "authentication_required"
        )
        if payment.amount <= 0:
            raise ProcessorError("parameter_invalid_integer", "amount must be positive")
        if not challenged:
            self._decline_check(payment.token)
        status = "requires_capture" if capture_manual else "succeeded"
        intent = _Intent(
            id=f"pi_sim_{uuid.uuid4().hex[:14]}",
            amount=payment.amount,
            currency=payment.currency,
            token=payment.token,
            capture_manual=capture_manual,
            status="requires_action" if challenged else status,
            created_at=self.clock(),
            amount_received=0 if capture_manual else payment.amount,
            return_url=return_url,
            challenge_id=secrets.token_urlsafe(18) if challenged else None,
        )
        self.intents[intent.id] = intent
        if intent.challenge_id is not None:
            self.challenges[intent.challenge_id] = intent.id
        return intent

    def _decline_check(self, token: str) -> None:
        _, _, decline = self._card(token)
        if decline is not None:
            message = {
                "insufficient_funds": "Your card has insufficient funds.",
                "authentication_required": "Your card was declined. This transaction requires "
                "authentication.",
            }.get(decline, "Your card was declined.")
            raise PaymentDeclined(decline, message)

    @staticmethod
    def _payment_params(payment: CardPayment) -> dict[str, Any]:
        """What a reused idempotency key is compared on (not the metadata)."""
        return {
            "customer": payment.customer_id,
            "token": payment.token,
            "amount": payment.amount,
            "currency": payment.currency,
        }

    async def authorize(self, payment: CardPayment, *, idempotency_key: str) -> Authorization:
        def run() -> Authorization:
            intent = self._new_intent(payment, capture_manual=True)
            expires_at = intent.created_at + self.hold_ttl
            return Authorization(intent.id, payment.amount, payment.currency, expires_at)

        params = self._payment_params(payment)
        result: Authorization = self._idempotent(idempotency_key, "authorize", params, run)
        return result

    async def authorize_on_session(
        self, payment: CardPayment, *, return_url: str, idempotency_key: str
    ) -> IntentState:
        def run() -> IntentState:
            return self._state(
                self._new_intent(payment, capture_manual=True, return_url=return_url)
            )

        params = {**self._payment_params(payment), "return_url": return_url}
        result: IntentState = self._idempotent(idempotency_key, "authorize", params, run)
        return result

    def _state(self, intent: _Intent) -> IntentState:
        if self._expired(intent):
            intent.status = "canceled"
        return IntentState(
            intent_id=intent.id,
            status=intent.status,
            amount=intent.amount,
            currency=intent.currency,
            redirect_url=(
                f"{CHALLENGE_PATH}/{intent.challenge_id}"
                if intent.status == "requires_action"
                else None
            ),
            decline_code=intent.decline_code,
            expires_at=intent.created_at + self.hold_ttl if intent.capture_manual else None,
        )

    async def intent(self, intent_id: str) -> IntentState:
        found = self.intents.get(intent_id)
        if found is None:
            raise ProcessorError("resource_missing", f"No such payment_intent: '{intent_id}'")
        return self._state(found)

    def challenge(self, challenge_id: str) -> IntentState | None:
        """The intent whose 3-D Secure challenge this is, while it awaits the cardholder."""
        intent = self.intents.get(self.challenges.get(challenge_id, ""))
        if intent is None or intent.status != "requires_action":
            return None
        return self._state(intent)

    def answer_challenge(self, challenge_id: str, *, authenticated: bool) -> str | None:
        """The cardholder completed or failed the bank's check: the intent is held (from now,
        as at Stripe) or refused. Returns where to send them back, None if no such challenge."""
        intent = self.intents.get(self.challenges.pop(challenge_id, ""))
        if intent is None or intent.status != "requires_action":
            return None
        if authenticated:
            intent.status, intent.created_at = "requires_capture", self.clock()
        else:
            intent.status = "requires_payment_method"
            intent.decline_code = "authentication_failed"
        return intent.return_url

    async def capture(self, intent_id: str, amount: int, *, idempotency_key: str) -> int:
        def run() -> int:
            intent = self._held(intent_id)
            if amount <= 0 or amount > intent.amount:
                raise ProcessorError(
                    "amount_too_large", "amount_to_capture must be at most the amount capturable"
                )
            intent.status = "succeeded"
            intent.amount_received = amount
            return amount

        return int(
            self._idempotent(
                idempotency_key, "capture", {"intent": intent_id, "amount": amount}, run
            )
        )

    async def cancel(self, intent_id: str, *, idempotency_key: str) -> None:
        def run() -> None:
            waiting = self.intents.get(intent_id)
            if waiting is not None and waiting.status in UNCONFIRMED:
                # Stripe cancels an intent that still awaits its cardholder, too.
                waiting.status = "canceled"
                return
            intent = self._held(intent_id)
            intent.status = "canceled"

        self._idempotent(idempotency_key, "cancel", {"intent": intent_id}, run)

    async def charge(self, payment: CardPayment, *, idempotency_key: str) -> Charge:
        def run() -> Charge:
            intent = self._new_intent(payment, capture_manual=False)
            return Charge(intent.id, payment.amount, payment.currency)

        params = self._payment_params(payment)
        result: Charge = self._idempotent(idempotency_key, "charge", params, run)
        return result

    async def refund(self, intent_id: str, amount: int, *, idempotency_key: str) -> str:
        def run() -> str:
            intent = self.intents.get(intent_id)
            if intent is None or intent.status != "succeeded":
                raise ProcessorError("charge_not_refundable", "nothing captured to refund")
            if amount <= 0 or intent.refunded + amount > intent.amount_received:
                raise ProcessorError("amount_too_large", "refund exceeds the captured amount")
            intent.refunded += amount
            return f"re_sim_{uuid.uuid4().hex[:14]}"

        return str(
            self._idempotent(
                idempotency_key, "refund", {"intent": intent_id, "amount": amount}, run
            )
        )

    def verify_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        verify_signature(payload, signature, self.webhook_secret)
        return parse_webhook_body(payload)
