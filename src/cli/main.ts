import { parseArgs, type ParseArgsConfig } from 'node:util';
import { MavmqError, ErrorCodes, ExitCodes, exitCodeFor, formatProblems } from '../errors.js';
import { createLogger, type Logger } from '../obs/logger.js';
import { COMMANDS, type CliIo, type Command } from './commands.js';

/**
 * argv -> command. I/O is injected (CliIo) so tests run commands in-process and read what they print.
 * Exit codes: 0 ok, 1 failure, 2 usage, 3 config invalid, 4 key problem, 5 policy invalid, 6 not yet.
 */
export function defaultIo(): CliIo {
  return {
    out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
    err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
    env: process.env,
    makeLogger: (level?: string): Logger => createLogger(level === undefined ? {} : { level }),
    untilSignal: (controller: AbortController) => {
      const onSignal = (): void => controller.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      return new Promise<void>((resolve) => {
        if (controller.signal.aborted) resolve();
        controller.signal.addEventListener('abort', () => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve();
        }, { once: true });
      });
    },
  };
}

export function usage(): string {
  const lines = ['mavmq: MAVLink companion daemon (router, encrypted MQTT relay, ground gateway)', '', 'Usage: mavmq <command> [options]', '', 'Commands:'];
  for (const c of COMMANDS) lines.push(`  ${c.name.padEnd(16)} ${c.summary}`);
  lines.push('', 'Run `mavmq <command> --help` for options and examples.', 'Exit codes: 0 ok, 1 failure, 2 usage, 3 config invalid, 4 key problem, 5 policy invalid, 6 not yet implemented.');
  return lines.join('\n');
}

function commandHelp(c: Command): string {
  const lines = [`mavmq ${c.name}: ${c.summary}`, '', `Usage: mavmq ${c.name} ${c.usage}`, ''];
  if (Object.keys(c.options).length > 0) {
    lines.push('Options:');
    for (const [name, o] of Object.entries(c.options)) {
      lines.push(`  --${name}${o.type === 'string' ? ' VALUE' : ''}${o.multiple ? ' (repeatable)' : ''}`.padEnd(34) + o.help);
    }
    lines.push('');
  }
  if (c.examples.length > 0) lines.push('Examples:', ...c.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

export async function runCli(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  // Two-word commands ("config check", "keys new") are matched first.
  const two = `${argv[0] ?? ''} ${argv[1] ?? ''}`;
  let cmd = COMMANDS.find((c) => c.name === two);
  let rest = argv.slice(2);
  if (!cmd) {
    cmd = COMMANDS.find((c) => c.name === argv[0]);
    rest = argv.slice(1);
  }
  if (!cmd) {
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      io.out(usage());
      return argv.length === 0 ? ExitCodes.USAGE : ExitCodes.OK;
    }
    if (argv[0] === '--version') {
      io.out('mavmq 0.1.0');
      return ExitCodes.OK;
    }
    io.err(`mavmq: unknown command "${argv.slice(0, 2).join(' ')}"\n\n${usage()}`);
    return ExitCodes.USAGE;
  }
  const options: ParseArgsConfig['options'] = { help: { type: 'boolean', short: 'h' } };
  for (const [name, o] of Object.entries(cmd.options)) options[name] = { type: o.type, ...(o.multiple ? { multiple: true } : {}) };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    io.err(`mavmq ${cmd.name}: ${(err as Error).message}\n\n${commandHelp(cmd)}`);
    return ExitCodes.USAGE;
  }
  if (parsed.values['help'] === true) {
    io.out(commandHelp(cmd));
    return ExitCodes.OK;
  }
  try {
    return await cmd.run({ values: parsed.values, positionals: parsed.positionals }, io);
  } catch (err) {
    if (err instanceof MavmqError) {
      io.err(`mavmq ${cmd.name}: ${err.message}${err.problems.length ? `\n${formatProblems(err.problems)}` : ''}`);
      if (err.code === ErrorCodes.USAGE) io.err(`\n${commandHelp(cmd)}`);
    } else {
      io.err(`mavmq ${cmd.name}: unexpected error: ${(err as Error).stack ?? String(err)}`);
    }
    return exitCodeFor(err);
  }
}
