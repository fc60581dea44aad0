// Plugpay's service worker: the app shell is cached so the app opens without a connection; the
// data (account, sessions, receipts) lives in IndexedDB (store.js), not here. API calls always go
// to the network: never serve a stale balance or session as if it were live.
const SHELL = "plugpay-shell-v1";
const FILES = [
  "./", "index.html", "app.js", "guest.js", "store.js", "manifest.json", "icon.svg", "icon-192.png",
  "shared/base.css", "shared/api.js", "shared/card.js", "shared/dom.js", "shared/format.js", "shared/reasons.js",
  "vendor/jsqr/jsQR.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith("/app/")) return;
  // Network first (a new version is picked up at once), the cached shell when offline.
  event.respondWith(
    fetch(event.request).then((response) => {
      if (response.ok) {
        const copy = response.clone();
        caches.open(SHELL).then((cache) => cache.put(event.request, copy));
      }
      return response;
    }).catch(() => caches.match(event.request, { ignoreSearch: true }).then((hit) => hit || caches.match("index.html"))),
  );
});
