// Plugpay for drivers (patent FIG. 6: the mobile payment application). Hash-routed, no build.
import { api, auth, get, guest, login, logout, raw, sessionCodeIn, stream, ApiError } from "./shared/api.js";
import { announce, download, field, focusHeading, h, put, s } from "./shared/dom.js";
import { duration, kw, kwh, money, toMinor, when } from "./shared/format.js";
import { cardEntry } from "./shared/card.js";
import { explain } from "./shared/reasons.js";
import { store } from "./store.js";
import { guestCheckoutPage, invoiceMailForm } from "./guest.js";

const view = document.getElementById("view");
const PENDING = "plugpay.pending";
const LIVE = new Set(["code_issued", "scanned", "priced", "authorised", "charging", "stopping", "completed", "cost_calculated"]);
const STATUS_TEXT = {
  code_issued: "Waiting for your confirmation", scanned: "Checking the charger and price…", priced: "Reserving funds…",
  authorised: "Authorised — the charger is starting", charging: "Charging", stopping: "Stopping…",
  completed: "Finished — calculating the cost…", cost_calculated: "Finished — settling the payment…",
  billed: "Finished", denied: "Not authorised", expired: "Code expired", abandoned: "Cancelled", failed: "Failed",
};
let cleanup = [];
let me = null;

auth.onLogout = () => { me = null; go("#/login"); };

// --- plumbing --------------------------------------------------------------------------------

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function page(title, ...children) {
  document.title = title + " · Plugpay";
  put(view, h("h1", {}, title), ...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  focusHeading(view);
}

function problem(error, extra) {
  const reason = error instanceof ApiError ? error.reason : (error && error.reason) || "internal_error";
  const { title, next } = explain(reason, error && error.message);
  return h("div", { class: "alert error", role: "alert", dataset: { reason } }, h("strong", {}, title), h("p", {}, next),
    reason === "account_unverified" ? resendLink() : null, extra || null);
}

// Wherever money is refused for an unconfirmed address, the fix is one tap away.
function resendLink() {
  const sent = h("span", { "aria-live": "polite" });
  const button = h("button", { type: "button", class: "secondary", id: "resend-verification", onclick: async () => {
    busy(button, true);
    try {
      const who = me || await whoAmI();
      await api("POST", "/auth/verify/resend", { json: { email: who.email } });
      put(sent, " A new link is on its way to ", who.email, ".");
    } catch (error) { put(sent, " ", explain(error.reason || "internal_error").title); } finally { busy(button, false); }
  } }, "Send the link again");
  return h("p", {}, button, sent);
}

function busy(button, on) {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}

function setNav(name) {
  for (const a of document.querySelectorAll("nav.tabs a")) {
    if (a.dataset.tab === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.querySelector("nav.tabs").hidden = !auth.loggedIn;
}

async function whoAmI() {
  if (!auth.loggedIn) return null;
  if (me) return me;
  try {
    me = await get("/auth/me");
    await store.set("me", me);
  } catch (error) {
    if (error.reason !== "offline") throw error;
    me = await store.value("me");
  }
  document.getElementById("who").textContent = me ? me.email : "";
  return me;
}

function needLogin() {
  if (auth.loggedIn) return false;
  sessionStorage.setItem("plugpay.next", location.hash || "#/");
  go("#/login");
  return true;
}

// --- log in / register ---------------------------------------------------------------------------

function loginPage() {
  setNav(null);
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const message = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "block" }, "Log in");
  const pending = sessionStorage.getItem(PENDING);
  page("Log in",
    pending ? h("div", { class: "alert info" }, h("strong", {}, "Code received."), h("p", {}, "Log in to see the price and start charging."),
      // EU ad hoc charging: anyone may pay at a public charger without an account.
      h("p", {}, "No account? ", h("a", { class: "button secondary block", href: "#/guest", id: "pay-by-card" }, "Pay by card"))) : null,
    h("form", {
      class: "card", novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        busy(submit, true);
        put(message, );
        try {
          await login(email.value.trim(), password.value);
          me = null;
          await whoAmI();
          announce("Logged in");
          const next = sessionStorage.getItem("plugpay.next");
          sessionStorage.removeItem("plugpay.next");
          go(me && me.roles.includes("operator") && !me.roles.includes("driver") ? "#/" : next || "#/");
          syncAll();
        } catch (error) {
          put(message, problem(error));
        } finally { busy(submit, false); }
      },
    }, field("E-mail", email), field("Password", password), submit, message),
    // At a charger without an account: the camera reads its code, then "Pay by card" as above.
    pending ? null : h("div", { class: "card stack", id: "scan-as-guest" },
      h("p", {}, "At a charger? Choose “Pay with phone” on its screen and scan the code it shows. No account needed: you can pay by card."),
      h("a", { class: "button secondary block", href: "#/scan" }, icon("camera"), "Scan the charger's code")),
    h("p", {}, h("a", { href: "#/forgot", id: "forgot" }, "Forgot your password?")),
    h("p", {}, "New to Plugpay? ", h("a", { href: "#/register" }, "Create an account")),
    h("p", {}, h("a", { href: "#/find" }, "Find a charger near you")));
}

// Asking for a reset link: the same answer whether or not the address has an account.
function resetRequestForm(label) {
  const email = h("input", { type: "email", autocomplete: "email", required: true });
  const sent = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "block" }, label);
  return h("form", {
    class: "card", id: "reset-request", onsubmit: async (e) => {
      e.preventDefault();
      busy(submit, true);
      try {
        const answer = await api("POST", "/auth/password/reset/request", { json: { email: email.value.trim() } });
        put(sent, h("div", { class: "alert info", role: "status" }, h("strong", {}, "Check your e-mail."),
          h("p", {}, answer.message + ". The link works once, for 30 minutes.")));
      } catch (error) { put(sent, problem(error)); } finally { busy(submit, false); }
    },
  }, field("E-mail", email), submit, sent);
}

function forgotPage() {
  setNav(null);
  page("Reset your password", resetRequestForm("Send me a reset link"),
    h("p", {}, h("a", { href: "#/login" }, "Back to log in")));
}

// The mailed link: /app/#/reset/<code> (in the fragment: never sent to a server or its logs).
function resetPage(code) {
  setNav(null);
  history.replaceState(null, "", "#/reset");
  const password = h("input", { type: "password", autocomplete: "new-password", minlength: "12", required: true, id: "new-password" });
  const message = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "block" }, "Set the new password");
  page("Choose a new password",
    h("form", {
      class: "card", id: "reset", onsubmit: async (e) => {
        e.preventDefault();
        busy(submit, true);
        try {
          await api("POST", "/auth/password/reset", { json: { token: code, new_password: password.value } });
          put(message, h("div", { class: "alert ok", role: "status" }, h("strong", {}, "Your password was changed."),
            h("p", {}, "Every device was signed out. Log in with the new password.")),
            h("a", { class: "button block", href: "#/login" }, "Log in"));
          submit.hidden = true;
        } catch (error) {
          const dead = error && ["reset_expired", "reset_used", "reset_invalid"].includes(error.reason);
          put(message, problem(error), dead ? resetRequestForm("Send me a new link") : null);
          if (dead) submit.hidden = true;
        } finally { busy(submit, false); }
      },
    }, field("New password", password, "At least 12 characters, not easy to guess."), submit, message));
}

