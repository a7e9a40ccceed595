// Money as the API writes it: exact decimal strings. Never parsed to a float: the integer
// part goes through BigInt (grouped the local way), the fraction is kept digit for digit.

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

function parts(locale) {
  const sample = new Intl.NumberFormat(locale).formatToParts(-1234.5);
  const find = (type, fallback) => (sample.find((p) => p.type === type) || { value: fallback }).value;
  return { decimal: find("decimal", "."), minus: find("minusSign", "-") };
}

const cache = new Map();
function localeParts(locale) {
  if (!cache.has(locale)) {
    cache.set(locale, {
      ...parts(locale),
      // es-AR groups from four digits (1.234); "always" makes Intl agree with itself.
      integer: new Intl.NumberFormat(locale, { useGrouping: "always", maximumFractionDigits: 0 }),
    });
  }
  return cache.get(locale);
}

/** "-1234.50" in es-AR -> "-1.234,50"; an unreadable value is shown as it came. */
export function formatDecimal(value, locale) {
  const m = DECIMAL.exec(String(value));
  if (!m) return String(value);
  const [, sign, int, frac] = m;
  const p = localeParts(locale);
  const grouped = p.integer.format(BigInt(int));
  const negative = sign === "-" && /[1-9]/.test(int + (frac || ""));
  return (negative ? p.minus : "") + grouped + (frac ? p.decimal + frac : "");
}

/** Sign of a decimal string: -1, 0 or 1. */
export function signOf(value) {
  const m = DECIMAL.exec(String(value));
  if (!m || !/[1-9]/.test(m[2] + (m[3] || ""))) return 0;
  return m[1] === "-" ? -1 : 1;
}

/** Compares two decimal strings exactly (for sorting). */
export function compareDecimal(a, b) {
  const ma = DECIMAL.exec(String(a));
  const mb = DECIMAL.exec(String(b));
  if (!ma || !mb) return String(a).localeCompare(String(b));
  const scale = Math.max((ma[3] || "").length, (mb[3] || "").length);
  const scaled = (m) => {
    const v = BigInt(m[2] + (m[3] || "").padEnd(scale, "0"));
    return m[1] === "-" ? -v : v;
  };
  const x = scaled(ma);
  const y = scaled(mb);
  return x < y ? -1 : x > y ? 1 : 0;
}
