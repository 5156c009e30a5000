// `node --import ./test/support/load-log.mjs …`: records which modules a process loads (load-log-hooks.mjs).
import { register } from 'node:module';

register('./load-log-hooks.mjs', import.meta.url);