function registerPage() {
  setNav(null);
  const email = h("input", { type: "email", autocomplete: "email", required: true });
  const password = h("input", { type: "password", autocomplete: "new-password", minlength: "12", required: true });
  const message = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "block" }, "Create account");
  page("Create your account",
    h("form", {
      class: "card", onsubmit: async (e) => {
        e.preventDefault();
        busy(submit, true);
        try {
          await api("POST", "/auth/register", { json: { email: email.value.trim(), password: password.value } });
          put(message, h("div", { class: "alert info", role: "status" },
            h("strong", {}, "Check your e-mail."),
            h("p", {}, "We sent a link to confirm your address. Open it, then log in.")));
        } catch (error) { put(message, problem(error)); } finally { busy(submit, false); }
      },
    }, field("E-mail", email), field("Password", password, "At least 12 characters."), submit, message),
    h("p", {}, "Already have an account? ", h("a", { href: "#/login" }, "Log in")));
}

// The mailed link: /app/#/verify/<code> (the code stays in the fragment, out of every log).
async function verifyPage(code) {
  setNav(null);
  history.replaceState(null, "", "#/verify");
  const message = h("div", { "aria-live": "polite" }, h("p", {}, "Confirming your address…"));
  page("Confirm your e-mail", h("div", { class: "card" }, message));
  try {
    await api("POST", "/auth/verify", { json: { token: code } });
    put(message, h("div", { class: "alert ok", role: "status" }, h("strong", {}, "Your address is confirmed."),
      h("p", {}, auth.loggedIn ? "You can pay at a charger now." : "Log in to pay at a charger.")),
      h("a", { class: "button block", href: auth.loggedIn ? "#/" : "#/login" }, auth.loggedIn ? "Start charging" : "Log in"));
  } catch (error) {
    const email = h("input", { type: "email", autocomplete: "email", required: true });
    const sent = h("div", { "aria-live": "polite" });
    put(message, problem(error), h("form", {
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api("POST", "/auth/verify/resend", { json: { email: email.value.trim() } });
          put(sent, h("div", { class: "alert info", role: "status" }, "If this address has an account to confirm, a new link is on its way."));
        } catch (again) { put(sent, problem(again)); }
      },
    }, field("Send a new link to", email), h("button", { type: "submit", class: "block secondary" }, "Send a new link"), sent));
  }
}

// An operator invited this driver into a group (members-only chargers): /app/#/invitations/<token>.
async function invitationPage(token) {
  setNav(null);
  history.replaceState(null, "", "#/invitations");
  const message = h("div", { "aria-live": "polite" }, h("p", {}, "Accepting the invitation…"));
  page("Invitation", h("div", { class: "card" }, message));
  try {
    const accepted = await api("POST", "/auth/invitations/accept", { json: { token } });
    put(message, h("div", { class: "alert ok", role: "status" }, h("strong", {}, `You joined ${accepted.group}.`),
      h("p", {}, "Its members-only chargers are open to you from your next log-in.")), h("a", { class: "button block", href: "#/find" }, "Find a charger"));
  } catch (error) { put(message, problem(error)); }
}

// --- charge: scan, type, confirm ------------------------------------------------------------------

async function homePage() {
  setNav("charge");
  const code = h("input", {
    class: "code", name: "code", inputmode: "text", autocomplete: "off", autocapitalize: "characters",
    spellcheck: "false", maxlength: "9", placeholder: "A3F9KX", required: true,
  });
  const active = h("div");
  // A wrong, expired or used code is answered here, next to the field: no price page, no Start.
  const codeError = h("div", { id: "code-error", "aria-live": "assertive" });
  const submit = h("button", { type: "submit", class: "secondary block" }, "Continue");
  page("Charge",
    active,
    h("div", { class: "card stack" },
      h("p", {}, "On the charger, choose “Pay with phone”. Then scan the QR code it shows:"),
      h("a", { class: "button block", href: "#/scan" }, icon("camera"), "Scan the QR code")),
    h("form", {
      class: "card", onsubmit: async (e) => {
        e.preventDefault();
        const value = typedCode(code.value);
        put(codeError);
        code.removeAttribute("aria-invalid");
        if (!value) {
          code.setAttribute("aria-invalid", "true");
          put(codeError, h("p", { class: "field-error", role: "alert" },
            "Type the six characters shown under the QR code, e.g. A3F9KX (letters and digits; never 0, O, 1, I, L, 2, Z, 5, S, 8 or B)."));
          code.focus();
          return;
        }
        busy(submit, true);
        try {
          const preview = await lookupCode(value, codeError);
          sessionStorage.setItem(PENDING, JSON.stringify({ code: value, kind: "typed", preview }));
          go("#/confirm");
        } catch (error) {
          code.setAttribute("aria-invalid", "true");
          put(codeError, problem(error));
          busy(submit, false);
          code.focus();
        }
      },
    }, field("Or type the code shown under the QR code", code, "6 letters and digits, e.g. A3F9KX."),
      codeError, submit),
    h("p", {}, h("a", { href: "#/find" }, "Find a charger nearby")));
  // A session still running (the app was closed while charging): offer to go back to it.
  const show = (items) => {
    const running = items.find((x) => LIVE.has(x.status) && x.status !== "code_issued");
    if (running) {
      put(active, h("a", { class: "card button secondary block", href: "#/session/" + running.session_id },
        "Your session at ", running.station_name || running.station_id || "the charger", ": ", STATUS_TEXT[running.status] || running.status));
    }
  };
  show(await store.sessions());
  syncSessions().then(show).catch(() => {});
}

async function scanPage() {
  setNav("charge");
  const video = h("video", { playsinline: true, muted: true, autoplay: true, "aria-label": "Camera preview" });
  const status = h("p", { role: "status" }, "Starting the camera…");
  const canvas = h("canvas", { hidden: true });
  page("Scan the QR code",
    h("div", { class: "camera" }, video, h("div", { class: "frame", "aria-hidden": "true" })),
    status,
    h("p", { class: "muted" }, "Hold the phone so the code fills the square. No camera? ", auth.loggedIn
      ? h("a", { href: "#/" }, "Type the code instead")
      // Typing a code needs an account; the phone's own camera app opens the QR's link as well.
      : [h("a", { href: "#/login" }, "Log in"), " to type the code, or open the QR code with your phone's camera app."]),
    canvas);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    put(status, problem({ reason: "no_camera", message: "This browser cannot use the camera. Type the code instead." }));
    return;
  }
  let media;
  try {
    await loadScript("vendor/jsqr/jsQR.js");
    media = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (error) {
    put(status, h("div", { class: "alert error", role: "alert" }, h("strong", {}, "The camera isn't available."),
      h("p", {}, "Allow camera access for this site in your browser settings, or type the code instead.")));
    return;
  }
  let running = true;
  cleanup.push(() => { running = false; media.getTracks().forEach((t) => t.stop()); });
  video.srcObject = media;
  await video.play().catch(() => {});
  status.textContent = "Looking for a Plugpay code…";
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const tick = () => {
    if (!running) return;
    if (video.readyState >= 2 && video.videoWidth) {
      const scale = Math.min(1, 800 / Math.max(video.videoWidth, video.videoHeight));
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const found = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "attemptBoth" });
      if (found && found.data) {
        if (sessionCodeIn(found.data)) {
          running = false;
          if (navigator.vibrate) navigator.vibrate(60);
          sessionStorage.setItem(PENDING, JSON.stringify({ code: found.data, kind: "qr" }));
          announce("Code found");
          go("#/confirm");
          return;
        }
        status.textContent = "That QR code isn't a Plugpay code. Scan the one on the charger's screen.";
      }
    }
    setTimeout(() => requestAnimationFrame(tick), 120);
  };
  tick();
}

