// Plugpay's operator portal: stations, sessions, tariffs, revenue, refunds, reviews — one organisation's.
import { api, auth, get, login, logout, raw, ApiError } from "./shared/api.js";
import { announce, download, field, focusHeading, h, put, s } from "./shared/dom.js";
import { kw, kwh, money, toMinor, when } from "./shared/format.js";
import { explain } from "./shared/reasons.js";

const view = document.getElementById("view");
let me = null;
let timers = [];
auth.onLogout = () => { me = null; go("#/login"); };

const go = (hash) => (location.hash === hash ? route() : (location.hash = hash));

function page(title, ...children) {
  document.title = title + " · Plugpay operators";
  put(view, h("h1", {}, title), ...children.flat(Infinity).filter((c) => c != null && c !== false));
  focusHeading(view);
}

// The portal's own refusals (the shared list speaks to drivers).
const OPS_REASONS = {
  refund_exceeds_charged: "That is more than can still be refunded.",
  refund_failed: "The card processor refused the refund.",
  refund_pending: "The refund is still at the card processor.",
  currency_mismatch: "A refund is in the session's currency.",
  invalid_period: "The period is not valid.",
};

function problem(error) {
  const reason = error instanceof ApiError ? error.reason : (error && error.reason) || "internal_error";
  if (OPS_REASONS[reason]) {
    return h("div", { class: "alert error", role: "alert", dataset: { reason } }, h("strong", {}, OPS_REASONS[reason]), h("p", {}, (error && error.message) || "Please try again."));
  }
  const { title, next } = explain(reason, error && error.message);
  return h("div", { class: "alert error", role: "alert", dataset: { reason } }, h("strong", {}, title), h("p", {}, next));
}

function setNav(tab) {
  const nav = document.querySelector("nav.opsnav");
  nav.hidden = !me;
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.tab === tab) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.getElementById("logout").hidden = !me;
  document.getElementById("who").textContent = me ? me.email : "";
}

// --- log in: operators only ----------------------------------------------------------------------

function loginPage(message) {
  setNav(null);
  const email = h("input", { type: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", autocomplete: "current-password", required: true });
  const out = h("div", { "aria-live": "polite" }, message || null);
  const submit = h("button", { type: "submit" }, "Log in");
  page("Operator portal",
    h("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      try {
        await login(email.value.trim(), password.value);
        me = null;
        if (await operator()) go("#/"); else loginPage(notOperator());
      } catch (error) { put(out, problem(error)); } finally { submit.disabled = false; }
    } }, field("E-mail", email), field("Password", password), submit, out));
}

const notOperator = () => h("div", { class: "alert error", role: "alert", id: "refused" },
  h("strong", {}, "This portal is for charge point operators."),
  h("p", {}, "Drivers manage their account in the ", h("a", { href: "/app/" }, "Plugpay app"), "."));

async function operator() {
  if (!auth.loggedIn) return null;
  if (!me) me = await get("/auth/me");
  if (!me.roles.includes("operator") && !me.roles.includes("admin")) {
    await logout();
    me = null;
    return null;
  }
  return me;
}

// --- stations ---------------------------------------------------------------------------------------

// OCPP connector statuses (1.6 and 2.0.1) as the portal shows them.
const CONNECTOR_BADGE = {
  Available: "ok", Preparing: "busy", Charging: "busy", SuspendedEV: "busy", SuspendedEVSE: "busy",
  Finishing: "busy", Reserved: "busy", Occupied: "busy", Faulted: "bad", Unavailable: "bad", Unknown: "",
};
const SESSION_TEXT = { code_issued: "code shown", authorized: "authorised", starting: "starting", charging: "charging" };

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return when(iso);
}

async function stationsPage() {
  setNav("stations");
  const box = h("div", { id: "stations" });
  const stamp = h("p", { class: "muted", role: "status", id: "updated" }, "Live: refreshed every 5 seconds.");
  const legend = h("details", { class: "card", id: "badge-help" }, h("summary", {}, "What the badges mean"),
    h("dl", { class: "facts" },
      h("dt", {}, h("span", { class: "badge ok" }, "Online"), " / ", h("span", { class: "badge bad" }, "Offline")), h("dd", {}, "Whether the charger is connected to Plugpay right now. Offline chargers cannot start a session."),
      h("dt", {}, h("span", { class: "badge ok" }, "In service"), " / ", h("span", { class: "badge bad" }, "Out of service")), h("dd", {}, "Whether you offer the station to drivers (its tariff and access, set by you). A station can be in service and offline: drivers then see it as offline."),
      h("dt", {}, h("span", { class: "badge bad" }, "No tariff")), h("dd", {}, "No price is set yet, so drivers cannot pay there.")));
  page("Stations", stamp, legend, box);
  const refresh = async () => {
    const [stations, live] = await Promise.all([get("/pricing/stations"), get("/stations")]);
    const byId = Object.fromEntries(live.items.map((x) => [x.station_id, x]));
    stamp.textContent = "Live: refreshed every 5 seconds · " + new Date().toLocaleTimeString();
    put(box, ...stations.items.map((st) => {
      const now = byId[st.station_id];
      const online = now && now.online;
      const connectors = new Map(((now && now.connectors) || []).map((c) => [c.connector_id, c]));
      return h("section", { class: "card", "aria-labelledby": "st-" + st.station_id, dataset: { station: st.station_id, online: online ? "true" : "false" } },
        h("div", { class: "row between" },
          h("h2", { id: "st-" + st.station_id }, h("a", { href: "#/stations/" + encodeURIComponent(st.station_id) }, st.name)),
          h("span", { class: "row" },
            h("span", { class: "badge " + (online ? "ok" : "bad"), dataset: { presence: "" }, title: online ? "Connected to Plugpay now" : "Not connected to Plugpay now: no session can start" }, online ? "Online" : "Offline"),
            h("span", { class: "badge " + (st.commercials && st.commercials.status === "active" ? "ok" : "bad"), dataset: { service: "" }, title: st.commercials ? (st.commercials.status === "active" ? "Offered to drivers" : "Not offered to drivers") : "No price set" }, st.commercials ? (st.commercials.status === "active" ? "In service" : "Out of service") : "No tariff"))),
        h("p", { class: "muted" }, st.station_id, " · ", st.power_class, st.commercials ? ` · tariff ${st.commercials.tariff_key} · ${st.commercials.access_policy.kind}` : "",
          " · last heard ", ago(now && now.last_seen_at), now && now.ocpp_version ? ` · OCPP ${now.ocpp_version}` : "",
          now && now.station_status && now.station_status !== "Available" ? ` · station ${now.station_status}` : ""),
        h("div", { class: "connectors" }, st.connectors.map((c) => {
          const live = connectors.get(c.connector_id);
          const status = live ? live.status : "Unknown";
          const x = live && live.session;
          return h("div", { class: "connector", dataset: { connector: c.connector_id, status } },
            h("strong", {}, "Connector ", c.connector_id), " ",
            h("span", { class: "badge " + (online ? CONNECTOR_BADGE[status] ?? "bad" : ""), title: live && live.error_code ? "Error " + live.error_code : null }, online ? status : status + " (offline)"),
            h("p", { class: "muted" }, kw(c.max_power_w), " · ", c.standard.replace(/_/g, " ")),
            live && live.error_code ? h("p", { class: "muted" }, "Error: ", live.error_code) : null,
            x ? h("p", { class: "session", dataset: { session: x.session_id } }, h("a", { href: "#/session/" + x.session_id }, "Session"), " ", SESSION_TEXT[x.state] || x.state,
              x.energy_wh != null ? " · " + kwh(x.energy_wh) : "",
              x.cost_so_far_minor != null ? " · " + money(x.cost_so_far_minor, x.currency) : "") : null);
        })));
    }));
  };
  await refresh().catch((error) => put(box, problem(error)));
  timers.push(setInterval(() => refresh().catch(() => {}), 5000));
}

