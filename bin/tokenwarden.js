#!/usr/bin/env node
import { answeredAtOnce } from '../dist/cli/fast.js';

if (!answeredAtOnce(process.argv)) await import('../dist/cli/index.js');