function loadScript(src) {
  if (document.querySelector(`script[src="${src}"]`)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    document.head.append(h("script", { src, onload: resolve, onerror: () => reject(new Error("could not load " + src)) }));
  });
}

function landingPage(token) {
  // /s/{token} from any phone camera: the server redirected here with the token in the fragment.
  sessionStorage.setItem(PENDING, JSON.stringify({ code: decodeURIComponent(token), kind: "qr" }));
  history.replaceState(null, "", "#/confirm");
  if (needLogin()) return;
  go("#/confirm");
}

async function confirmPage() {
  setNav("charge");
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  if (!pending) return go("#/");
  const details = h("div", { class: "card stack", "aria-busy": "true" }, h("span", { class: "spinner", role: "img", "aria-label": "Loading" }));
  const message = h("div", { "aria-live": "assertive" });
  const start = h("button", { class: "block", id: "start", disabled: true }, "Start charging");
  const cancel = h("button", {
    class: "secondary block", onclick: async () => {
      busy(cancel, true);
      // Release the code: the charger's screen and connector are free for the next driver at once,
      // not after the code's minutes run out. Nothing to undo if it fails (the code expires anyway).
      await api("POST", "/sessions/codes/release", { json: { code: pending.code.trim() } }).catch(() => {});
      sessionStorage.removeItem(PENDING);
      go("#/");
    },
  }, "Cancel");
  const actions = h("div", { class: "stack main-action" }, start, cancel);
  page("Confirm and charge", details, message, actions);

  const account = await get("/billing/account").catch(() => null);
  const parts = [];
  // Either kind of code names its charger only through session-svc (the QR code is a short MAC'd
  // code, not readable claims): look it up (nothing is claimed) so the price shows first.
  let charger = pending.preview || null;
  if (!charger) {
    try {
      charger = await lookupCode(pending.code, message);
      put(message); // no "busy, retrying" left once it answered
    } catch (error) {
      // A code that names no charger has nothing to start: the reason, and a way back.
      put(details, h("p", { class: "muted" }, "Code"), h("p", { class: "big" }, pending.kind === "typed" ? pending.code.toUpperCase() : "QR code"));
      details.setAttribute("aria-busy", "false");
      put(message, problem(error, h("p", {}, h("a", { href: "#/" }, "Back to start"))));
      start.remove();
      sessionStorage.removeItem(PENDING);
      return;
    }
  }
  if (pending.kind === "typed") parts.push(h("p", { class: "muted" }, "Code ", h("strong", { id: "typed-code" }, pending.code.toUpperCase())));
  parts.push(h("p", { class: "muted" }, "Charger"), h("p", { class: "big", id: "station-name" }, charger.station_name || charger.station_id),
    h("p", {}, "Connector ", charger.connector_id));
  const nameAt = parts.length - 2;
  try {
    const quotePath = `/pricing/stations/${encodeURIComponent(charger.station_id)}/quote?connector=${charger.connector_id}` +
      (account ? `&budget_minor=${Math.max(0, account.available.amount_minor)}` : "");
    let quote;
    for (let tries = 0; ; tries++) {
      try { quote = await get(quotePath); break; } catch (error) { if (!(await waitIfBusy(error, message, tries))) throw error; }
    }
    put(message);
    parts[nameAt].textContent = quote.station_name;
    parts.push(h("div", { class: "alert info", id: "price" }, h("strong", {}, "Price"), h("p", { class: "price" }, quote.text),
      h("p", { class: "muted" }, `A typical session (${kwh(quote.example.energy_wh)}) costs about ${money(quote.example.total)}.`),
      quote.max_power_w ? h("p", { class: "muted" }, "Up to ", kw(quote.max_power_w), " · ", quote.power_type.replace(/_/g, " ")) : null));
    if (quote.access === "restricted") parts.push(h("p", { class: "muted" }, "This charger is for members only; we'll check your access."));
    if (!quote.in_service) parts.push(h("div", { class: "alert warn" }, "This charger is marked out of service."));
    if (quote.limits && !quote.limits.affordable) {
      // The wallet alone buys no charging here: with a card on file the card pays (billing's
      // rule), so say that; without one, say what to do. Idle fees only where there are any.
      const card = account && (account.payment_methods.find((m) => m.is_default) || account.payment_methods[0]);
      parts.push(card
        ? h("div", { class: "alert info", id: "budget-note" }, h("strong", {}, `Your card •••• ${card.last4} pays for this session.`),
          h("p", {}, "Your wallet balance does not cover charging here."))
        : h("div", { class: "alert warn", id: "budget-note" }, h("strong", {}, "Your balance is not enough to charge here."),
          h("p", {}, "Top up your wallet or add a card first."),
          quote.idle_per_minute && Number(quote.idle_per_minute) > 0 ? h("p", {}, "Idle fees after charging are not covered by the automatic stop.") : null));
    }
  } catch (error) {
    parts.push(problem(error));
  }
  if (account) {
    // Billing's rule (choose_funding): the card when preferred, else the wallet first and a card
    // on file beyond it (the automatic stop is not lowered to what the wallet holds).
    const card = account.payment_methods.find((m) => m.is_default) || account.payment_methods[0];
    parts.push(account.prefers_card && card
      ? h("p", { id: "who-pays" }, `Paid with your card •••• ${card.last4} (your choice over the wallet).`)
      : h("p", { id: "who-pays" }, "Paid from your wallet: ", h("strong", {}, money(account.available)), " available",
        card ? `; your card •••• ${card.last4} pays the rest` : ""));
  }
  put(details, ...parts);
  details.setAttribute("aria-busy", "false");
  start.disabled = false;
  start.addEventListener("click", async () => {
    busy(start, true);
    put(message, );
    try {
      const accepted = await scanWhenReady(pending.code, message);
      sessionStorage.removeItem(PENDING);
      announce("Code accepted");
      go("#/session/" + accepted.session_id);
    } catch (error) {
      put(message, problem(error, h("p", {}, h("a", { href: "#/" }, "Back to start"))));
      busy(start, false);
    }
  });
}

const TYPED_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY";

/** What a person typed as a six-character code (case, spaces and dashes forgiven), or null. */
function typedCode(raw) {
  const value = String(raw || "").toUpperCase().replace(/[^A-Z0-9]/g, "");
  return value.length === 6 && [...value].every((c) => TYPED_ALPHABET.includes(c)) ? value : null;
}

