import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

/**
 * The Docker engine cannot run here, so the Dockerfile is parsed and checked: multi-stage,
 * the runtime stage non-root and read-only-root friendly, nothing secret baked in, and the
 * same user, port and data path as the Kubernetes Deployment.
 */
interface Instruction {
  op: string;
  args: string;
  line: number;
}
interface Stage {
  from: string;
  name?: string;
  steps: Instruction[];
}

function parseDockerfile(text: string): Stage[] {
  const joined = text.replace(/\\\n/g, ' ');
  const stages: Stage[] = [];
  joined.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const [, op, args] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (!op) throw new Error(`cannot parse line ${i + 1}: ${line}`);
    const upper = op.toUpperCase();
    if (upper === 'FROM') {
      const [, image, name] = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      stages.push({ from: image, name, steps: [] });
      return;
    }
    if (!stages.length) throw new Error(`${upper} before FROM`);
    stages.at(-1)!.steps.push({ op: upper, args: args.replace(/\s+/g, ' '), line: i + 1 });
  });
  return stages;
}

const dockerfile = readFileSync('Dockerfile', 'utf8');
const stages = parseDockerfile(dockerfile);
const runtime = stages.at(-1)!;
const build = stages[0];
const steps = (stage: Stage, op: string) => stage.steps.filter((s) => s.op === op);
const deployment = parseAllDocuments(readFileSync('deploy/kubernetes/deployment.yaml', 'utf8'))[0].toJS();
const dockerignore = readFileSync('.dockerignore', 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

describe('Dockerfile', () => {
  it('is multi-stage on node:24-bookworm-slim (Node 24 LTS), compiling better-sqlite3 and the build in the first stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.from).toBe('node:24-bookworm-slim');
    const buildRuns = steps(build, 'RUN').map((s) => s.args).join('\n');
    expect(buildRuns).toMatch(/apt-get install .*python3.*make.*g\+\+/);
    expect(buildRuns).toContain('npm ci');
    expect(buildRuns).toContain('npm run build');
    expect(buildRuns).toContain('npm prune --omit=dev');
    // the runtime stage installs nothing: it copies the built result from the build stage
    expect(steps(runtime, 'RUN').map((s) => s.args).join('\n')).not.toMatch(/npm (ci|install)|apt-get install/);
    const copies = steps(runtime, 'COPY');
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) expect(c.args).toContain(`--from=${build.name}`);
    for (const what of ['/src/node_modules', '/src/dist', '/src/bin']) expect(copies.some((c) => c.args.includes(what))).toBe(true);
  });

  it('runs as the same non-root user as the Deployment, on the same ports', () => {
    const users = steps(runtime, 'USER');
    expect(users).toHaveLength(1);
    const [uid, gid] = users[0].args.split(':');
    expect(uid).not.toMatch(/^(root|0)$/);
    expect(Number(uid)).toBe(deployment.spec.template.spec.securityContext.runAsUser);
    expect(Number(gid)).toBe(deployment.spec.template.spec.securityContext.runAsGroup);
    // the user exists in the image with that uid
    expect(steps(runtime, 'RUN').some((s) => s.args.includes(`useradd --system --uid ${uid}`))).toBe(true);
    // USER comes after every RUN: nothing runs as root after the switch, and the process never does
    expect(users[0].line).toBeGreaterThan(Math.max(...steps(runtime, 'RUN').map((s) => s.line)));
    expect(steps(runtime, 'EXPOSE').map((s) => s.args)).toEqual([deployment.spec.template.spec.containers[0].ports.map((p: { containerPort: number }) => p.containerPort).join(' ')]);
  });

  it('is read-only-root friendly: the store lives on the /var/lib/tokenwarden volume, owned by that user', () => {
    expect(steps(runtime, 'VOLUME').map((s) => s.args)).toEqual(['["/var/lib/tokenwarden"]']);
    const env = steps(runtime, 'ENV').map((s) => s.args).join(' ');
    expect(env).toContain('TOKENWARDEN_STORE_URL=/var/lib/tokenwarden/tokenwarden.db');
    expect(env).toContain('TOKENWARDEN_LISTEN_HOST=0.0.0.0');
    const setup = steps(runtime, 'RUN').map((s) => s.args).join(' ');
    expect(setup).toContain('chown tokenwarden:tokenwarden /var/lib/tokenwarden');
    // application files belong to root: the service user cannot modify its own code
    for (const c of steps(runtime, 'COPY')) expect(c.args).toContain('--chown=root:root');
    const mounts = deployment.spec.template.spec.containers[0].volumeMounts.map((m: { mountPath: string }) => m.mountPath);
    expect(mounts).toContain('/var/lib/tokenwarden');
  });

  it('starts the CLI entry point that exists in the repository', () => {
    expect(steps(runtime, 'ENTRYPOINT').map((s) => JSON.parse(s.args))).toEqual([['node', '/app/bin/tokenwarden.cjs']]);
    expect(steps(runtime, 'CMD').map((s) => JSON.parse(s.args))).toEqual([['serve']]);
    expect(existsSync('bin/tokenwarden.cjs')).toBe(true);
    expect(steps(runtime, 'WORKDIR').map((s) => s.args)).toEqual(['/app']);
  });

  it('bakes in no secret: no secret-looking ENV or ARG, no key material copied, and .dockerignore keeps it out of the context', () => {
    for (const s of stages.flatMap((st) => st.steps.filter((x) => x.op === 'ENV' || x.op === 'ARG'))) {
      expect(s.args, `line ${s.line}`).not.toMatch(/(PASSWORD|SECRET|TOKEN(?!WARDEN_)|_KEY)\w*=/i);
    }
    expect(dockerfile).not.toMatch(/twd_[0-9A-Za-z]{12}_/);
    for (const c of stages.flatMap((st) => steps(st, 'COPY').concat(steps(st, 'ADD')))) expect(c.args).not.toMatch(/\.(env|key|pem|crt|token|db)\b/);
    expect(steps(runtime, 'ADD')).toHaveLength(0);
    for (const pattern of ['node_modules', 'test-output', '.data', '.git', '*.key', '*.pem', '*.token', '*.db', '.env']) expect(dockerignore).toContain(pattern);
  });

  it('everything the build stage copies exists and is not excluded by .dockerignore', () => {
    const sources = steps(build, 'COPY').flatMap((c) => c.args.split(' ').filter((a) => !a.startsWith('--')).slice(0, -1));
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'ui', 'bin']));
    for (const source of sources) {
      expect(existsSync(source), source).toBe(true);
      expect(dockerignore.includes(source), `${source} is ignored`).toBe(false);
    }
  });
});
