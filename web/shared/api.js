// The back office's public JSON APIs, with the bearer token (and its refresh) in one place.
const KEY = "plugpay.auth";

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.reason = (body && body.reason) || (status === 0 ? "offline" : "http_" + status);
    this.body = body || {};
    this.retryAfter = retryAfter; // seconds the server asked us to wait (Retry-After), or null
  }
}

function readTokens() {
  try { return JSON.parse(localStorage.getItem(KEY)) || null; } catch { return null; }
}

export const auth = {
  get tokens() { return readTokens(); },
  get loggedIn() { return !!readTokens(); },
  save(body) {
    localStorage.setItem(KEY, JSON.stringify({
      access: body.access_token, refresh: body.refresh_token,
      expires: Date.now() + (body.expires_in || 300) * 1000,
    }));
  },
  clear() { localStorage.removeItem(KEY); },
  onLogout: () => {},
};

// A guest's token (paying at one charger without an account): bound to one session code by
// auth-svc, kept for this tab only, never refreshed (it lives as long as one session may).
const GUEST = "plugpay.guest";

export const guest = {
  get token() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(GUEST)) || null;
      return saved && saved.expires > Date.now() ? saved : null;
    } catch { return null; }
  },
  save(code, body) {
    sessionStorage.setItem(GUEST, JSON.stringify({ code, access: body.access_token, expires: Date.now() + body.expires_in * 1000 }));
  },
  clear() { sessionStorage.removeItem(GUEST); },
};

let refreshing = null;
async function refresh() {
  const tokens = readTokens();
  if (!tokens || !tokens.refresh) return false;
  if (!refreshing) {
    refreshing = (async () => {
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: tokens.refresh });
      try {
        const res = await fetch("/auth/token", { method: "POST", body: form });
        if (!res.ok) return false;
        auth.save(await res.json());
        return true;
      } catch { return false; }
    })().finally(() => setTimeout(() => { refreshing = null; }, 0));
  }
  return refreshing;
}

function headersFor(extra) {
  const h = new Headers(extra || {});
  const tokens = readTokens() || guest.token;
  if (tokens && !h.has("Authorization")) h.set("Authorization", "Bearer " + tokens.access);
  return h;
}

async function body(res) {
  const type = res.headers.get("content-type") || "";
  if (res.status === 204) return null;
  if (type.includes("json")) return res.json().catch(() => null);
  return res.text();
}

/** fetch() with the token; one refresh and retry on 401; errors as ApiError {status, reason}. */
export async function raw(path, init = {}, retry = true) {
  let res;
  try {
    res = await fetch(path, { ...init, headers: headersFor(init.headers) });
  } catch (error) {
    throw new ApiError(0, { reason: "offline", message: "no connection" });
  }
  if (res.status === 401 && retry && readTokens()) {
    if (await refresh()) return raw(path, init, false);
    auth.clear();
    auth.onLogout();
  }
  if (!res.ok && res.status !== 304) {
    const wait = Number.parseInt(res.headers.get("retry-after") || "", 10);
    throw new ApiError(res.status, await body(res), Number.isFinite(wait) ? wait : null);
  }
  return res;
}

export async function api(method, path, { json, form, headers, idempotent } = {}) {
  const h = new Headers(headers || {});
  let payload;
  if (json !== undefined) { h.set("Content-Type", "application/json"); payload = JSON.stringify(json); }
  if (form !== undefined) payload = new URLSearchParams(form);
  if (idempotent) h.set("Idempotency-Key", typeof idempotent === "string" ? idempotent : crypto.randomUUID());
  const res = await raw(path, { method, body: payload, headers: h });
  return body(res);
}

export const get = (path) => api("GET", path);

export async function login(email, password) {
  let res;
  try {
    res = await fetch("/auth/token", {
      method: "POST", body: new URLSearchParams({ grant_type: "password", username: email, password }),
    });
  } catch { throw new ApiError(0, { reason: "offline", message: "no connection" }); }
  const data = await body(res);
  if (!res.ok) throw new ApiError(res.status, data);
  auth.save(data);
  return data;
}

export async function logout() {
  const tokens = readTokens();
  auth.clear();
  if (tokens && tokens.refresh) {
    fetch("/auth/logout", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: tokens.refresh }),
    }).catch(() => {});
  }
}

/**
 * Server-Sent Events over fetch() (EventSource cannot send the Authorization header).
 * Calls onEvent(name, data) for each event; reconnects with Last-Event-ID until the server
 * sends `end` or `signal` aborts. Resolves when the stream is over.
 */
export async function stream(path, onEvent, { signal, onState } = {}) {
  let lastId = null;
  let delay = 500;
  while (!signal || !signal.aborted) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const res = await raw(path, { headers, signal });
      onState && onState("open");
      delay = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
          let name = "message", data = [];
          for (const line of block.split(/\r?\n/)) {
            if (line.startsWith(":")) continue;
            const [field, ...rest] = line.split(":");
            const text = rest.join(":").replace(/^ /, "");
            if (field === "event") name = text;
            else if (field === "data") data.push(text);
            else if (field === "id") lastId = text;
          }
          if (!data.length) continue;
          let parsed = data.join("\n");
          try { parsed = JSON.parse(parsed); } catch { /* plain text */ }
          onEvent(name, parsed);
          if (name === "end") return;
        }
      }
    } catch (error) {
      if (signal && signal.aborted) return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) throw error;
    }
    onState && onState("reconnecting");
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

/** The session code in what a camera read (a …/s/{code} URL or the bare 40-character code), or
 * null. It names its charger only through session-svc (POST /sessions/codes/lookup). */
export function sessionCodeIn(content) {
  let token = String(content || "").trim();
  if (token.includes("/s/")) token = token.split("/s/").pop();
  token = token.split(/[?#]/)[0];
  return /^[A-Za-z0-9_-]{40}$/.test(token) ? token : null;
}