async function stationPage(id) {
  setNav("stations");
  const box = h("div");
  page("Station " + id, box);
  try {
    const [st, now] = await Promise.all([get(`/pricing/stations/${encodeURIComponent(id)}`), get(`/stations/${encodeURIComponent(id)}/status`)]);
    const quotes = await Promise.all(st.connectors.map((c) => get(`/pricing/stations/${encodeURIComponent(id)}/quote?connector=${c.connector_id}`).catch(() => null)));
    put(box, h("div", { class: "card", id: "live-status" }, h("h2", {}, "Now"),
      h("p", {}, h("span", { class: "badge " + (now.online ? "ok" : "bad") }, now.online ? "Online" : "Offline"),
        " last heard ", ago(now.last_seen_at), now.connected_at ? ` · connected ${when(now.connected_at)}` : "",
        now.ocpp_version ? ` · OCPP ${now.ocpp_version}` : ""),
      now.vendor ? h("p", { class: "muted" }, `${now.vendor} ${now.model || ""}`, now.firmware_version ? ` · firmware ${now.firmware_version}` : "", now.booted_at ? ` · booted ${when(now.booted_at)}` : "") : null,
      h("ul", { class: "list" }, now.connectors.map((c) => h("li", { dataset: { connector: c.connector_id, status: c.status } },
        h("strong", {}, "Connector ", c.connector_id), " ", h("span", { class: "badge " + (now.online ? CONNECTOR_BADGE[c.status] ?? "bad" : "") }, c.status),
        c.status_since ? h("span", { class: "muted" }, " since ", when(c.status_since)) : null,
        c.error_code ? h("span", { class: "muted" }, " · error ", c.error_code) : null,
        c.session ? h("p", { class: "session" }, "Session ", SESSION_TEXT[c.session.state] || c.session.state,
          c.session.energy_wh != null ? " · " + kwh(c.session.energy_wh) : "",
          c.session.cost_so_far_minor != null ? " · " + money(c.session.cost_so_far_minor, c.session.currency) : "") : null)))),
    h("div", { class: "card" }, h("h2", {}, st.name),
      h("p", {}, "Time zone ", st.commercials ? st.commercials.time_zone : "—", " · access ", st.commercials ? st.commercials.access_policy.kind : "—"),
      h("ul", { class: "list" }, st.connectors.map((c, i) => h("li", {}, h("strong", {}, "Connector ", c.connector_id), " · ", kw(c.max_power_w), " · tariff ", c.tariff_key || "—",
        quotes[i] ? h("p", { class: "price" }, quotes[i].text) : null)))),
    h("p", {}, h("a", { href: `#/sessions?station=${encodeURIComponent(id)}` }, "Sessions at this station")));
  } catch (error) {
    put(box, problem(error.status === 404 || error.status === 403 ? { reason: "not_found", message: "" } : error),
      h("p", { id: "refused" }, "This station is not one of your organisation's."));
  }
}

// --- sessions -------------------------------------------------------------------------------------

// Every session status (session-svc's SessionStatus), in the life cycle's order, as people say it.
const STATUS_TEXT = {
  code_issued: "Code shown", scanned: "Scanned", priced: "Priced", authorised: "Authorised", charging: "Charging",
  stopping: "Stopping", completed: "Ended, being priced", cost_calculated: "Ended, being billed", billed: "Billed",
  denied: "Denied", expired: "Code expired", abandoned: "Cancelled", failed: "Failed",
};
const statusText = (x) => STATUS_TEXT[x] || x;
// Drivers are shown by a stable pseudonym (their account id's start): enough to see one driver's
// sessions together, without giving the operator the driver's e-mail address.
const driverRef = (id) => (id ? id.slice(0, 8) : "—");

