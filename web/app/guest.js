// Paying without an account (EU AFIR ad hoc charging): the guest checkout of one charger's code.
// The guest's token (POST /auth/guest) is bound to this one code; the card is typed into the
// payment processor's form (shared/card.js) and only its token reaches billing, held as a pre-authorisation by billing while the guest is here (POST /billing/checkout),
// before the charger is started: a bank that wants 3-D Secure sends the guest to its page and
// back here, where billing asks the processor how it went. The live session and receipt are the
// ordinary pages (the guest's token reads only its own session).
import { api, get, guest } from "./shared/api.js";
import { announce, field, h, put } from "./shared/dom.js";
import { cardEntry } from "./shared/card.js";
import { decimalMoney, kw, kwh, money } from "./shared/format.js";

const PENDING = "plugpay.pending";
// The card the guest's bank is asking about (3-D Secure): back here, the checkout is confirmed.
const AUTHENTICATING = "plugpay.checkout-authenticating";

async function guestToken(code) {
  const saved = guest.token;
  if (saved && saved.code === code) return saved;
  guest.clear();
  const body = await api("POST", "/auth/guest", { json: { code } });
  guest.save(code, body);
  return guest.token;
}

/** Every price component, incl. VAT, as the final invoice will itemise them. */
export function priceComponents(quote) {
  const c = quote.currency;
  const each = (value, unit) => (value === null || value === undefined ? null : `${decimalMoney(value, c)}${unit}`);
  const rows = [
    ["Energy", each(quote.per_kwh, " per kWh"), "per-kwh"],
    ["Time", each(quote.per_minute, " per minute") || each(quote.per_hour, " per hour"), "per-time"],
    ["Session fee", each(quote.per_session, " per session"), "per-session"],
    ["Idle fee", each(quote.idle_per_minute, " per minute after charging") || each(quote.idle_per_hour, " per hour after charging"), "idle"],
  ];
  return h("dl", { class: "stats", id: "price-components" },
    rows.map(([label, value, id]) => h("div", { class: "stat" }, h("dt", {}, label), h("dd", { id: "price-" + id }, value || "none"))),
    h("div", { class: "stat" }, h("dt", {}, "VAT"), h("dd", { id: "price-vat" },
      quote.vat_percent !== null && quote.vat_percent !== undefined ? `${Number(quote.vat_percent)} % included` : "included")));
}

