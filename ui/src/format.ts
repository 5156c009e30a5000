const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
const absolute = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });

const STEPS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 86_400_000],
  ['month', 30 * 86_400_000],
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1000],
];

/** "in 29 days", "3 hours ago". */
export function fromNow(iso: string, now = Date.now()): string {
  const diff = Date.parse(iso) - now;
  for (const [unit, ms] of STEPS) {
    if (Math.abs(diff) >= ms || unit === 'second') return relative.format(Math.round(diff / ms), unit);
  }
  return '';
}

export function when(iso: string): string {
  return absolute.format(new Date(iso));
}

/** Most specific first: an Edge user agent names Chrome and Safari too. */
const BROWSERS = ['HeadlessChrome', 'Edg', 'OPR', 'Firefox', 'Chrome', 'Safari'];

/** A short label for a user agent: "Prometheus/2.42.0", "curl/8.1", or a browser's name and major version. */
export function client(userAgent: string | null): string {
  if (!userAgent) return 'unknown client';
  if (userAgent.startsWith('Mozilla/')) {
    for (const name of BROWSERS) {
      const m = new RegExp(`\\b${name}/(\\d+)`).exec(userAgent);
      if (m) return `${name === 'Edg' ? 'Edge' : name} ${m[1]}`;
    }
  }
  const first = userAgent.split(' ')[0] ?? userAgent;
  return first.length > 40 ? `${first.slice(0, 40)}…` : first;
}