async function loadSessions(params, max = 500) {
  const items = [];
  let cursor = null;
  do {
    const q = new URLSearchParams(params);
    q.set("scope", "organisation");
    q.set("limit", "100");
    if (cursor) q.set("cursor", cursor);
    const pageData = await get("/sessions?" + q.toString());
    items.push(...pageData.items);
    cursor = pageData.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

async function sessionsPage(query) {
  setNav("sessions");
  const status = h("select", { id: "f-status" }, h("option", { value: "" }, "Any"), Object.entries(STATUS_TEXT).map(([x, text]) => h("option", { value: x, selected: query.get("status") === x }, text)));
  const station = h("input", { id: "f-station", value: query.get("station") || "", placeholder: "ST-0001 or a name" });
  const from = h("input", { id: "f-from", type: "date", value: query.get("from") || "" });
  const to = h("input", { id: "f-to", type: "date", value: query.get("to") || "" });
  const table = h("div", { class: "table-wrap" });
  const count = h("p", { class: "muted", role: "status" });
  let rows = [];
  const apply = () => {
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (station.value.trim()) q.set("station", station.value.trim());
    if (from.value) q.set("from", from.value);
    if (to.value) q.set("to", to.value);
    go("#/sessions?" + q);
  };
  const csv = h("button", { class: "secondary", id: "csv", type: "button", onclick: () => {
    const header = ["session_id", "station_id", "connector_id", "status", "started_at", "ended_at", "energy_wh", "cost_minor", "currency", "stop_reason", "denial_reason", "driver"];
    const esc = (v) => (v == null ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
    const lines = rows.map((x) => [x.session_id, x.station_id, x.connector_id, x.status, x.started_at || x.session_started_at, x.ended_at, x.energy_wh,
      x.cost ? x.cost.total.amount_minor : "", x.cost ? x.cost.total.currency : "", x.stop_reason, x.denial ? x.denial.reason : "", driverRef(x.user_id)].map(esc).join(","));
    download(new Blob([[header.join(","), ...lines].join("\n") + "\n"], { type: "text/csv" }), `plugpay-sessions-${new Date().toISOString().slice(0, 10)}.csv`);
  } }, "Export CSV");
  page("Sessions",
    h("form", { class: "card filters", onsubmit: (e) => { e.preventDefault(); apply(); } },
      field("Status", status), field("Station", station), field("From", from), field("To", to),
      h("button", { type: "submit" }, "Filter")),
    h("div", { class: "row between" }, count, csv),
    h("div", { class: "card" }, table));
  if (query.get("from") && query.get("to") && query.get("from") > query.get("to")) {
    put(table, h("div", { class: "alert error", role: "alert", id: "bad-period" }, h("strong", {}, "The From date is after the To date."), h("p", {}, "Swap them, or clear one of them.")));
    return;
  }
  const params = [];
  if (query.get("status")) params.push(["status", query.get("status")]);
  if (query.get("from")) params.push(["started_from", new Date(query.get("from")).toISOString()]);
  if (query.get("to")) params.push(["started_before", new Date(new Date(query.get("to")).getTime() + 86400000).toISOString()]);
  // A station by its id or name, in any case, in part: "st-0001" and "demo" both find ST-0001.
  const wanted = (query.get("station") || "").toLowerCase();
  try {
    rows = (await loadSessions(params)).filter((x) => !wanted || (x.station_id || "").toLowerCase().includes(wanted) || (x.station_name || "").toLowerCase().includes(wanted));
  } catch (error) { put(table, problem(error)); return; }
  count.textContent = `${rows.length} session${rows.length === 1 ? "" : "s"}`;
  put(table, h("table", { id: "sessions" },
    h("caption", { class: "sr-only" }, "Charging sessions"),
    h("thead", {}, h("tr", {}, ["Started", "Station", "Status", "Driver", "Energy", "Amount", ""].map((t, i) => h("th", { scope: "col", class: i >= 4 && i < 6 ? "num" : null }, t)))),
    h("tbody", {}, rows.map((x) => h("tr", { dataset: { session: x.session_id } },
      h("td", {}, h("a", { href: "#/session/" + x.session_id }, when(x.started_at || x.session_started_at), h("span", { class: "sr-only" }, " session " + x.session_id.slice(0, 8)))),
      h("td", {}, x.station_name || x.station_id, x.connector_id ? ` / ${x.connector_id}` : ""),
      h("td", { dataset: { status: x.status } }, statusText(x.status), x.denial ? ` (${x.denial.reason.replace(/_/g, " ")})` : ""),
      h("td", { class: "mono", title: x.user_id || null }, driverRef(x.user_id)),
      h("td", { class: "num" }, kwh(x.energy_wh)),
      h("td", { class: "num" }, x.cost ? money(x.cost.total) : "—"),
      h("td", {}, x.status === "billed" ? h("a", { href: "#/refund/" + x.session_id }, "Refund", h("span", { class: "sr-only" }, " session " + x.session_id.slice(0, 8))) : null))))));
}

const REVIEW_TEXT = {
  pending: "Held for review: the meter readings did not add up; only the plausible part was billed.",
  approved: "Reviewed: the operator approved a total.",
  voided: "Reviewed: the operator voided the session.",
  corrected: "Corrected by rule: some of the station's readings did not add up; billed from the plausible ones.",
};

async function sessionPage(id) {
  setNav("sessions");
  const box = h("div");
  page("Session " + id.slice(0, 8), box);
  let x, steps;
  try {
    [x, steps] = await Promise.all([get(`/sessions/${encodeURIComponent(id)}`), get(`/sessions/${encodeURIComponent(id)}/timeline`)]);
  } catch (error) { put(box, problem(error)); return; }
  // Billing knows a session only once it is billed: no receipt yet is an answer, not an error.
  const optional = (path) => get(path).catch((error) => { if (error.status === 404) return null; throw error; });
  let receipt = null, refunds = null, meter = null;
  try {
    [receipt, refunds, meter] = await Promise.all([
      optional(`/billing/receipts/${id}`),
      optional(`/billing/operator/refunds?session_id=${encodeURIComponent(id)}`),
      x.station_id ? optional(`/stations/${encodeURIComponent(x.station_id)}/sessions/${encodeURIComponent(id)}/meter`) : null,
    ]);
  } catch (error) { put(box, problem(error)); return; }
  // Times as people at the station read them: in its time zone (the browser's when unknown).
  let zone;
  try { zone = x.station_id ? (await get(`/pricing/stations/${encodeURIComponent(x.station_id)}`)).commercials?.time_zone : undefined; } catch { zone = undefined; }
  const at = (iso, seconds = false) => {
    if (!iso) return "—";
    try { return new Date(iso).toLocaleString(navigator.language || "en", { dateStyle: "medium", timeStyle: seconds ? "medium" : "short", timeZone: zone }); } catch { return when(iso); }
  };
  const receiptButton = h("button", { type: "button", class: "secondary", id: "receipt-pdf", onclick: async () => {
    try {
      const res = await raw(`/billing/receipts/${id}?format=pdf`);
      download(await res.blob(), `receipt-${id}.pdf`);
    } catch (error) { put(receiptOut, problem(error)); }
  } }, "Download the receipt (PDF)");
  const receiptOut = h("div", { "aria-live": "polite" });
  const lines = receipt ? receipt.lines : [];
  put(box,
    h("section", { class: "card", "aria-labelledby": "s-facts" }, h("h2", { id: "s-facts" }, "Summary"),
      h("dl", { class: "facts", id: "session-facts" },
        h("dt", {}, "Station"), h("dd", {}, h("a", { href: "#/stations/" + encodeURIComponent(x.station_id || "") }, x.station_name || x.station_id), ` · connector ${x.connector_id ?? "—"}`),
        h("dt", {}, "Driver"), h("dd", { class: "mono", title: x.user_id || null }, driverRef(x.user_id)),
        h("dt", {}, "Status"), h("dd", { id: "session-status" }, statusText(x.status), x.denial ? ` (${x.denial.reason.replace(/_/g, " ")})` : ""),
        h("dt", {}, "Charging"), h("dd", { id: "session-times" }, at(x.started_at), " – ", at(x.ended_at), zone ? h("span", { class: "muted" }, ` (${zone} time)`) : null),
        h("dt", {}, "Energy"), h("dd", {}, kwh(x.energy_wh)),
        h("dt", {}, "Amount"), h("dd", {}, x.cost ? money(x.cost.total) : "—", x.funding ? ` · paid by ${x.funding}` : ""),
        x.stop_reason ? [h("dt", {}, "Stop reason"), h("dd", {}, x.stop_reason.replace(/_/g, " "))] : null)),
    h("section", { class: "card", "aria-labelledby": "s-timeline" }, h("h2", { id: "s-timeline" }, "Timeline"),
      h("ol", { class: "timeline", id: "timeline" }, steps.steps.map((st) => h("li", { dataset: { kind: st.kind } }, h("time", { datetime: st.at }, at(st.at, true)), " ", st.text)))),
    h("section", { class: "card", "aria-labelledby": "s-meter" }, h("h2", { id: "s-meter" }, "Meter readings"),
      meter && meter.samples.length ? [meterChart(meter.samples), h("p", { class: "muted", id: "meter-summary" },
        `${meter.samples.length} readings from the station, ${at(meter.samples[0].sampled_at, true)} – ${at(meter.samples[meter.samples.length - 1].sampled_at, true)}; register `,
        `${meter.samples[0].energy_wh} → ${meter.samples[meter.samples.length - 1].energy_wh} Wh`, meter.truncated ? " (the first readings only)" : "")]
        : h("p", { class: "muted", id: "no-meter" }, "The station reported no meter readings for this session.")),
    h("section", { class: "card", "aria-labelledby": "s-cost" }, h("h2", { id: "s-cost" }, "Cost"),
      receipt ? h("div", { class: "table-wrap" }, h("table", { id: "cost-lines" },
        h("caption", { class: "sr-only" }, "Cost breakdown"),
        h("thead", {}, h("tr", {}, ["Item", "Quantity", "Unit price excl. VAT", "VAT", "Amount incl. VAT"].map((t, i) => h("th", { scope: "col", class: i ? "num" : null }, t)))),
        h("tbody", {}, lines.map((l) => h("tr", {}, h("td", {}, l.description), h("td", { class: "num" }, l.quantity), h("td", { class: "num" }, l.unit_price_excl_vat),
          h("td", { class: "num" }, l.vat_percent + " %"), h("td", { class: "num" }, money(l.amount_incl_vat))))),
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: 4 }, "Total incl. VAT"), h("td", { class: "num", id: "cost-total" }, money(receipt.total_incl_vat))))))
        : h("p", { class: "muted" }, x.cost ? `So far ${money(x.cost.total)}; the breakdown follows with the bill.` : "Nothing billed."),
      receipt ? h("p", { class: "row" }, receiptButton, h("span", { class: "muted" }, "Charged ", receipt.charged.text, receipt.payment_method ? ` · ${receipt.payment_method}` : "")) : null,
      receiptOut),
    h("section", { class: "card", "aria-labelledby": "s-refunds" }, h("h2", { id: "s-refunds" }, "Refunds"),
      refunds && refunds.refunds.length ? refundList(refunds.refunds) : h("p", { class: "muted", id: "no-refunds" }, "No refunds."),
      refunds && refunds.refundable.amount_minor > 0 ? h("p", {}, h("a", { href: "#/refund/" + id }, "Refund"), " up to ", money(refunds.refundable)) : null),
    h("section", { class: "card", "aria-labelledby": "s-review" }, h("h2", { id: "s-review" }, "Meter review"),
      h("p", { id: "review-state" }, receipt && receipt.review ? REVIEW_TEXT[receipt.review] || receipt.review : receipt ? "Not held: the meter readings were plausible." : "—",
        receipt && receipt.review === "pending" ? [" ", h("a", { href: "#/reviews" }, "Decide it under Needs review")] : null)));
}