export async function guestCheckoutPage(ui) {
  const { page, problem, busy, go, lookupCode } = ui;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  if (!pending) return go("#/find");
  const details = h("div", { class: "card stack", "aria-busy": "true" }, h("span", { class: "spinner", role: "img", "aria-label": "Loading" }));
  const message = h("div", { "aria-live": "assertive" });
  page("Pay by card", details, message);
  let charger, quote, card;
  try {
    await guestToken(pending.code.trim());
    charger = await lookupCode(pending.code);
    quote = await get(`/pricing/stations/${encodeURIComponent(charger.station_id)}/quote?connector=${charger.connector_id}`);
    card = await cardEntry("guest-card");
  } catch (error) {
    details.setAttribute("aria-busy", "false");
    put(details, problem(error, h("p", {}, h("a", { href: "#/login" }, "Log in instead"))));
    return;
  }
  const start = h("button", { class: "block", id: "guest-start" }, "Pay by card and start");
  const cancel = h("button", {
    class: "secondary block", onclick: async () => {
      busy(cancel, true);
      // A card hold placed but not used is released now, not when it expires.
      await api("DELETE", "/billing/checkout").catch(() => {});
      await api("POST", "/sessions/codes/release", { json: { code: pending.code.trim() } }).catch(() => {});
      sessionStorage.removeItem(PENDING);
      guest.clear();
      go("#/find");
    },
  }, "Cancel");
  put(details,
    h("p", { class: "muted" }, "Charger"), h("p", { class: "big", id: "station-name" }, quote.station_name || charger.station_id),
    h("p", { id: "connector" }, "Connector ", charger.connector_id, quote.max_power_w ? [" · up to ", kw(quote.max_power_w)] : null),
    h("div", { class: "alert info", id: "price" }, h("strong", {}, "Price"), h("p", { class: "price" }, quote.text),
      priceComponents(quote),
      h("p", { class: "muted" }, `A typical session (${kwh(quote.example.energy_wh)}) costs about ${money(quote.example.total)}.`)),
    !quote.in_service ? h("div", { class: "alert warn" }, "This charger is marked out of service.") : null,
    h("p", { id: "preauth-note" }, "When you start, an amount is reserved on your card (a pre-authorisation). ",
      "Charging stops before it is used up; at the end only the cost is charged and the rest is released."),
    card.node,
    h("p", { class: "muted" }, "No account needed. ", h("a", { href: "#/login" }, "Log in"), " to pay from your wallet instead."));
  details.setAttribute("aria-busy", "false");
  details.after(h("div", { class: "stack main-action" }, start, cancel));
  // The hold is in place: only now the charger is started.
  const startCharging = async () => {
    const accepted = await api("POST", "/sessions/scan", { json: { code: pending.code } });
    sessionStorage.removeItem(PENDING);
    announce("Card accepted, starting");
    go("#/session/" + accepted.session_id);
  };
  const refused = (error) => {
    busy(start, false);
    if (error.status !== 402) return put(message, problem(error));
    // The card or its bank said no: nothing is reserved, and a new code is a new checkout.
    start.disabled = true;
    put(message, h("div", { class: "alert error", role: "alert", id: "checkout-refused", dataset: { reason: error.reason } },
      h("strong", {}, "Your card was not accepted"), h("p", { id: "checkout-detail" }, error.message),
      h("p", { id: "guest-next" }, "Choose “Pay with phone” on the charger for a new code, then pay with another card.")));
    // Below the price on a phone: brought into view, not left under the buttons.
    message.scrollIntoView({ block: "center" });
  };
  start.addEventListener("click", async () => {
    busy(start, true);
    put(message, );
    let entered;
    try {
      entered = await card.tokenise();
    } catch (error) {
      // Mistyped: the form says what to correct, beside the field.
      busy(start, false);
      if (error.status !== 422) put(message, problem(error));
      return;
    }
    try {
      try {
        await api("POST", "/billing/payment-methods", { json: { token: entered.token }, idempotent: true });
      } catch (error) {
        // A retry after a failure: this checkout's card is already saved.
        if (error.reason !== "guest_card_exists") throw error;
      }
      const hold = await api("POST", "/billing/checkout", { json: { max_power_w: quote.max_power_w || null, currency: quote.currency } });
      if (hold.status === "requires_action") {
        sessionStorage.setItem(AUTHENTICATING, JSON.stringify({ brand: entered.brand, last4: entered.last4 }));
        announce("Your bank asks you to confirm the payment");
        location.assign(hold.next_action.url);
        return;
      }
      await startCharging();
    } catch (error) {
      refused(error);
    }
  });
  if (sessionStorage.getItem(AUTHENTICATING)) {
    // Back from the bank's page: billing asks the processor (the page's word is not taken).
    const asked = JSON.parse(sessionStorage.getItem(AUTHENTICATING)) || {};
    sessionStorage.removeItem(AUTHENTICATING);
    // The card is saved already: it is named, not asked for again.
    card.node.replaceWith(h("p", { id: "guest-card-saved" }, "Card: ", (asked.brand || "").toUpperCase(), " •••• ", asked.last4 || ""));
    busy(start, true);
    put(message, h("p", { role: "status", id: "checkout-checking" }, "Checking with your bank…"));
    try {
      await api("POST", "/billing/checkout/confirm");
      put(message, );
      await startCharging();
    } catch (error) {
      refused(error);
    }
  }
}

/** The invoice mailed to an address the payer types (a guest has no account address), with a
 *  VAT id for a business invoice. */
export function invoiceMailForm(sessionId, { problem, busy }) {
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true, id: "invoice-email" });
  const vat = h("input", { type: "text", name: "vat_id", autocomplete: "off", id: "invoice-vat-id", placeholder: "e.g. DE123456789" });
  const message = h("div", { "aria-live": "polite" });
  const send = h("button", { type: "submit", class: "secondary" }, "Send invoice");
  return h("form", {
    class: "card", id: "invoice-mail", novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      busy(send, true);
      put(message, );
      try {
        const sent = await api("POST", `/billing/receipts/${sessionId}/mail`, { json: { email: email.value, vat_id: vat.value } });
        put(message, h("p", { role: "status", id: "invoice-sent" }, "Invoice sent to ", sent.email, "."));
        announce("Invoice sent");
      } catch (error) { put(message, problem(error)); } finally { busy(send, false); }
    },
  }, h("h2", {}, "Invoice by e-mail"), field("E-mail address", email),
  field("VAT ID (optional, for a business invoice)", vat, "Named on the invoice once given."), send, message);
}