async function lookupCode(code, status) {
  // In the body, not the path: a code is a credential and paths end up in access logs. A code
  // just shown is accepted at once (session-svc waits for a typed one); only a busy refusal
  // (nothing done) is asked again, after its Retry-After, saying so in ``status``.
  let busyTries = 0;
  for (;;) {
    try {
      return await api("POST", "/sessions/codes/lookup", { json: { code: code.trim() } });
    } catch (error) {
      if (!(await waitIfBusy(error, status, busyTries++))) throw error;
    }
  }
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** After a 503 busy (the back office beyond capacity; nothing was done): shows "busy, retrying"
 * in ``status`` and waits the Retry-After; false for any other error, or after 30 tries. */
async function waitIfBusy(error, status, tries) {
  if (error.reason !== "busy" || tries >= 30) return false;
  if (status) put(status, h("p", { class: "muted", role: "status", id: "scan-busy" }, "Plugpay is busy, retrying…"));
  await pause(Math.min(Math.max(error.retryAfter ?? 1, 1), 30) * 1000);
  return true;
}

async function scanWhenReady(code, message) {
  // busy: the back office is beyond capacity and refused before doing anything (503 with
  // Retry-After), so asking again is safe; we wait as long as it says. Every other refusal is
  // final and shown as it is.
  let busyTries = 0;
  for (;;) {
    try {
      return await api("POST", "/sessions/scan", { json: { code } });
    } catch (error) {
      if (!(await waitIfBusy(error, message, busyTries++))) throw error;
    }
  }
}

// --- the live session -----------------------------------------------------------------------------

async function sessionPage(id) {
  setNav("charge");
  const body = h("div", { id: "session" });
  page("Your session", body);
  let current = await store.getSession(id);
  let receipt = null;
  let doc = null; // the billed receipt: its notes say what the driver must know (a cap, a review)
  let asked = false;
  const render = () => {
    if (current) put(body, ...sessionView(current, receipt, doc));
  };
  const fetchReceipt = () => {
    if (asked) return;
    asked = true;
    get(`/billing/receipts/${id}`).then((d) => { doc = d; render(); }, () => { asked = false; });
  };
  render();
  const controller = new AbortController();
  cleanup.push(() => controller.abort());
  let wasQuiet = false;
  const timer = setInterval(() => {
    const t = document.getElementById("elapsed");
    if (t && current) t.textContent = duration(elapsed(current));
    // A charger that stops reporting is said so as soon as it is noticed, not at the next update.
    const quiet = Boolean(current && chargerQuiet(current));
    if (quiet !== wasQuiet) { wasQuiet = quiet; render(); }
  }, 1000);
  cleanup.push(() => clearInterval(timer));
  let lastStatus = current && current.status;
  if (!current) put(body, h("p", { class: "big", id: "status", dataset: { status: "scanned" } }, STATUS_TEXT.scanned));
  // session-svc answers for the scan's winner at once (read-your-writes); a short retry on 404
  // only covers a reconnect to a replica that is briefly behind.
  for (let attempt = 0; ; attempt++) {
    try {
      await followSession(id, controller, body, (data) => {
        current = data;
        store.putSession(data);
        if (data.status !== lastStatus) { announce(STATUS_TEXT[data.status] || data.status); lastStatus = data.status; }
        if (data.status === "billed") fetchReceipt();
        render();
      }, (data) => { receipt = data; render(); });
      return;
    } catch (error) {
      if (error.status === 404 && attempt < 4 && !controller.signal.aborted) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (!current) put(body, problem(error));
      return;
    }
  }
}

async function followSession(id, controller, body, onSession, onReceipt) {
  {
    await stream(`/sessions/${id}/events`, (name, data) => {
      if (name === "session") onSession(data);
      else if (name === "receipt") onReceipt(data);
    }, { signal: controller.signal, onState: (state) => { body.dataset.stream = state; } });
    body.dataset.stream = "ended";
  }
}

function elapsed(x) {
  if (!x.started_at) return null;
  const end = x.charging_ended_at ? new Date(x.charging_ended_at) : new Date();
  return (end - new Date(x.started_at)) / 1000;
}

// Chargers that report meter values do so every 10 s to 5 min; silence longer than that from
// one that did report is "stopped reporting" (one that reports only at the end never is). The
// gateway ends a lost transaction from its last reading after its grace.
const QUIET_AFTER_MS = 6 * 60 * 1000;

function chargerQuiet(x) {
  if (x.status !== "charging" && x.status !== "stopping") return false;
  return Boolean(x.meter_sampled_at) && Date.now() - new Date(x.meter_sampled_at) > QUIET_AFTER_MS;
}

const LOST = {
  transaction_lost: "The charger lost this session (it restarted or reset), so it ended it without telling us. You pay only for the energy it last reported.",
  station_unreachable: "The charger stopped answering, so we ended the session. You pay only for the energy it last reported.",
};

function sessionView(x, receipt, doc) {
  const status = x.status;
  const terminal = !LIVE.has(status);
  const order = ["scanned", "authorised", "charging", "completed", "billed"];
  const reached = status === "denied" || status === "abandoned" || status === "expired" || status === "failed" ? -1
    : order.indexOf({ priced: "scanned", stopping: "charging", cost_calculated: "completed", code_issued: "" }[status] ?? status);
  const out = [
    h("p", { class: "muted" }, x.station_name || x.station_id || "", x.connector_id ? ` · connector ${x.connector_id}` : ""),
    h("p", { class: "big", id: "status", dataset: { status } }, STATUS_TEXT[status] || status),
    h("ol", { class: "steps", "aria-label": "Progress" }, order.map((step, i) => h("li", { class: i <= reached ? "done" : "", "aria-label": step + (i <= reached ? " done" : "") }))),
  ];
  if (status === "denied" || status === "abandoned" || status === "expired" || status === "failed") {
    const reason = (x.denial && x.denial.reason) || x.abandoned_reason || x.failure_reason || status;
    const { title, next } = explain(reason, x.denial && x.denial.message);
    // A guest has no account page to fix a card in: its way on is said below instead.
    out.push(h("div", { class: "alert error", role: "alert", id: "denial", dataset: { reason } }, h("strong", {}, title),
      auth.loggedIn || reason !== "payment_declined" ? h("p", {}, next) : null,
      reason === "payment_declined" && x.denial && x.denial.message ? h("p", { id: "denial-detail" }, x.denial.message) : null,
      x.hold_released ? h("p", {}, "The reserved ", money(x.hold_released), " is free again.") : null),
    auth.loggedIn ? h("div", { class: "stack" },
      reason === "insufficient_funds" || reason === "no_payment_method" || reason === "payment_declined"
        ? h("a", { class: "button block", href: "#/account" }, "Top up or add a card") : null,
      h("a", { class: "button secondary block", href: "#/scan" }, "Scan a new code"))
      : h("p", { id: "guest-next" }, "Choose “Pay with phone” on the charger for a new code, then pay with another card."));
    return out;
  }
  const cost = x.cost ? money(x.cost.total) : "—";
  const limit = x.limits ? [
    x.limits.max_cost ? money(x.limits.max_cost) : null,
    x.limits.max_energy_wh ? kwh(x.limits.max_energy_wh) : null,
    x.limits.max_duration_s ? duration(x.limits.max_duration_s) : null,
  ].filter(Boolean).join(" · ") : null;
  out.push(h("dl", { class: "stats", id: "stats" },
    stat("Energy", kwh(x.energy_wh), "energy"),
    stat("Power", x.status === "charging" ? kw(x.power_w) : "—", "power"),
    stat("Time", duration(elapsed(x)), "elapsed"),
    stat(x.cost && x.cost.final ? "Total cost" : "Cost so far", cost, "cost")));
  // A guest pays by its card's pre-authorisation alone; an account's wallet may have a card beyond it.
  const beyondWallet = x.funding === "wallet" && x.limits && x.limits.max_cost && x.hold_amount &&
    x.limits.max_cost.amount_minor > x.hold_amount.amount_minor;
  if (limit && !terminal) out.push(h("p", { class: "muted", id: "limit" }, "Stops automatically at ", limit,
    !auth.loggedIn ? " (what your card's pre-authorisation covers)."
      : beyondWallet ? " (your wallet pays first, your card the rest)." : " (what your balance covers)."));
  if (chargerQuiet(x)) {
    out.push(h("div", { class: "alert warn", id: "charger-quiet", role: "status" }, h("strong", {}, "The charger stopped reporting."),
      h("p", {}, "If it does not resume, we end the session and you pay only for the ", kwh(x.energy_wh || 0), " it last reported.")));
  }
  if (LOST[x.stop_reason]) out.push(h("p", { class: "alert info", id: "lost-transaction" }, LOST[x.stop_reason]));
  if (status === "charging" || status === "authorised") {
    const stop = h("button", { class: "danger block", id: "stop" }, "Stop charging");
    stop.addEventListener("click", async () => {
      busy(stop, true);
      try { await api("POST", `/sessions/${x.session_id}/stop`); announce("Stopping"); stop.textContent = "Stopping…"; } catch (error) {
        stop.after(problem(error));
        busy(stop, false);
      }
    });
    out.push(stop);
  }
  if (status === "billed") {
    const charged = (receipt && receipt.charged) || (x.receipt && x.receipt.charged);
    // Where the money came from, in the receipt's own split: a card payment never reads as a
    // wallet one ("Wallet balance now €0.00" after paying by card misled drivers).
    const split = doc && doc.funding_split;
    const walletPart = split ? split.wallet.amount_minor > 0 : true;
    out.push(h("div", { class: "alert info", id: "final" }, h("strong", {}, "Charged ", money(charged || (x.cost && x.cost.total))),
      split && split.wallet.amount_minor > 0 ? h("p", { id: "paid-wallet" }, money(split.wallet), " from your wallet") : null,
      split && split.card.amount_minor > 0 ? h("p", { id: "paid-card" }, money(split.card), " charged to your ", doc.card_label || "card") : null,
      walletPart && x.receipt && x.receipt.balance_after ? h("p", {}, "Wallet balance now ", money(x.receipt.balance_after)) : null,
      x.receipt && x.receipt.outstanding_debt && x.receipt.outstanding_debt.amount_minor > 0
        ? h("p", {}, "Still to pay: ", money(x.receipt.outstanding_debt), ". Top up to settle it.") : null,
      doc && doc.review === "pending" ? h("p", { id: "under-review" }, h("strong", {}, "Under review")) : null,
      ...(doc && doc.notes ? doc.notes.map((note) => h("p", { class: "receipt-note" }, note)) : [])),
    h("a", { class: "button block", href: "#/receipt/" + x.session_id }, "View receipt"),
    h("p", {}, h("a", { href: "#/" }, "Done")));
  }
  if (status === "completed" || status === "cost_calculated") out.push(h("p", { class: "muted" }, "Unplug when you're ready. The receipt follows in a moment."));
  return out;
}

const stat = (label, value, id) => h("div", { class: "stat" }, h("dt", {}, label), h("dd", { id }, value));

// --- receipts, history --------------------------------------------------------------------------

async function receiptPage(id) {
  setNav("history");
  const box = h("div", { class: "card" }, h("span", { class: "spinner", role: "img", "aria-label": "Loading" }));
  page("Receipt", box);
  let doc = null, offline = false;
  try {
    doc = await get(`/billing/receipts/${id}`);
    await store.putReceipt(doc);
  } catch (error) {
    const saved = await store.getReceipt(id);
    if (saved && error.reason === "offline") { doc = saved; offline = true; } else { put(box, problem(error)); return; }
  }
  const file = async (format, button) => {
    busy(button, true);
    try {
      const res = await raw(`/billing/receipts/${id}?format=${format}`, { headers: { Accept: format === "pdf" ? "application/pdf" : "text/html" } });
      download(await res.blob(), `plugpay-receipt-${id.slice(0, 8)}.${format}`);
    } catch (error) { button.after(problem(error)); } finally { busy(button, false); }
  };
  const pdf = h("button", { id: "receipt-pdf", onclick: () => file("pdf", pdf) }, "Download PDF");
  const html = h("button", { class: "secondary", id: "receipt-html", onclick: () => file("html", html) }, "Download HTML");
  put(box, 
    offline ? h("p", { class: "alert warn" }, "Offline: this is the copy saved on your phone.") : null,
    // An invoice a driver can hand to an employer: who sold, where, when (the station's local
    // time, as printed on the PDF), and what — older receipts lack some of it.
    h("p", { class: "muted", id: "invoice-number" }, doc.invoice_number ? ["Invoice ", h("strong", {}, doc.invoice_number)] : ["Receipt ", doc.receipt_id.slice(0, 8)],
      " · ", (doc.local_time && doc.local_time.issued) || when(doc.issued_at)),
    doc.seller && doc.seller.legal_name ? h("p", { id: "seller" }, doc.seller.legal_name,
      doc.seller.address ? h("br") : null, doc.seller.address || "", doc.seller.vat_id ? ` · VAT ID ${doc.seller.vat_id}` : "") : null,
    h("p", {}, "Charger ", (doc.station && doc.station.name) || doc.station_id, (doc.station && doc.station.address) ? `, ${doc.station.address}` : "", " · ", kwh(doc.energy_wh)),
    h("p", { class: "muted", id: "receipt-times" },
      (doc.local_time && doc.local_time.started) || when(doc.started_at), " – ", (doc.local_time && doc.local_time.ended) || when(doc.ended_at),
      doc.durations ? ` · charging ${doc.durations.charging}` + (doc.durations.idle_s ? `, parked ${doc.durations.idle}` : "") : ""),
    h("table", {},
      h("caption", { class: "sr-only" }, "Cost breakdown"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Item"), h("th", { scope: "col" }, "Quantity"), h("th", { scope: "col" }, "VAT"), h("th", { scope: "col", class: "num" }, "Amount"))),
      h("tbody", {}, doc.lines.map((l) => h("tr", {}, h("td", {}, l.description, l.unit_price_excl_vat ? h("small", { class: "muted sub" }, l.unit_price_excl_vat, " excl. VAT") : null),
        h("td", {}, l.quantity), h("td", {}, l.vat_percent != null ? `${Number(l.vat_percent)} %` : ""), h("td", { class: "num" }, l.amount_incl_vat.text)))),
      h("tfoot", {},
        h("tr", {}, h("th", { scope: "row", colspan: "3" }, "VAT included"), h("td", { class: "num" }, doc.total_vat.text)),
        h("tr", {}, h("th", { scope: "row", colspan: "3" }, "Total"), h("td", { class: "num", id: "receipt-total" }, h("strong", {}, doc.total_incl_vat.text))))),
    h("p", {}, "Paid: ", doc.charged.text, doc.payment_method ? ` (${doc.payment_method})` : doc.funding ? ` (${doc.funding})` : ""),
    doc.refunds && doc.refunds.length
      ? h("ul", { id: "refunds" }, doc.refunds.map((r) => h("li", {}, "Refunded ", r.amount.text, r.destination === "card" ? " to your card" : " to your wallet",
        r.reason ? ` — ${r.reason}` : "", r.credit_note_number ? ` (credit note ${r.credit_note_number})` : "")))
      : doc.refunded.amount_minor ? h("p", {}, "Refunded: ", doc.refunded.text) : null,
    doc.outstanding_debt.amount_minor ? h("p", {}, "Still to pay: ", doc.outstanding_debt.text) : null,
    (doc.notes || []).map((note) => h("p", { class: "receipt-note" }, note)),
    h("div", { class: "row" }, pdf, html));
  if (!offline) box.after(invoiceMailForm(id, { problem, busy }));
}

async function syncSessions() {
  const page = await get("/sessions?scope=mine&limit=30");
  await store.putSessions(page.items);
  await store.set("sessions_synced", true);
  return page.items;
}

async function historyPage() {
  setNav("history");
  const list = h("ul", { class: "list", id: "history" });
  const note = h("div", { "aria-live": "polite" });
  page("History", note, h("div", { class: "card" }, list));
  const show = (items) => put(list, ...(items.length ? items.map((x) => h("li", {},
    h("a", { href: (x.status === "billed" ? "#/receipt/" : "#/session/") + x.session_id, class: "row between" },
      h("span", {}, h("strong", {}, x.station_name || x.station_id || "Charger"), h("br"),
        h("span", { class: "muted" }, when(x.session_started_at || x.scanned_at), " · ", kwh(x.energy_wh))),
      h("span", {}, x.cost ? money(x.cost.total) : "", " ", badge(x.status))))) : [h("li", { class: "muted" }, "No charging sessions yet.")]));
  show(await store.sessions());
  try {
    show(await syncSessions());
  } catch (error) {
    if (error.reason === "offline") put(note, h("p", { class: "alert warn" }, "Offline: showing the sessions saved on your phone."));
    else put(note, problem(error));
  }
}

function badge(status) {
  const kind = status === "billed" ? "ok" : LIVE.has(status) ? "busy" : "bad";
  const text = { billed: "Paid", charging: "Charging", denied: "Denied", abandoned: "Cancelled", expired: "Expired", failed: "Failed" }[status] || status.replace(/_/g, " ");
  return h("span", { class: "badge " + kind }, text);
}

// --- account ----------------------------------------------------------------------------------------

async function accountPage() {
  setNav("account");
  const box = h("div");
  page("Account", box);
  let account = null, offline = false;
  try {
    account = await get("/billing/account");
    await store.set("account", account);
  } catch (error) {
    if (error.reason !== "offline") { put(box, problem(error)); return; }
    account = await store.value("account");
    offline = true;
  }
  const user = await whoAmI().catch(() => null);
  if (!account) { put(box, problem({ reason: "offline" })); return; }
  const methods = account.payment_methods;
  const cur = account.currency;
  const methodOptions = () => methods.map((m) => h("option", { value: m.id, selected: m.is_default }, `${m.brand.toUpperCase()} •••• ${m.last4}${m.is_default ? " (default)" : ""}`));

  // Top up.
  const amount = h("select", { id: "topup-amount" }, [1000, 2000, 5000, 10000].map((v) => h("option", { value: v, selected: v === 2000 }, money(v, cur))));
  const topupMethod = h("select", { id: "topup-method" }, methodOptions());
  const topupMessage = h("div", { "aria-live": "polite" });
  const topupButton = h("button", { type: "submit", class: "block", id: "topup" }, "Top up");
  let topupKey = crypto.randomUUID();
  const topup = h("form", {
    class: "card", "aria-labelledby": "topup-h", onsubmit: async (e) => {
      e.preventDefault();
      busy(topupButton, true);
      try {
        const result = await api("POST", "/billing/topups", {
          json: { amount: { amount_minor: Number(amount.value), currency: cur }, payment_method_id: topupMethod.value || null },
          idempotent: topupKey,
        });
        topupKey = crypto.randomUUID();
        announce("Topped up");
        put(topupMessage, h("div", { class: "alert info", role: "status" }, "Added ", money(result.amount), ". New balance: ", money(result.balance_after)));
        // The balance card shows the new balance at once; the rest (a debt settled) follows.
        const shown = document.getElementById("balance");
        if (shown) shown.textContent = money(result.balance_after);
        get("/billing/account").then((fresh) => store.set("account", fresh)).catch(() => {});
      } catch (error) {
        if (error.status && error.status < 500) topupKey = crypto.randomUUID();
        // A declined card is advice about cards, not "top up your wallet".
        put(topupMessage, problem(error.body && error.body.failure_reason ? { reason: "topup_declined" } : error));
      } finally { busy(topupButton, false); }
    },
  }, h("h2", { id: "topup-h" }, "Top up"), methods.length
    ? [field("Amount", amount), field("Pay with", topupMethod), topupButton]
    : h("p", {}, "Add a card below to top up."), topupMessage);

  // Auto top-up.
  const auto = account.auto_topup;
  const autoOn = h("input", { type: "checkbox", id: "auto-enabled", checked: auto.enabled });
  const threshold = h("input", { id: "auto-threshold", inputmode: "decimal", value: ((auto.threshold.amount_minor || 500) / 100).toFixed(2) });
  const autoAmount = h("input", { id: "auto-amount", inputmode: "decimal", value: ((auto.amount.amount_minor || 2000) / 100).toFixed(2) });
  const autoMethod = h("select", { id: "auto-method" }, methodOptions());
  if (auto.payment_method_id) autoMethod.value = auto.payment_method_id;
  const autoMessage = h("div", { "aria-live": "polite" });
  const autoButton = h("button", { type: "submit", class: "secondary block", id: "auto-save" }, "Save auto top-up");
  const autoForm = h("form", {
    class: "card", "aria-labelledby": "auto-h", onsubmit: async (e) => {
      e.preventDefault();
      const t = toMinor(threshold.value), a = toMinor(autoAmount.value);
      if (t === null || a === null || t < 0 || a <= 0) { put(autoMessage, problem({ reason: "invalid_amount" })); return; }
      busy(autoButton, true);
      try {
        await api("PUT", "/billing/auto-topup", { json: {
          enabled: autoOn.checked, threshold: { amount_minor: t, currency: cur }, amount: { amount_minor: a, currency: cur },
          payment_method_id: autoMethod.value || null,
        } });
        announce("Auto top-up saved");
        put(autoMessage, h("div", { class: "alert info", role: "status" }, autoOn.checked
          ? `Saved: when your balance falls below ${money(t, cur)}, we add ${money(a, cur)}.` : "Saved: auto top-up is off."));
      } catch (error) { put(autoMessage, problem(error)); } finally { busy(autoButton, false); }
    },
  }, h("h2", { id: "auto-h" }, "Auto top-up"),
  h("p", { class: "muted" }, "Never get stuck at a charger: we top up from your card when the balance runs low."),
  h("div", { class: "check" }, autoOn, h("label", { for: "auto-enabled" }, "Top up automatically")),
  h("div", { class: "grid2" }, field("When below (" + cur + ")", threshold), field("Add (" + cur + ")", autoAmount)),
  methods.length ? field("From card", autoMethod) : null, autoButton, autoMessage);

  // Payment methods.
  const methodsBox = h("section", { class: "card", "aria-labelledby": "pm-h" }, h("h2", { id: "pm-h" }, "Payment methods"),
    h("ul", { class: "list", id: "methods" }, methods.length ? methods.map((m) => h("li", { class: "row between" },
      h("span", {}, `${m.brand.toUpperCase()} •••• ${m.last4}`, h("br"), h("span", { class: "muted" }, `expires ${m.exp_month}/${m.exp_year}`), m.is_default ? [" ", h("span", { class: "badge ok" }, "Default")] : null),
      h("span", { class: "row" },
        m.is_default ? null : h("button", { class: "link", onclick: async () => { await api("PUT", `/billing/payment-methods/${m.id}/default`); accountPage(); } }, "Make default", h("span", { class: "sr-only" }, ` ${m.brand} ${m.last4}`)),
        h("button", { class: "link", onclick: async () => { if (confirm(`Remove the card ending ${m.last4}?`)) { await api("DELETE", `/billing/payment-methods/${m.id}`); accountPage(); } } }, "Remove", h("span", { class: "sr-only" }, ` ${m.brand} ${m.last4}`))))) : h("li", { class: "muted" }, "No card yet.")),
    addCardForm());

  put(box, 
    offline ? h("p", { class: "alert warn" }, "Offline: your account as last synchronised.") : null,
    h("section", { class: "card", "aria-labelledby": "bal-h" }, h("h2", { id: "bal-h", class: "sr-only" }, "Balance"),
      h("p", { class: "muted" }, "Wallet balance"), h("p", { class: "big", id: "balance" }, money(account.balance)),
      account.held.amount_minor ? h("p", { class: "muted" }, money(account.held), " reserved for a session in progress · ", money(account.available), " available") : null,
      account.debt.amount_minor ? h("p", { class: "alert warn" }, "You owe ", money(account.debt), " from an earlier session. A top-up settles it.") : null),
    offline ? null : [topup, autoForm, methodsBox, mailPreferences()],
    h("section", { class: "card" }, h("p", {}, "Logged in as ", h("strong", {}, user ? user.email : "…")),
      h("div", { class: "row" }, h("a", { class: "button secondary", href: "#/history" }, "History and receipts"),
        h("button", { class: "secondary", id: "logout", onclick: async () => { await logout(); await store.clear(); me = null; announce("Logged out"); go("#/login"); } }, "Log out"))));
}

// Receipt mails can be switched off; security and money mails (top-ups, refunds) always come.
function mailPreferences() {
  const receipts = h("input", { type: "checkbox", id: "receipt-mails", disabled: true });
  const status = h("div", { "aria-live": "polite" });
  get("/notifications/preferences").then((p) => { receipts.checked = p.receipts; receipts.disabled = false; })
    .catch((error) => put(status, problem(error)));
  receipts.addEventListener("change", async () => {
    receipts.disabled = true;
    try {
      const p = await api("PUT", "/notifications/preferences", { json: { receipts: receipts.checked } });
      receipts.checked = p.receipts;
      announce(p.receipts ? "Receipt mails on" : "Receipt mails off");
    } catch (error) { receipts.checked = !receipts.checked; put(status, problem(error)); } finally { receipts.disabled = false; }
  });
  return h("section", { class: "card", "aria-labelledby": "mail-h" }, h("h2", { id: "mail-h" }, "Notifications"),
    h("label", { class: "row" }, receipts, " E-mail me a receipt after each charging session"),
    h("p", { class: "muted" }, "Password, top-up and refund mails are always sent."), status);
}

function addCardForm() {
  // The card is typed into the payment processor's form (shared/card.js): only its token
  // (pm_...) is sent to billing; the card number never reaches Plugpay.
  const message = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "secondary" }, "Add card");
  const slot = h("div", {}, h("span", { class: "spinner", role: "img", "aria-label": "Loading the card form" }));
  let card = null;
  const ready = cardEntry("card").then((entry) => { card = entry; slot.replaceWith(entry.node); })
    .catch((error) => put(slot, problem(error)));
  return h("form", {
    novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      await ready;
      if (!card) return;
      busy(button, true);
      put(message, );
      let entered;
      try {
        entered = await card.tokenise();
      } catch (error) {
        // Mistyped: the form says what to correct, beside the field.
        if (error.status !== 422) put(message, problem(error));
        busy(button, false);
        return;
      }
      try {
        await api("POST", "/billing/payment-methods", { json: { token: entered.token }, idempotent: true });
        announce("Card added");
        accountPage();
      } catch (error) { put(message, problem(error)); busy(button, false); }
    },
  }, h("h3", {}, "Add a card"), slot, button, message);
}

