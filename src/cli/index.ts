import { main } from './main.js';

// Long-running commands (serve, gate, agent) keep the event loop alive; the rest exit with their code.
main(process.argv).then((code) => {
  process.exitCode = code;
});