// The station's readings as it sent them: energy delivered since the first reading (kWh, line)
// and power where reported (kW, dots), over the session's time. The evidence behind a bill.
function meterChart(samples) {
  const W = 640, H = 200, L = 48, R = 48, T = 12, B = 28;
  const t0 = new Date(samples[0].sampled_at), t1 = new Date(samples[samples.length - 1].sampled_at);
  const span = Math.max(1, t1 - t0);
  const e0 = samples[0].energy_wh;
  const eMax = Math.max(1, ...samples.map((p) => p.energy_wh - e0));
  const pMax = Math.max(1, ...samples.map((p) => p.power_w || 0));
  const x = (p) => L + ((new Date(p.sampled_at) - t0) / span) * (W - L - R);
  const yE = (p) => H - B - ((p.energy_wh - e0) / eMax) * (H - T - B);
  const yP = (p) => H - B - ((p.power_w || 0) / pMax) * (H - T - B);
  const line = samples.map((p, i) => `${i ? "L" : "M"}${x(p).toFixed(1)},${yE(p).toFixed(1)}`).join(" ");
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", id: "meter-chart", role: "img",
    "aria-label": `Energy delivered: ${(eMax / 1000).toFixed(3)} kWh over ${Math.round(span / 60000)} min; highest power ${(pMax / 1000).toFixed(1)} kW` },
    s("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#9ca3af" }),
    s("path", { d: line, fill: "none", stroke: "#0b6b3a", "stroke-width": 2 }),
    samples.filter((p) => p.power_w != null).map((p) => s("circle", { cx: x(p).toFixed(1), cy: yP(p).toFixed(1), r: 2, fill: "#1d4ed8" })),
    s("text", { x: L - 6, y: T + 10, "text-anchor": "end", "font-size": 11 }, `${(eMax / 1000).toFixed(2)} kWh`),
    s("text", { x: W - R + 6, y: T + 10, "font-size": 11, fill: "#1d4ed8" }, `${(pMax / 1000).toFixed(1)} kW`),
    s("text", { x: L, y: H - 8, "font-size": 11 }, "0"),
    s("text", { x: W - R, y: H - 8, "text-anchor": "end", "font-size": 11 }, `${Math.round(span / 60000)} min`));
}

// A refund attempt that got an answer (done or refused) is over: the next one is a new request
// with a new Idempotency-Key. Only the same refund after no answer (offline, 5xx) or while it is
// still at the card processor is sent again with its key, so a lost answer never refunds twice.
const DESTINATION = { wallet: "the driver's Plugpay wallet", card: "the driver's card" };

