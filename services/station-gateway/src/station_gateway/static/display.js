// The station display (patent FIG. 4 and FIG. 7): payment choice, code, live status.
(function () {
  const main = document.querySelector("main");
  const station = main.dataset.station;
  const base = "/stations/" + encodeURIComponent(station);
  const box = document.getElementById("connectors");
  let chosen = {};

  function money(minor, currency) {
    if (minor === null || minor === undefined) return "";
    return (minor / 100).toFixed(2) + " " + (currency || "");
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "onclick") node.addEventListener("click", v);
      else node.setAttribute(k, v);
    });
    children.forEach((c) => node.append(c));
    return node;
  }

  // Messages for a connector, shown on the screen (a public screen has no one to click alert() away).
  const notes = {};

  function note(connectorId, text, kind) {
    notes[connectorId] = { text, kind: kind || "info" };
    render(last);
  }

  async function payWithPhone(connectorId) {
    chosen[connectorId] = "phone";
    delete notes[connectorId];
    const res = await fetch(base + "/display/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ connector_id: connectorId }),
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      note(connectorId, body.message || "Could not make a code. Please try again.", "error");
    }
  }

  async function cancelCode(connectorId, sessionId) {
    delete chosen[connectorId];
    const res = await fetch(base + "/display/sessions/" + encodeURIComponent(sessionId) + "/cancel", { method: "POST" });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      note(connectorId, body.message || "Could not cancel. Please try again.", "error");
    } else {
      delete notes[connectorId];
    }
  }

  // OCPP statuses in words a driver uses; a session in progress says more than the status.
  const STATUS_WORDS = {
    Available: "Available", Preparing: "Plugged in", Occupied: "Plugged in", Charging: "In use",
    SuspendedEV: "In use", SuspendedEVSE: "In use", Finishing: "Unplug the cable to finish",
    Reserved: "Reserved", Unavailable: "Not available", Faulted: "Out of order",
  };
  const SESSION_WORDS = {
    code_issued: "Waiting for the phone", authorized: "Starting", starting: "Starting",
    charging: "Charging", completed: "Finished", denied: "Not started", abandoned: "Not started",
  };

  function humanStatus(c, online) {
    if (!online) return "Offline";
    const s = c.session;
    if (s && SESSION_WORDS[s.state]) return SESSION_WORDS[s.state];
    return STATUS_WORDS[c.status] || "Ready";
  }

  function connectorView(c, online, cardRefused) {
    const s = c.session;
    const card = el("section", { class: "connector", "data-connector": c.connector_id },
      el("h2", {}, "Connector " + c.connector_id),
      el("div", { class: "status", "data-status": c.status || "" }, humanStatus(c, online)));
    const message = notes[c.connector_id];
    const live = s && ["code_issued", "authorized", "starting", "charging"].includes(s.state);
    if (!live && !(s && ["completed", "denied", "abandoned"].includes(s.state) && chosen[c.connector_id])) {
      const phone = el("button", { class: "primary", onclick: () => payWithPhone(c.connector_id) }, "Pay with phone");
      const rfid = el("button", { class: "secondary", onclick: () => note(c.connector_id,
        "Hold your charging card to the reader. No card? Choose “Pay with phone” and use the Plugpay app.") }, "Charging card");
      if (!online) { phone.disabled = true; rfid.disabled = true; }
      card.append(el("p", {}, online ? "Choose how to pay:" : "Paying here is possible again once the charger is back online."), phone, rfid);
      if (message) card.append(el("p", { class: "note " + message.kind, role: "status" }, message.text));
      else if (cardRefused) card.append(el("p", { class: "note error", role: "status", "data-card-refused": "" },
        "This card is not accepted here. Choose “Pay with phone” and pay with the Plugpay app."));
      if (c.price) card.append(el("p", { class: "price" }, c.price));
      return card;
    }
    if (s.state === "code_issued") {
      card.append(
        el("p", {}, "Scan with the Plugpay app, or type the code:"),
        el("div", { class: "qr" }, el("img", {
          alt: "QR code", width: "220", height: "220",
          src: base + "/sessions/" + s.session_id + "/qr.svg",
        })),
        el("div", { class: "code" }, s.code),
        el("p", { class: "price" }, s.price || c.price || ""),
        el("p", { class: "status" }, "Valid until " + new Date(s.expires_at).toLocaleTimeString()),
        el("button", { class: "secondary", onclick: () => cancelCode(c.connector_id, s.session_id) }, "Cancel"));
      if (message) card.append(el("p", { class: "note " + message.kind, role: "status" }, message.text));
    } else if (s.state === "authorized" || s.state === "starting") {
      card.append(el("p", { class: "big" }, "Authorised — starting…"));
    } else if (s.state === "charging") {
      card.append(el("p", { class: "big" }, "Charging"),
        el("p", {}, ((s.energy_wh || 0) / 1000).toFixed(2) + " kWh"),
        el("p", { class: "price" }, s.cost_so_far_minor != null ? "So far: " + money(s.cost_so_far_minor, s.currency) : ""));
    } else if (s.state === "completed") {
      card.append(el("p", { class: "big" }, "Finished"),
        el("p", {}, ((s.energy_wh || 0) / 1000).toFixed(2) + " kWh"),
        el("p", { class: "price" }, s.final_cost_minor != null ? "Total: " + money(s.final_cost_minor, s.currency) : "Calculating the final cost…"),
        el("button", { class: "secondary", onclick: () => { delete chosen[c.connector_id]; render(last); } }, "Done"));
    } else {
      card.append(el("p", { class: "big denied" }, "Not started"),
        el("p", { class: "denied" }, s.refusal || "Charging could not start. Your phone shows why."),
        el("button", { class: "secondary", onclick: () => { delete chosen[c.connector_id]; render(last); } }, "Try again"));
    }
    return card;
  }

  let last = null;
  function render(state) {
    if (!state) return;
    last = state;
    document.getElementById("station-name").textContent = state.name || station;
    document.getElementById("offline").hidden = state.online;
    const cardRefused = state.card_refused_until && new Date(state.card_refused_until) > new Date();
    box.replaceChildren(...state.connectors.map((c) => connectorView(c, state.online, cardRefused)));
  }

  const events = new EventSource(base + "/display/events");
  events.addEventListener("state", (e) => render(JSON.parse(e.data)));
})();