// --- find a charger ---------------------------------------------------------------------------------

const AVAILABILITY = {
  Available: ["ok", "Available"], Occupied: ["busy", "Occupied"], Charging: ["busy", "Charging"],
  Faulted: ["bad", "Out of order"], Unavailable: ["bad", "Unavailable"], Offline: ["bad", "Offline"],
};
const POWER_TYPE = { AC_1_PHASE: "AC", AC_3_PHASE: "AC", DC: "DC" };

async function findPage() {
  setNav("find");
  const list = h("ul", { class: "list", id: "stations", "aria-label": "Chargers" });
  const map = h("div");
  const note = h("div", { "aria-live": "polite" });
  const updated = h("p", { class: "muted", id: "updated", role: "status" });
  page("Find a charger", note, map, h("div", { class: "card" }, list), updated,
    auth.loggedIn ? null : h("p", {}, h("a", { href: "#/login" }, "Log in"), " or ", h("a", { href: "#/register" }, "create an account"), " to pay with your phone."));
  const here = await new Promise((resolve) => {
    if (!navigator.geolocation) return resolve(null);
    navigator.geolocation.getCurrentPosition((p) => resolve(p.coords), () => resolve(null), { timeout: 3000, maximumAge: 600000 });
  });
  const query = here ? `?lat=${here.latitude.toFixed(5)}&lon=${here.longitude.toFixed(5)}` : "";
  let shown = false;
  const load = async () => {
    let stations;
    try {
      // Revalidate every time (ETag → 304 when nothing changed): availability is live.
      stations = (await (await raw("/pricing/stations/public" + query, { cache: "no-cache" })).json()).items;
      await store.set("stations", stations);
      put(note);
      updated.textContent = "Live availability · updated " + new Date().toLocaleTimeString();
    } catch (error) {
      if (shown && error.reason === "offline") { put(note, h("p", { class: "alert warn" }, "Offline: chargers as last seen.")); return; }
      stations = await store.value("stations");
      if (!stations) {
        put(note, problem(error, h("p", {}, "Scan the code on any Plugpay charger to see its price.")));
        return;
      }
      put(note, h("p", { class: "alert warn" }, "Offline: chargers as last seen."));
    }
    shown = true;
    if (!stations.length) {
      put(map);
      put(list, h("li", { class: "muted" }, "No charger in service yet."));
      return;
    }
    put(map, stationMap(stations, here));
    put(list, ...stations.map(stationItem));
  };
  await load();
  // Availability is live: refresh while the page is open (the API answers 304 when unchanged).
  const timer = setInterval(() => { if (!document.hidden) load(); }, 5000);
  cleanup.push(() => clearInterval(timer));
}