async function refundPage(id) {
  setNav("sessions");
  const box = h("div");
  page("Refund", box);
  let receipt, state;
  try {
    [receipt, state] = await Promise.all([get(`/billing/receipts/${id}`), get(`/billing/operator/refunds?session_id=${encodeURIComponent(id)}`)]);
  } catch (error) { put(box, problem(error)); return; }
  const currency = receipt.charged.currency;
  const decimal = (minor) => (minor / 100).toFixed(2);
  const amount = h("input", { id: "refund-amount", inputmode: "decimal", value: decimal(state.refundable.amount_minor) });
  const reason = h("textarea", { id: "refund-reason", rows: 3, required: true, minlength: 3, maxlength: 500 });
  const out = h("div", { "aria-live": "polite" });
  const summary = h("div", { class: "card", id: "refund-summary" });
  const submit = h("button", { type: "submit" }, "Refund");
  let key = crypto.randomUUID(), sent = null;
  const show = () => {
    const left = state.refundable.amount_minor;
    put(summary,
      h("p", {}, "Session ", h("a", { href: "#/session/" + id }, id.slice(0, 8)), " at ", receipt.station_id, " · charged ", money(state.charged),
        " · can still be refunded ", h("strong", { id: "refundable" }, money(state.refundable))),
      h("p", { class: "muted" }, "A refund goes back to ", DESTINATION[state.destination], state.destination === "card" ? " (the card the session was paid with)" : "", "."),
      state.refunds.length ? refundList(state.refunds) : null,
      left <= 0 ? h("p", { id: "nothing-left" }, h("strong", {}, "This session is fully refunded.")) : null);
    submit.disabled = left <= 0;
  };
  show();
  put(box, summary,
    h("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      const minor = toMinor(amount.value);
      if (!(minor > 0)) { put(out, problem({ reason: "invalid_amount" })); return; }
      if (minor > state.refundable.amount_minor) {
        put(out, problem({ reason: "refund_exceeds_charged", message: `At most ${money(state.refundable)} can still be refunded.` }));
        return;
      }
      submit.disabled = true;
      put(out);
      const body = { session_id: id, amount: { amount_minor: minor, currency }, reason: reason.value.trim() };
      if (sent !== null && sent !== JSON.stringify(body)) key = crypto.randomUUID();
      sent = JSON.stringify(body);
      // After a refund, or a refusal because less is left, the amount becomes what is left now;
      // after any other failure the operator's amount stays for the retry.
      let refill = true;
      try {
        const done = await api("POST", "/billing/operator/refunds", { json: body, idempotent: key });
        key = crypto.randomUUID();
        announce("Refunded");
        put(out, h("div", { class: "alert info", role: "status", id: "refunded" }, "Refunded ", money(done.amount), " to ", DESTINATION[done.destination], "."));
        reason.value = "";
      } catch (error) {
        const unanswered = error instanceof ApiError && (error.status === 0 || error.status >= 500 || error.reason === "refund_pending");
        if (!unanswered) key = crypto.randomUUID();
        refill = error instanceof ApiError && error.reason === "refund_exceeds_charged";
        put(out, problem(error));
      }
      try { state = await get(`/billing/operator/refunds?session_id=${encodeURIComponent(id)}`); } catch { /* the last known state stays */ }
      if (refill) amount.value = decimal(state.refundable.amount_minor);
      submit.disabled = false;
      show();
    } }, field(`Amount (${currency})`, amount, "Pre-filled with what can still be refunded."),
    field("Reason (shown to the driver on the receipt and in the refund e-mail)", reason), submit, out));
}

const REFUND_STATUS = { done: "refunded", pending: "at the card processor", failed: "failed, nothing moved" };

function refundList(items) {
  return h("ul", { class: "list", id: "refund-list" }, items.map((r) => h("li", { dataset: { refund: r.refund_id, status: r.status } },
    when(r.issued_at), " · ", h("strong", {}, money(r.amount)), " to ", r.destination === "card" ? "card" : "wallet",
    " · ", REFUND_STATUS[r.status] || r.status, " · “", r.reason, "”")));
}

// --- tariffs ----------------------------------------------------------------------------------------

// [type, label, the stored unit's size in the shown unit]: OCPI stores TIME and PARKING_TIME per
// hour; drivers read idle fees per minute (the quote's text), so the editor shows them so.
const COMPONENTS = [
  ["ENERGY", "per kWh", 1],
  ["FLAT", "per session", 1],
  ["TIME", "per hour charging", 1],
  ["PARKING_TIME", "per minute idle", 60],
];
const STEP = { ENERGY: 1, FLAT: 1, TIME: 60, PARKING_TIME: 60 };

// A price incl. VAT as drivers read it (plugpay_tariffs.summary._display): half-up to two decimals
// more than the currency has, trailing zeros cut down to the currency's decimals.
function shownPrice(value, digits = 2) {
  const scale = 10 ** (digits + 2);
  const rounded = Math.round((value + Number.EPSILON) * scale) / scale;
  let text = rounded.toFixed(digits + 2);
  while (text.split(".")[1].length > digits && text.endsWith("0")) text = text.slice(0, -1);
  return text;
}

const usersOf = (stations, key) => stations.filter((st) => st.connectors.some((c) => c.tariff_key === key));
const stationCount = (n) => `${n} station${n === 1 ? "" : "s"}`;

async function tariffsPage() {
  setNav("tariffs");
  const box = h("div");
  page("Tariffs", box);
  try {
    const [tariffs, stations] = await Promise.all([get("/pricing/tariffs"), get("/pricing/stations")]);
    put(box, ...tariffs.items.map((t) => h("section", { class: "card", dataset: { tariff: t.key } },
      h("div", { class: "row between" }, h("h2", {}, t.key, " ", h("span", { class: "badge" }, "version ", t.version)),
        h("a", { class: "button secondary", href: "#/tariffs/" + encodeURIComponent(t.key) }, "Edit", h("span", { class: "sr-only" }, " " + t.key))),
      h("p", { class: "price" }, t.summary),
      h("p", { class: "muted" }, "Published ", when(t.published_at), " · used by ", usersOf(stations.items, t.key).map((st) => st.name).join(", ") || "no station"))));
  } catch (error) { put(box, problem(error)); }
}

