import type { Command } from 'commander';
import { CliError, EXIT, type ApiClient } from './client.cjs';
import { type OutputFormat, print } from './output.cjs';

type Ctx = () => { client: ApiClient; output: OutputFormat };

export function registerNotifyCommands(program: Command, ctx: Ctx): void {
  const notify = program.command('notify').description('webhook notifications: recent notices, and a test notice');
  notify
    .command('list')
    .description('recent notices and their delivery state (needs audit.read)')
    .action(async () => {
      const { client, output } = ctx();
      const res = await client.request('GET', '/api/v1/notifications');
      if (!res.enabled && output === 'table') process.stderr.write('notifications are off (notifications.webhookUrl is not set)\n');
      print(output, res.items, [
        ['created', (n) => n.createdAt],
        ['kind', (n) => n.kind],
        ['subject', (n) => n.subject],
        ['state', (n) => n.state],
        ['attempts', (n) => n.attempts],
        ['summary', (n) => n.summary],
      ]);
    });
  notify
    .command('test')
    .description('send a signed test notice to the webhook now (needs admin:token)')
    .action(async () => {
      const { client, output } = ctx();
      const res = await client.request('POST', '/api/v1/notifications/test');
      if (output === 'json') print('json', res);
      else process.stdout.write(res.delivered ? 'test notice delivered\n' : `test notice not delivered: ${res.error}\n`);
      if (!res.delivered) throw new CliError('the webhook did not accept the test notice', EXIT.failure);
    });
}