function stationItem(st) {
  const connectors = st.connectors || [];
  const free = connectors.filter((c) => c.status === "Available").length;
  const distance = st.distance_km == null ? "" : ` · ${st.distance_km < 1 ? Math.round(st.distance_km * 1000) + " m" : st.distance_km.toFixed(1) + " km"}`;
  const [kind, label] = !st.online ? ["bad", "Offline"] : [free ? "ok" : "busy", `${free} of ${connectors.length} free`];
  const prices = st.price_text ? [h("p", { class: "price" }, st.price_text)] : [];
  return h("li", { dataset: { station: st.station_id } },
    h("div", { class: "row between" }, h("h2", { class: "station-name" }, st.name),
      h("span", { class: "badge " + kind, dataset: { free } }, label)),
    h("p", { class: "muted" }, st.address || "", distance, st.access === "restricted" ? " · members only" : ""),
    // The phone's maps app takes over the route (a universal link: app on Android and iOS).
    st.latitude != null && st.longitude != null
      ? h("p", {}, h("a", { class: "directions", href: `https://www.google.com/maps/dir/?api=1&destination=${st.latitude},${st.longitude}`, target: "_blank", rel: "noopener" }, "Directions"))
      : null,
    prices,
    h("ul", { class: "connectors-list" }, connectors.map((c) => {
      const [ckind, clabel] = AVAILABILITY[c.status] || ["bad", c.status];
      return h("li", { class: "row between", dataset: { connector: c.connector_id, status: c.status } },
        h("span", {}, `Connector ${c.connector_id} · ${POWER_TYPE[c.power_type] || c.power_type} ${kw(c.max_power_w)}`),
        " ", h("span", { class: "badge " + ckind }, clabel),
        !st.price_text && c.price ? h("p", { class: "price" }, c.price.text) : null);
    })));
}