async function tariffEditPage(key) {
  setNav("tariffs");
  const box = h("div");
  page("Edit tariff " + key, box);
  let t, stations;
  try { [t, stations] = await Promise.all([get(`/pricing/tariffs/${encodeURIComponent(key)}`), get("/pricing/stations")]); } catch (error) { put(box, problem(error)); return; }
  const tariff = t.tariff;
  const currency = tariff.currency;
  // The always-valid element (no restrictions) is what this form edits; restricted ones are kept.
  const index = Math.max(0, tariff.elements.findIndex((e) => !e.restrictions));
  const element = tariff.elements[index] || { price_components: [] };
  const vatValue = (element.price_components[0] && element.price_components[0].vat) || "19";
  const vat = h("input", { id: "t-vat", inputmode: "decimal", value: vatValue });
  const inputs = {}, initial = {};
  const rows = COMPONENTS.map(([type, label, per]) => {
    const c = element.price_components.find((x) => x.type === type);
    initial[type] = c ? shownPrice((Number(c.price) * (1 + Number(c.vat) / 100)) / per) : "";
    inputs[type] = h("input", { id: "t-" + type.toLowerCase(), inputmode: "decimal", value: initial[type] });
    return field(`${currency} ${label}, incl. VAT`, inputs[type], type === "PARKING_TIME" ? "After charging has finished while the car stays plugged in." : null);
  });
  const preview = h("div", { class: "preview", id: "preview", "aria-live": "polite" });
  const out = h("div", { "aria-live": "polite" });
  const users = usersOf(stations.items, key);
  const number = (input) => (input.value.trim() === "" ? null : Number(input.value.replace(",", ".")));
  const shown = (type) => { const v = number(inputs[type]); return v ? shownPrice(v) : null; };
  // Exactly plugpay_tariffs.summary.describe's text: what the quote and the station screen say.
  const driversText = () => {
    const v = Number(vat.value.replace(",", "."));
    const parts = [[shown("ENERGY"), `${currency}/kWh`], [shown("TIME"), `${currency}/h`], [shown("FLAT"), `${currency} per session`], [shown("PARKING_TIME"), `${currency}/min idle`]]
      .filter(([value]) => value).map(([value, unit]) => `${value} ${unit}`);
    if (!parts.length) return "free of charge";
    return parts.join(" + ") + (v === 0 ? ", no VAT" : `, incl. ${v}% VAT`);
  };
  const update = () => {
    const [e, f, tm] = ["ENERGY", "FLAT", "TIME"].map((type) => number(inputs[type]) || 0);
    const example = e * 20 + f + tm * 1;
    put(preview, h("strong", {}, "Drivers will see"), h("p", { class: "price", id: "preview-text" }, driversText()),
      h("p", { class: "muted" }, "Example: 20 kWh in 1 hour costs ", money(Math.round(example * 100), currency), "."));
  };
  [vat, ...Object.values(inputs)].forEach((i) => i.addEventListener("input", update));
  update();
  const components = () => {
    const v = Number(vat.value.replace(",", "."));
    if (!(v >= 0 && v < 100)) throw { reason: "invalid_amount", message: "VAT" };
    const list = [];
    for (const [type, , per] of COMPONENTS) {
      const value = number(inputs[type]);
      if (value === null || value === 0) continue;
      if (!(value > 0)) throw { reason: "invalid_amount" };
      const stored = element.price_components.find((x) => x.type === type);
      // An untouched price keeps its stored value exactly: publishing never moves it by rounding.
      if (stored && inputs[type].value.trim() === initial[type] && vat.value.trim() === vatValue) { list.push(stored); continue; }
      list.push({ type, price: ((value * per) / (1 + v / 100)).toFixed(6), vat: String(v), step_size: stored && stored.step_size ? stored.step_size : STEP[type] });
    }
    if (!list.length) list.push({ type: "FLAT", price: "0", vat: String(v), step_size: 1 });
    return list;
  };
  const publish = async (list) => {
    const elements = tariff.elements.slice();
    elements[index] = { ...element, price_components: list };
    const { id: _id, version: _version, ...rest } = tariff;
    try {
      const published = await api("PUT", `/pricing/tariffs/${encodeURIComponent(key)}`, { json: { ...rest, elements } });
      announce("Published");
      put(out, h("div", { class: "alert info", role: "status", id: "published" }, `Version ${published.version} is live. Drivers now see: ${published.summary}`));
      put(current, `Version ${published.version}, published ${when(published.published_at)}. Used by: ${users.map((st) => st.name).join(", ") || "no station"}.`);
    } catch (error) { put(out, problem(error)); } finally { submit.disabled = false; }
  };
  const submit = h("button", { type: "submit" }, "Publish new version");
  const current = h("p", { class: "muted", id: "tariff-version" }, `Version ${t.version}, published ${when(t.published_at)}. Used by: ${users.map((st) => st.name).join(", ") || "no station"}.`);
  put(box, current,
    h("form", { class: "card", onsubmit: (ev) => {
      ev.preventDefault();
      let list;
      try { list = components(); } catch (error) { put(out, problem(error)); return; }
      submit.disabled = true;
      // Say what the change reaches before it goes live.
      const yes = h("button", { type: "button", onclick: () => { put(out); publish(list); } }, "Yes, publish");
      const no = h("button", { type: "button", class: "secondary", onclick: () => { put(out); submit.disabled = false; submit.focus(); } }, "Cancel");
      put(out, h("div", { class: "alert info", role: "alertdialog", id: "confirm-publish", "aria-labelledby": "confirm-text" },
        h("p", { id: "confirm-text" }, `This changes the price at ${stationCount(users.length)}`, users.length ? ` (${users.map((st) => st.name).join(", ")})` : "",
          ` for sessions that start from now on. Drivers will see: ${driversText()}.`),
        h("div", { class: "row" }, yes, no)));
      yes.focus();
    } }, h("div", { class: "cols" }, h("div", {}, rows, field("VAT %", vat)), h("div", {}, preview)), submit, out));
}

// --- revenue ------------------------------------------------------------------------------------------

const isoDay = (d) => d.toISOString().slice(0, 10);

