// The user's mobile database (patent FIG. 6, 624): a local copy of the account, recent sessions
// and receipts in IndexedDB, synchronised with the back office whenever the app is online, so
// history and receipts open without a connection.
const DB = "plugpay";
const VERSION = 1;
const KEEP_SESSIONS = 50;
let opening = null;

function open() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains("kv")) db.createObjectStore("kv");
        if (!db.objectStoreNames.contains("sessions")) db.createObjectStore("sessions", { keyPath: "session_id" });
        if (!db.objectStoreNames.contains("receipts")) db.createObjectStore("receipts", { keyPath: "session_id" });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return opening;
}

async function tx(store, mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, mode);
    const result = fn(t.objectStore(store));
    t.oncomplete = () => resolve(result && "result" in result ? result.result : result);
    t.onerror = () => reject(t.error);
  });
}

export const store = {
  get: (key) => tx("kv", "readonly", (s) => s.get(key)),
  set: (key, value) => tx("kv", "readwrite", (s) => s.put({ value, saved_at: new Date().toISOString() }, key)),
  async value(key) { const row = await store.get(key); return row ? row.value : null; },
  async savedAt(key) { const row = await store.get(key); return row ? row.saved_at : null; },
  putSession: (session) => tx("sessions", "readwrite", (s) => s.put(session)),
  getSession: (id) => tx("sessions", "readonly", (s) => s.get(id)),
  async sessions() {
    const all = await tx("sessions", "readonly", (s) => s.getAll());
    return all.sort((a, b) => String(b.session_started_at || b.updated_at || "").localeCompare(String(a.session_started_at || a.updated_at || "")));
  },
  async putSessions(items) {
    await tx("sessions", "readwrite", (s) => { for (const item of items) s.put(item); });
    const all = await store.sessions();
    const drop = all.slice(KEEP_SESSIONS).map((x) => x.session_id);
    if (drop.length) await tx("sessions", "readwrite", (s) => { for (const id of drop) s.delete(id); });
  },
  putReceipt: (receipt) => tx("receipts", "readwrite", (s) => s.put(receipt)),
  getReceipt: (id) => tx("receipts", "readonly", (s) => s.get(id)),
  async clear() {
    const db = await open();
    await Promise.all(["kv", "sessions", "receipts"].map((name) => new Promise((resolve) => {
      const t = db.transaction(name, "readwrite");
      t.objectStore(name).clear();
      t.oncomplete = resolve;
      t.onerror = resolve;
    })));
  },
};
