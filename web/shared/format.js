// Numbers as people read them.
const lang = navigator.language || "en";

export function money(m, fallbackCurrency) {
  if (m === null || m === undefined) return "—";
  const minor = typeof m === "object" ? m.amount_minor : m;
  const currency = (typeof m === "object" ? m.currency : fallbackCurrency) || "EUR";
  const digits = currency === "JPY" ? 0 : 2;
  try {
    return new Intl.NumberFormat(lang, { style: "currency", currency }).format(minor / 10 ** digits);
  } catch {
    return (minor / 10 ** digits).toFixed(digits) + " " + currency;
  }
}

export const decimalMoney = (value, currency) =>
  value === null || value === undefined ? null : new Intl.NumberFormat(lang, { style: "currency", currency }).format(Number(value));

export const kwh = (wh) => (wh === null || wh === undefined ? "—" : (wh / 1000).toFixed(2) + " kWh");
export const kw = (w) => (w === null || w === undefined ? "—" : (w / 1000).toFixed(1) + " kW");

export function duration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "—";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return h ? `${h} h ${String(m).padStart(2, "0")} min` : `${m}:${String(s).padStart(2, "0")} min`;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(lang, { dateStyle: "medium", timeStyle: "short" });
}

export const day = (iso) => new Date(iso).toISOString().slice(0, 10);

/** Euros typed by a person ("12,50" or "12.50") to minor units; null when not a number. */
export function toMinor(text) {
  const n = Number(String(text).replace(",", ".").trim());
  return Number.isFinite(n) ? Math.round(n * 100) : null;
}
