// Pure formatting helpers shared by the page's scripts (and tested with `node --test`).

// A base-unit amount (wei) as a decimal with at most `places` decimals, thousands grouped;
// a non-zero amount too small to show says so instead of printing 0.
export function formatUnits(value, decimals = 18, places = 4) {
  const units = BigInt(value);
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const base = 10n ** BigInt(decimals);
  const whole = abs / base;
  const fraction = (abs % base).toString().padStart(decimals, "0").slice(0, places).replace(/0+$/, "");
  if (abs > 0n && whole === 0n && !fraction) return `${negative ? "> -" : "< "}0.${"0".repeat(places - 1)}1`;
  const grouped = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (negative ? "-" : "") + grouped + (fraction ? "." + fraction : "");
}

// "in 42 s", "in 3 min", "2 h ago".
export function inSeconds(seconds) {
  const s = Math.abs(Math.round(seconds));
  const text = s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

// Beats in a bar from a time signature ("3/4" → 3, "7/8" → 7), 1-16, 4 when unreadable.
export function beatsOf(timeSignature) {
  const beats = parseInt(String(timeSignature).split("/")[0], 10);
  return Number.isFinite(beats) && beats >= 1 ? Math.min(16, beats) : 4;
}

// A mix gain: dB on the fader → the linear gain the node takes.
export function dbToGain(db) { return Math.round(10 ** (db / 20) * 1000) / 1000; }