async function revenuePage(query) {
  setNav("revenue");
  const box = h("div");
  const today = new Date();
  const from = h("input", { id: "r-from", type: "date", value: query.get("from") || isoDay(new Date(today.getTime() - 29 * 86400000)) });
  const to = h("input", { id: "r-to", type: "date", value: query.get("to") || isoDay(today) });
  page("Revenue and energy",
    h("form", { class: "card filters", id: "period", onsubmit: (e) => {
      e.preventDefault();
      go(`#/revenue?from=${from.value}&to=${to.value}`);
    } }, field("From", from), field("To (included)", to), h("button", { type: "submit" }, "Show")),
    box);
  if (!from.value || !to.value || from.value > to.value) {
    put(box, h("div", { class: "alert error", role: "alert", id: "bad-period" }, h("strong", {}, "The From date is after the To date."), h("p", {}, "Choose a From date on or before the To date.")));
    return;
  }
  // Whole days from the browser's midnight: the day a person picked, not a UTC one.
  const start = new Date(from.value + "T00:00:00"), end = new Date(new Date(to.value + "T00:00:00").getTime() + 86400000);
  try {
    const [report, sessions, stations] = await Promise.all([
      get(`/billing/operator/revenue?from=${start.toISOString()}&to=${end.toISOString()}`),
      loadSessions([["status", "billed"], ["started_from", start.toISOString()], ["started_before", end.toISOString()]], 2000),
      get("/pricing/stations"),
    ]);
    const names = Object.fromEntries(stations.items.map((st) => [st.station_id, st.name]));
    const localDay = (date) => isoDay(new Date(date.getTime() - date.getTimezoneOffset() * 60000));
    const days = [];
    for (let d = new Date(start); d < end; d = new Date(d.getTime() + 86400000)) days.push(localDay(d));
    const byDay = Object.fromEntries(days.map((d) => [d, { revenue: 0, energy: 0 }]));
    let currency = "EUR";
    for (const x of sessions) {
      const d = localDay(new Date(x.ended_at || x.started_at || x.session_started_at));
      if (!byDay[d]) continue;
      byDay[d].revenue += x.cost ? x.cost.total.amount_minor : 0;
      byDay[d].energy += x.energy_wh || 0;
      if (x.cost) currency = x.cost.total.currency;
    }
    const totals = report.stations.reduce((a, r) => ({ sessions: a.sessions + r.sessions, energy: a.energy + r.energy_wh, revenue: a.revenue + r.total_incl_vat.amount_minor, refunded: a.refunded + r.refunded.amount_minor, pending: a.pending + (r.pending_review ? r.pending_review.amount_minor : 0), pendingSessions: a.pendingSessions + (r.pending_review_sessions || 0) }), { sessions: 0, energy: 0, revenue: 0, refunded: 0, pending: 0, pendingSessions: 0 });
    put(box,
      h("p", { class: "muted", id: "period-text" }, `Paid sessions from ${from.value} to ${to.value} (${days.length} day${days.length === 1 ? "" : "s"}).`),
      h("dl", { class: "stats" },
        h("div", { class: "stat" }, h("dt", {}, "Revenue incl. VAT"), h("dd", { id: "revenue-total" }, money(totals.revenue, currency))),
        h("div", { class: "stat" }, h("dt", {}, "Energy"), h("dd", {}, kwh(totals.energy))),
        h("div", { class: "stat" }, h("dt", {}, "Sessions"), h("dd", {}, totals.sessions)),
        h("div", { class: "stat" }, h("dt", {}, "Refunded"), h("dd", {}, money(totals.refunded, currency))),
        // Held sessions are not revenue until decided: shown apart, linked to the review list.
        h("div", { class: "stat" }, h("dt", {}, "Pending review"), h("dd", { id: "pending-review" }, h("a", { href: "#/reviews" }, money(totals.pending, currency), ` (${totals.pendingSessions})`)))),
      h("section", { class: "card" }, h("h2", {}, "Per day"), h("div", { class: "legend", "aria-hidden": "true" }, h("span", { class: "rev" }, "Revenue"), h("span", { class: "en" }, "Energy")),
        chart(days, days.map((d) => byDay[d].revenue / 100), days.map((d) => byDay[d].energy / 1000), currency)),
      h("section", { class: "card" }, h("h2", {}, "Per station"), h("div", { class: "table-wrap" }, h("table", { id: "per-station" },
        h("thead", {}, h("tr", {}, ["Station", "Sessions", "Energy", "Revenue excl. VAT", "VAT", "Total", "Refunded"].map((t, i) => h("th", { scope: "col", class: i ? "num" : null }, t)))),
        h("tbody", {}, report.stations.map((r) => h("tr", { dataset: { station: r.station_id } },
          h("td", {}, h("a", { href: "#/stations/" + encodeURIComponent(r.station_id) }, names[r.station_id] || r.station_id), h("span", { class: "muted" }, " ", r.station_id)),
          h("td", { class: "num" }, r.sessions), h("td", { class: "num" }, kwh(r.energy_wh)),
          h("td", { class: "num" }, money(r.revenue_excl_vat)), h("td", { class: "num" }, money(r.vat)), h("td", { class: "num" }, money(r.total_incl_vat)), h("td", { class: "num" }, money(r.refunded)))))))));
  } catch (error) { put(box, problem(error)); }
}

function chart(labels, revenue, energy, currency) {
  // Inline SVG: bars for revenue, a line for energy; the table of numbers is right below it.
  // The axis maxima sit above the plot, anchored inside the picture, so no label is cut off.
  const W = 720, H = 250, L = 12, R = 12, T = 28, B = 30;
  const topR = Math.max(0, ...revenue), topE = Math.max(0, ...energy);
  const maxR = topR || 1, maxE = topE || 1;  // an empty period still draws an axis
  const bw = (W - L - R) / labels.length;
  const x = (i) => L + i * bw;
  const yR = (v) => H - B - (v / maxR) * (H - T - B), yE = (v) => H - B - (v / maxE) * (H - T - B);
  const line = energy.map((v, i) => `${i ? "L" : "M"}${x(i) + bw / 2},${yE(v)}`).join(" ");
  const every = Math.max(1, Math.ceil(labels.length / 10));
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", id: "revenue-chart", role: "img", "aria-label": `Revenue (${currency}) and energy (kWh) per day; total ${revenue.reduce((a, b) => a + b, 0).toFixed(2)} ${currency}, ${energy.reduce((a, b) => a + b, 0).toFixed(1)} kWh` },
    s("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#6b7280" }),
    revenue.map((v, i) => s("rect", { x: x(i) + 1, y: yR(v), width: Math.max(1, bw - 2), height: H - B - yR(v), fill: "#0b6b3a" }, s("title", {}, `${labels[i]}: ${v.toFixed(2)} ${currency}`))),
    s("path", { d: line, fill: "none", stroke: "#1d4ed8", "stroke-width": 2 }),
    s("text", { x: L, y: 14, "font-size": 12, fill: "#0b6b3a", "text-anchor": "start" }, `max ${topR.toFixed(2)} ${currency}`),
    s("text", { x: W - R, y: 14, "font-size": 12, fill: "#1d4ed8", "text-anchor": "end" }, `max ${topE.toFixed(2)} kWh`),
    labels.map((label, i) => (i % every === 0 ? s("text", { x: Math.min(W - R - 18, Math.max(L + 18, x(i) + bw / 2)), y: H - 10, "font-size": 11, fill: "#374151", "text-anchor": "middle" }, label.slice(5)) : null)));
}

// --- needs review -----------------------------------------------------------------------------------
// Sessions whose meter evidence the gateway held: only the plausible part was billed. The operator
// sees the evidence and approves a total (at most what the driver authorised) or voids it. Below
// them, sessions the gateway corrected by a fixed rule, with the same evidence.

const REASONS = {
  register_jump: "the register jumped by more than the connector can deliver",
  register_reset: "the register reset",
  register_regression: "the register went backwards",
  energy_above_physical_bound: "more energy than the connector can deliver in the time we saw",
  meter_start_mismatch: "meterStart disagrees with the readings",
  meter_stop_below_register: "meterStop is below the last reading",
  meter_stop_jump: "meterStop jumped beyond the connector's power",
  start_before_authorisation: "the start is dated before the authorisation",
  start_in_future: "the start is dated in the future",
  stop_in_future: "the stop is dated in the future",
  stop_before_authorisation: "the stop is dated before the authorisation",
  stop_before_start: "the stop is dated before the start",
  sample_time_implausible: "readings are dated outside the session",
  conflicting_samples: "two different readings at one instant",
  samples_disagree_with_transaction: "the readings disagree with meterStart/meterStop",
  idle_reported_as_charging: "idle time was reported as charging",
};

