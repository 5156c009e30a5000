import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Metrics } from '../src/observe/metrics.js';

const run = promisify(execFile);
const RULES = 'deploy/prometheus/tokenwarden-rules.yml';
const MANIFEST = 'deploy/kubernetes/prometheusrule.yaml';
const TESTS = 'deploy/prometheus/tests';
const GENERATOR = 'deploy/prometheus/generate-prometheusrule.mjs';

/** GitHub-style anchors of a Markdown file's headings. */
function headingAnchors(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^#+\s+(.+)$/gm)].map((m) => m[1].trim().toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = parse(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert);

async function promtool(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args, { timeout: 60_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('shipped Prometheus alert rules', () => {
  it('pass promtool check rules', async () => {
    const r = await promtool('check', 'rules', RULES);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`SUCCESS: ${alerts.length} rules found`);
  });

  it('pass their promtool unit tests', async () => {
    const files = readdirSync(TESTS).filter((f) => f.endsWith('.yml'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const r = await promtool('test', 'rules', join(TESTS, f));
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('SUCCESS');
    }
  });

  it('every alert is exercised by a unit test that expects it to fire', () => {
    const tested = new Set<string>();
    for (const f of readdirSync(TESTS).filter((x) => x.endsWith('.yml'))) {
      const doc = parse(readFileSync(join(TESTS, f), 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] };
      for (const t of doc.tests) for (const a of t.alert_rule_test ?? []) if (a.exp_alerts.length) tested.add(a.alertname);
    }
    expect([...tested].sort()).toEqual(alerts.map((a) => a.alert!).sort());
  });

  it('covers the issue: expiry of unmanaged tokens, rotation, upstream refresh, sink, binding health, a 401 scrape', () => {
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'TokenwardenTokenExpiringSoon',
        'TokenwardenBindingRotationOverdue',
        'TokenwardenBindingTokenExpiringSoon',
        'TokenwardenRotationFailing',
        'TokenwardenUpstreamRefreshFailing',
        'TokenwardenSinkFailing',
        'TokenwardenBindingUnhealthy',
        'TokenwardenGuardedScrapeUnauthorized',
      ]),
    );
    expect(alerts.find((a) => a.alert === 'TokenwardenTokenExpiringSoon')!.expr).toContain('managed="false"');
    expect(alerts.find((a) => a.alert === 'TokenwardenUpstreamRefreshFailing')!.expr).toMatch(/increase\(tokenwarden_source_refresh_failures_total\[10m\]\)\)? > 0/);
  });

  it('each alert has a severity, a summary, a description and a runbook link to a heading of the docs the project ships', () => {
    for (const a of alerts) {
      expect(['warning', 'critical'], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
      const url = a.annotations?.runbook_url ?? '';
      // Relative to the repository: a file in docs/ and one of its headings, named after the alert.
      expect(url, a.alert).toBe(`docs/observability.md#${a.alert!.toLowerCase()}`);
      const [file, anchor] = url.split('#');
      expect(headingAnchors(readFileSync(file, 'utf8')), `${a.alert}: ${url}`).toContain(anchor);
    }
  });

  it('render with another runbook base for an installation, both as rules and as a PrometheusRule; a bad base is refused', async () => {
    const base = 'https://git.example.com/tokenwarden/blob/v1/docs/';
    const rendered = async (print: string) => parse((await run(process.execPath, [GENERATOR, '--runbook-base', base, '--print', print])).stdout);
    const asRules = (await rendered('rules')) as typeof rules;
    const asManifest = await rendered('prometheusrule');
    expect(asManifest).toMatchObject({ kind: 'PrometheusRule', spec: { groups: asRules.groups } });
    const urls = asRules.groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => r.annotations!.runbook_url);
    expect(urls).toEqual(alerts.map((a) => `${base}observability.md#${a.alert!.toLowerCase()}`));
    // Only the links change.
    expect(asRules.groups.flatMap((g) => g.rules).map((r) => r.expr)).toEqual(rules.groups.flatMap((g) => g.rules).map((r) => r.expr));
    const bad = await run(process.execPath, [GENERATOR, '--runbook-base', 'docs.example.com', '--print', 'rules']).catch((e) => e);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--runbook-base must be an http\(s\) URL ending in "\/"/);
  });

  it('expiry alerts are relative to the lifetime and the schedule, not a fixed number of days', () => {
    const expr = (name: string) => alerts.find((a) => a.alert === name)!.expr;
    expect(expr('TokenwardenTokenExpiringSoon')).toContain('tokenwarden_token_lifetime_seconds{managed="false"}');
    expect(expr('TokenwardenBindingTokenExpiringSoon')).toContain('tokenwarden_binding_token_issued_timestamp_seconds');
    expect(expr('TokenwardenBindingRotationOverdue')).toContain('tokenwarden_binding_next_rotation_timestamp_seconds');
    for (const a of alerts) expect(a.expr, a.alert).not.toMatch(/<\s*86400\b/);
  });

  it('only use metrics tokenwarden exposes (plus Prometheus own `up`)', async () => {
    const exposed = new Set((await new Metrics({ defaultMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name));
    const used = new Set(alerts.flatMap((a) => [...a.expr.matchAll(/\b(tokenwarden_[a-z_]+)/g)].map((m) => m[1])));
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((n) => !exposed.has(n))).toEqual([]);
  });

  it('the PrometheusRule manifest holds the same groups as the rules file', () => {
    const manifest = parse(readFileSync(MANIFEST, 'utf8'));
    expect(manifest).toMatchObject({ apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'tokenwarden' } });
    // If this fails: node deploy/prometheus/generate-prometheusrule.mjs
    expect(manifest.spec.groups).toEqual(rules.groups);
  });
});
