// Writes deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/tokenwarden-rules.yml,
// so the Prometheus Operator and a plain Prometheus get the same groups (test/alerts.test.ts checks it).
//
// Each rule's runbook_url is docs/observability.md#<alert>, relative to the repository. To point
// the links at where your copy of the docs is served, give the base that "observability.md" sits
// under, and print the result instead of regenerating the shipped manifest:
//   node deploy/prometheus/generate-prometheusrule.mjs --runbook-base https://git.example.com/tokenwarden/blob/main/docs/ --print rules > tokenwarden-rules.yml
//   node deploy/prometheus/generate-prometheusrule.mjs --runbook-base https://… --print prometheusrule | kubectl apply -f -
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';

const DOCS = 'docs/';
const { values } = parseArgs({ options: { 'runbook-base': { type: 'string' }, print: { type: 'string' } } });
const base = values['runbook-base'];
if (base !== undefined && !/^https?:\/\/\S+\/$/.test(base)) {
  process.stderr.write('--runbook-base must be an http(s) URL ending in "/", the folder that holds observability.md (e.g. https://git.example.com/tokenwarden/blob/main/docs/)\n');
  process.exit(2);
}
if (values.print !== undefined && !['rules', 'prometheusrule'].includes(values.print)) {
  process.stderr.write('--print takes "rules" (for rule_files:) or "prometheusrule" (for the Prometheus Operator)\n');
  process.exit(2);
}

const here = dirname(fileURLToPath(import.meta.url));
const rules = parse(readFileSync(join(here, 'tokenwarden-rules.yml'), 'utf8'));
if (base !== undefined) {
  for (const group of rules.groups) {
    for (const rule of group.rules) {
      const url = rule.annotations?.runbook_url;
      if (url?.startsWith(DOCS)) rule.annotations.runbook_url = base + url.slice(DOCS.length);
    }
  }
}
const manifest = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: {
    name: 'tokenwarden',
    labels: { 'app.kubernetes.io/name': 'tokenwarden', 'app.kubernetes.io/component': 'alerts' },
  },
  spec: { groups: rules.groups },
};
if (values.print === 'rules') process.stdout.write(stringify(rules, { lineWidth: 0 }));
else if (values.print === 'prometheusrule') process.stdout.write(stringify(manifest, { lineWidth: 0 }));
else {
  if (base !== undefined) {
    process.stderr.write('--runbook-base changes the links for your installation: add --print rules or --print prometheusrule rather than rewriting the shipped manifest\n');
    process.exit(2);
  }
  const header = '# Generated from deploy/prometheus/tokenwarden-rules.yml by deploy/prometheus/generate-prometheusrule.mjs; edit that file instead.\n';
  writeFileSync(join(here, '..', 'kubernetes', 'prometheusrule.yaml'), header + stringify(manifest, { lineWidth: 0 }));
}