async function reviewsPage() {
  setNav("reviews");
  const box = h("div");
  page("Needs review", box);
  let items, corrected;
  try {
    [items, corrected] = await Promise.all([get("/billing/operator/reviews?status=pending"), get("/billing/operator/reviews?status=corrected&limit=50")]);
  } catch (error) { put(box, problem(error)); return; }
  put(box,
    ...(items.length ? items.map(reviewCard) : [h("p", { id: "no-reviews" }, "No session needs review.")]),
    // Corrections were billed by a fixed rule: nothing to decide, but a driver may ask why.
    h("h2", {}, "Corrected automatically"),
    corrected.length
      ? h("div", { id: "corrected" }, ...corrected.map(correctionCard))
      : h("p", { id: "no-corrections" }, "No session was corrected recently."));
}

function evidence(r) {
  const j = r.judgement, c = j.claimed;
  return [
    h("ul", {}, ...j.reasons.map((x) => h("li", { dataset: { reason: x } }, REASONS[x] || x))),
    h("dl", { class: "facts" },
      h("dt", {}, "Station claimed"), h("dd", {}, kwh(c.energy_wh), " · ", when(c.started_at), " – ", when(c.ended_at), ` (meter ${c.meter_start_wh} → ${c.meter_stop_wh} Wh)`),
      h("dt", {}, "Physical bound"), h("dd", {}, kwh(j.max_energy_wh), " at ", kw(j.max_power_w), " max"),
      h("dt", {}, "Station clock off by"), h("dd", {}, `${j.clock_skew_s} s`),
      h("dt", {}, "Billed (plausible)"), h("dd", {}, kwh(r.billed_energy_wh), " · ", r.billed_total ? money(r.billed_total) : "being billed"),
      h("dt", {}, "Driver authorised at most"), h("dd", {}, money(r.authorised_max)),
      h("dt", {}, r.status === "corrected" ? "Corrected" : "Flagged"), h("dd", {}, when(r.flagged_at))),
  ];
}

function correctionCard(r) {
  return h("section", { class: "card", dataset: { correction: r.session_id }, "aria-labelledby": "cr-" + r.session_id },
    h("h3", { id: "cr-" + r.session_id }, r.station_id, " · session ", r.session_id.slice(0, 8)),
    ...evidence(r));
}

function reviewCard(r) {
  const currency = r.authorised_max.currency;
  const amount = h("input", { inputmode: "decimal", value: r.billed_total ? (r.billed_total.amount_minor / 100).toFixed(2) : "0.00" });
  const note = h("input", { maxlength: 500 });
  const out = h("div", { "aria-live": "polite" });
  const key = crypto.randomUUID();
  const send = async (body) => {
    try {
      await api("POST", `/billing/operator/reviews/${r.session_id}`, { json: { ...body, note: note.value.trim() }, idempotent: key + body.decision });
      announce("Decided");
      put(out, h("div", { class: "alert info", role: "status" }, body.decision === "void" ? "Voided: the driver pays nothing." : "Approved " + money(body.amount) + "."));
    } catch (error) { put(out, problem(error)); }
  };
  return h("section", { class: "card", dataset: { review: r.session_id }, "aria-labelledby": "rv-" + r.session_id },
    h("h2", { id: "rv-" + r.session_id }, r.station_id, " · session ", r.session_id.slice(0, 8)),
    ...evidence(r),
    h("form", { class: "row", onsubmit: (e) => {
      e.preventDefault();
      const minor = Math.round(Number(amount.value.replace(",", ".")) * 100);
      if (!(minor >= 0)) { put(out, problem({ reason: "invalid_amount" })); return; }
      send({ decision: "approve", amount: { amount_minor: minor, currency } });
    } }, field(`Approve a total of (${currency})`, amount), field("Note", note), h("button", { type: "submit" }, "Approve"),
      h("button", { type: "button", class: "secondary", onclick: () => send({ decision: "void" }) }, "Void")),
    out);
}

// --- invoicing details -----------------------------------------------------------------------------

// The seller's details on the organisation's invoices and credit notes (billing-svc keeps them).
async function invoicingPage() {
  setNav("invoicing");
  const box = h("div");
  page("Invoicing details", h("p", { class: "muted" }, "Invoices and credit notes issued from now on carry these details; issued ones keep theirs."), box);
  let profile;
  try { profile = await get("/billing/operator/legal-profile"); } catch (error) { put(box, problem(error)); return; }
  const name = h("input", { id: "legal-name", required: true, maxlength: 200, autocomplete: "organization", value: profile.legal_name });
  const address = h("textarea", { id: "legal-address", rows: 3, required: true, maxlength: 1000 });
  address.value = profile.address;
  const vat = h("input", { id: "vat-id", maxlength: 30, value: profile.vat_id });
  const prefix = h("input", { id: "invoice-prefix", required: true, maxlength: 10, pattern: "[A-Za-z0-9]{1,10}", value: profile.invoice_prefix });
  const out = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Save");
  put(box, h("form", { class: "card", onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const saved = await api("PUT", "/billing/operator/legal-profile", { json: { legal_name: name.value, address: address.value, vat_id: vat.value, invoice_prefix: prefix.value } });
      vat.value = saved.vat_id;
      prefix.value = saved.invoice_prefix;
      announce("Saved");
      put(out, h("div", { class: "alert info", role: "status", id: "invoicing-saved" }, "Saved. Invoice numbers now start with ", saved.invoice_prefix, "-."));
    } catch (error) { put(out, problem(error)); } finally { submit.disabled = false; }
  } }, field("Legal name", name), field("Address", address), field("VAT id", vat, "e.g. DE123456789; leave empty if you have none"),
    field("Invoice number prefix", prefix, "capital letters or digits, e.g. ACME → ACME-2026-000001"), submit, out));
}

// --- router ----------------------------------------------------------------------------------------

async function route() {
  timers.forEach(clearInterval);
  timers = [];
  const [path, queryString] = (location.hash.replace(/^#/, "") || "/").split("?");
  const query = new URLSearchParams(queryString || "");
  const [head, arg] = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (head === "login") return loginPage();
    if (!(await operator())) return loginPage(auth.loggedIn ? notOperator() : null);
    if (head === "sessions") return await sessionsPage(query);
    if (head === "refund" && arg) return await refundPage(arg);
    if (head === "session" && arg) return await sessionPage(arg);
    if (head === "tariffs" && arg) return await tariffEditPage(arg);
    if (head === "tariffs") return await tariffsPage();
    if (head === "revenue") return await revenuePage(query);
    if (head === "reviews") return await reviewsPage();
    if (head === "invoicing") return await invoicingPage();
    if (head === "stations" && arg) return await stationPage(arg);
    return await stationsPage();
  } catch (error) {
    put(view, problem(error));
  }
}

document.getElementById("logout").addEventListener("click", async () => { await logout(); me = null; announce("Logged out"); go("#/login"); });
window.addEventListener("hashchange", route);
route();
