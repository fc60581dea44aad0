// Taking a card at the payment processor: the card is typed into the processor's own form, which
// hands back a token (a PaymentMethod id, pm_...); only that token goes to billing
// (POST /billing/payment-methods). billing's public GET /billing/processor says which form:
// - "stripe": Stripe.js from js.stripe.com (Stripe requires it to be loaded from there) with the
//   publishable key, a Card Element in Stripe's own frame, stripe.createPaymentMethod();
// - "simulated": the simulated processor's fields, tokenised at /billing/processor/cards (the
//   simulated processor's endpoint, as Stripe's API is Stripe's), sent without Plugpay's token.
import { ApiError, get } from "./api.js";
import { field, h, put } from "./dom.js";

const STRIPE_JS = "https://js.stripe.com/v3";
// Which field a refusal of the simulated form is about (its reasons are machine-readable).
const FIELD_OF = {
  card_number_invalid: "number", card_expiry_invalid: "expiry", card_expired: "expiry", card_cvc_invalid: "cvc",
};

let processor = null;
/** How this Plugpay takes cards (asked once per page load). */
export function processorConfig() {
  processor = processor || get("/billing/processor").catch((error) => { processor = null; throw error; });
  return processor;
}

/** A card form for the configured processor: `{ node, kind, tokenise() }`; `tokenise()` resolves
 *  to `{ token, brand, last4 }` or throws an ApiError whose message is in words (and shows it). */
export async function cardEntry(idPrefix = "card") {
  return cardEntryFor(await processorConfig(), idPrefix);
}

export function cardEntryFor(config, idPrefix = "card", loadStripe = loadStripeJs) {
  return config.kind === "stripe" ? stripeEntry(config, idPrefix, loadStripe) : simulatedEntry(idPrefix);
}

function simulatedEntry(idPrefix) {
  const input = (name, attrs) => h("input", {
    id: `${idPrefix}-${name}`, name, type: "text", autocomplete: attrs.autocomplete, inputmode: "numeric",
    spellcheck: "false", maxlength: attrs.maxlength, placeholder: attrs.placeholder, required: true,
  });
  const inputs = {
    number: input("number", { autocomplete: "cc-number", maxlength: "23", placeholder: "1234 1234 1234 1234" }),
    expiry: input("expiry", { autocomplete: "cc-exp", maxlength: "7", placeholder: "MM/YY" }),
    cvc: input("cvc", { autocomplete: "cc-csc", maxlength: "4", placeholder: "123" }),
  };
  const error = h("p", { class: "field-error", id: `${idPrefix}-error`, role: "alert" });
  const node = h("fieldset", { class: "card-entry", id: `${idPrefix}-entry`, dataset: { processor: "simulated" } },
    h("legend", {}, "Card"),
    field("Card number", inputs.number),
    h("div", { class: "grid2" },
      field("Expiry date (MM/YY)", inputs.expiry),
      field("Security code (CVC)", inputs.cvc, "3 digits on the back, 4 on the front for American Express.")),
    h("p", { class: "muted" }, "Test processor: 4242 4242 4242 4242 is accepted, 4000 0000 0000 0002 declined, ",
      "4000 0027 6000 3184 asks for 3-D Secure."),
    error);
  const show = (reason, message) => {
    for (const [name, el] of Object.entries(inputs)) {
      if (FIELD_OF[reason] === name) {
        el.setAttribute("aria-invalid", "true");
        el.setAttribute("aria-errormessage", error.id);
      } else {
        el.removeAttribute("aria-invalid");
      }
    }
    put(error, message || "");
    error.dataset.reason = reason || "";
  };
  const tokenise = async () => {
    show(null, "");
    let res;
    try {
      // No Authorization header: the card goes to the processor, which has no use for it.
      res = await fetch("/billing/processor/cards", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ number: inputs.number.value, expiry: inputs.expiry.value, cvc: inputs.cvc.value }),
      });
    } catch {
      throw new ApiError(0, { reason: "offline", message: "no connection" });
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const reason = (body && body.reason) || "card_invalid";
      const message = res.status === 422 && FIELD_OF[reason] ? body.message : "Check the card details and try again.";
      show(reason, message);
      (inputs[FIELD_OF[reason]] || inputs.number).focus({ preventScroll: true });
      // Above a phone's sticky buttons, not under them.
      error.scrollIntoView({ block: "center" });
      throw new ApiError(res.status, { reason, message });
    }
    return { token: body.token, brand: body.brand, last4: body.last4 };
  };
  return { node, kind: "simulated", tokenise };
}

function loadStripeJs() {
  if (window.Stripe) return Promise.resolve(window.Stripe);
  return new Promise((resolve, reject) => {
    const script = h("script", { src: STRIPE_JS });
    script.addEventListener("load", () => (window.Stripe ? resolve(window.Stripe) : reject(new Error("no Stripe"))));
    script.addEventListener("error", () => reject(new Error("Stripe.js did not load")));
    document.head.append(script);
  });
}

const stripes = new Map();

function stripeEntry(config, idPrefix, loadStripe) {
  const mount = h("div", { class: "stripe-card", id: `${idPrefix}-element` });
  const error = h("p", { class: "field-error", id: `${idPrefix}-error`, role: "alert" });
  const node = h("fieldset", { class: "card-entry", id: `${idPrefix}-entry`, dataset: { processor: "stripe" } },
    h("legend", {}, "Card"), mount,
    h("p", { class: "muted" }, "Your card details go straight to our payment processor, Stripe."), error);
  const unavailable = () => new ApiError(503, { reason: "card_entry_unavailable", message: "Card payments can't be taken right now. Please try again later." });
  let stripe = null;
  let card = null;
  const ready = !config.publishable_key
    ? Promise.reject(unavailable())
    : loadStripe().then((Stripe) => {
      // One Stripe instance per page and key, as Stripe.js asks; a form re-drawn reuses it.
      if (!stripes.has(config.publishable_key)) stripes.set(config.publishable_key, Stripe(config.publishable_key));
      stripe = stripes.get(config.publishable_key);
      card = stripe.elements().create("card", { hidePostalCode: true });
      card.mount(mount);
      card.on("change", (event) => put(error, event.error ? event.error.message : ""));
    });
  ready.catch(() => put(error, unavailable().message));
  const tokenise = async () => {
    try { await ready; } catch { throw unavailable(); }
    const { paymentMethod, error: refused } = await stripe.createPaymentMethod({ type: "card", card });
    if (refused) {
      put(error, refused.message);
      throw new ApiError(422, { reason: refused.code || "card_invalid", message: refused.message });
    }
    return { token: paymentMethod.id, brand: paymentMethod.card && paymentMethod.card.brand, last4: paymentMethod.card && paymentMethod.card.last4 };
  };
  return { node, kind: "stripe", tokenise };
}