function pinColour(st) {
  if (!st.online) return "#6b7280";
  return (st.connectors || []).some((c) => c.status === "Available") ? "#0b6b3a" : "#b45309";
}

function stationMap(stations, here) {
  // A schematic map: no tiles to download, so it also works offline.
  const points = stations.filter((st) => st.latitude != null).map((st) => [st.longitude, st.latitude, st]);
  if (here) points.push([here.longitude, here.latitude, null]);
  if (!points.length) return h("span");
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => 30 + ((x - x0) / (x1 - x0 || 1)) * 260, sy = (y) => 170 - ((y - y0) / (y1 - y0 || 1)) * 140;
  // Chargers at one spot (a car park, a motorway stop) share one pin and one label, or their
  // labels would be written over each other.
  const pins = [];
  for (const [x, y, st] of points) {
    if (!st) continue;
    const near = pins.find((p) => Math.hypot(p.x - sx(x), p.y - sy(y)) < 16);
    if (near) near.stations.push(st); else pins.push({ x: sx(x), y: sy(y), stations: [st] });
  }
  const best = (group) => group.map(pinColour).find((c) => c === "#0b6b3a") || pinColour(group[0]);
  const label = (group) => group.length === 1 ? group[0].name.replace(/^Demo /, "") : `${group.length} chargers`;
  return s("svg", { viewBox: "0 0 320 200", class: "map", role: "img", "aria-label": "Map of the chargers listed below" },
    pins.map((pin) => s("g", { "data-pin": pin.stations.map((st) => st.station_id).join(" ") },
      s("circle", { cx: pin.x, cy: pin.y, r: 9, fill: best(pin.stations) }),
      // Labels right of the pin, or left of it in the right half (so they stay on the map).
      s("text", { x: pin.x + (pin.x > 160 ? -12 : 12), y: pin.y + 4, "text-anchor": pin.x > 160 ? "end" : "start", "font-size": 11, fill: "#111827" }, label(pin.stations)))),
    here ? s("circle", { cx: sx(here.longitude), cy: sy(here.latitude), r: 6, fill: "#1d4ed8" }) : null);
}

