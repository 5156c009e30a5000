#!/usr/bin/env node
'use strict';
// CommonJS, like everything an HTTP command loads (src/cli/*.cts): no ES module loader unless a command needs it.
if (!require('../dist/cli/fast.cjs').answeredAtOnce(process.argv)) {
  // Long-running commands (serve, gate, agent) keep the event loop alive; the rest exit with their code.
  require('../dist/cli/main.cjs').main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
