// Writes deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/tokenwarden-rules.yml,
// so the Prometheus Operator and a plain Prometheus get the same groups (test/alerts.test.ts checks it).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const rules = parse(readFileSync(join(here, 'tokenwarden-rules.yml'), 'utf8'));
const manifest = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: {
    name: 'tokenwarden',
    labels: { 'app.kubernetes.io/name': 'tokenwarden', 'app.kubernetes.io/component': 'alerts' },
  },
  spec: { groups: rules.groups },
};
const header = '# Generated from deploy/prometheus/tokenwarden-rules.yml by deploy/prometheus/generate-prometheusrule.mjs; edit that file instead.\n';
writeFileSync(join(here, '..', 'kubernetes', 'prometheusrule.yaml'), header + stringify(manifest, { lineWidth: 0 }));