// --- icons, router, start-up ------------------------------------------------------------------------

function icon(name) {
  const paths = {
    camera: "M4 7h3l2-3h6l2 3h3v12H4z M12 17a4 4 0 1 0 0-8 4 4 0 0 0 0 8z",
  };
  return s("svg", { viewBox: "0 0 24 24", width: 22, height: 22, "aria-hidden": "true", fill: "none", stroke: "currentColor", "stroke-width": 2 }, s("path", { d: paths[name] }));
}

async function syncAll() {
  if (!auth.loggedIn || !navigator.onLine) return;
  try {
    const account = await get("/billing/account");
    await store.set("account", account);
    const items = await syncSessions();
    // Receipts of the recent paid sessions, so they open offline.
    for (const x of items.filter((i) => i.status === "billed").slice(0, 10)) {
      if (!(await store.getReceipt(x.session_id))) await store.putReceipt(await get(`/billing/receipts/${x.session_id}`));
    }
  } catch { /* next time */ }
}

async function route() {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  const hash = location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter(Boolean);
  const [head, arg] = parts;
  try {
    if (head === "s" && arg) return landingPage(parts.slice(1).join("/"));
    if (head === "login") return loginPage();
    if (head === "register") return registerPage();
    if (head === "verify" && arg) return await verifyPage(arg);
    if (head === "reset" && arg) return resetPage(arg);
    if (head === "reset" || head === "forgot") return forgotPage();
    // Finding a charger needs no account: prices and public chargers are public information.
    if (head === "find" && !auth.loggedIn) return await findPage();
    // A guest (no account) pays for one code and follows that one session and its receipt.
    if (head === "guest") return auth.loggedIn ? go("#/confirm") : await guestCheckoutPage({ page, problem, busy, go, lookupCode });
    // The scanner needs no account either: a code it reads leads, like the QR's link, to
    // "Log in" beside "Pay by card" (the confirm page asks to log in first).
    if (head === "scan" && !auth.loggedIn) return await scanPage();
    if (!auth.loggedIn && guest.token && head === "session" && arg) return await sessionPage(arg);
    if (!auth.loggedIn && guest.token && head === "receipt" && arg) return await receiptPage(arg);
    if (needLogin()) return;
    whoAmI().catch(() => {});
    if (head === "invitations" && arg) return await invitationPage(arg);
    if (head === "scan") return await scanPage();
    if (head === "confirm") return await confirmPage();
    if (head === "session" && arg) return await sessionPage(arg);
    if (head === "receipt" && arg) return await receiptPage(arg);
    if (head === "history") return await historyPage();
    if (head === "account") return await accountPage();
    if (head === "find") return await findPage();
    return await homePage();
  } catch (error) {
    put(view, problem(error));
  }
}

function onlineBanner() {
  document.getElementById("offline").hidden = navigator.onLine;
  if (navigator.onLine) syncAll();
}

window.addEventListener("hashchange", route);
window.addEventListener("online", onlineBanner);
window.addEventListener("offline", onlineBanner);
onlineBanner();
if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(() => {});
route();
