import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { KestrelError } from '@kestrel/core';
import type { CommandSpec, CommandContext } from './command.js';
import { attachProgressBar } from './progress-bar.js';

export type { CommandSpec, CommandContext, OptionSpec } from './command.js';
export { printJson } from './command.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Load every command module in dist/commands (discovered, so packages add commands by adding files). */
export async function loadCommands(): Promise<CommandSpec[]> {
  const dir = join(here, 'commands');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.js')).sort();
  const out: CommandSpec[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { commands?: CommandSpec[] };
    if (Array.isArray(mod.commands)) out.push(...mod.commands);
  }
  return out.sort((a, b) => a.path.join(' ').localeCompare(b.path.join(' ')));
}

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(here, '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function globalHelp(cmds: CommandSpec[], v: string): string {
  const w = Math.max(...cmds.map((c) => c.path.join(' ').length), 8);
  return [
    `kestrel ${v} — ask questions about images and measure the answers`,
    '',
    'Usage: kestrel <command> [options]',
    '',
    'Commands:',
    ...cmds.map((c) => `  ${c.path.join(' ').padEnd(w)}  ${c.summary}`),
    '',
    'Global options:',
    '  --json      machine-readable JSON on stdout',
    '  --debug     print stack traces on errors',
    '  --help      help for a command (kestrel <command> --help)',
    '  --version   print the version',
    '',
  ].join('\n');
}

/** Run the CLI with the given arguments; resolves to the exit code. */
export async function main(argv: string[], io: { out?: NodeJS.WritableStream; err?: NodeJS.WritableStream } = {}): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  const debug = argv.includes('--debug');
  try {
    const cmds = await loadCommands();
    const v = await version();
    if (argv[0] === '--version' || argv[0] === '-v') { out.write(v + '\n'); return 0; }
    // Longest command path that matches the leading words.
    let cmd: CommandSpec | undefined;
    for (const c of cmds) {
      if (c.path.every((w, i) => argv[i] === w) && (!cmd || c.path.length > cmd.path.length)) cmd = c;
    }
    if (!cmd) {
      if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') { out.write(globalHelp(cmds, v)); return 0; }
      const prefix = cmds.filter((c) => c.path[0] === argv[0]);
      if (prefix.length) {
        out.write(`Commands under "${argv[0]}":\n${prefix.map((c) => `  ${c.path.join(' ')}  ${c.summary}`).join('\n')}\n`);
        return argv.includes('--help') ? 0 : 2;
      }
      throw new KestrelError('E_OPTIONS', `unknown command "${argv[0]}". Run "kestrel --help" to list commands.`);
    }
    const rest = argv.slice(cmd.path.length);
    if (rest.includes('--help') || rest.includes('-h')) { out.write(cmd.help.trimEnd() + '\n'); return 0; }
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: { json: { type: 'boolean' }, debug: { type: 'boolean' }, ...(cmd.options ?? {}) },
        allowPositionals: cmd.allowPositionals ?? true,
        strict: true,
      });
    } catch (e) {
      throw new KestrelError('E_OPTIONS', `${(e as Error).message}. Run "kestrel ${cmd.path.join(' ')} --help".`);
    }
    const ctx: CommandContext = {
      values: parsed.values as CommandContext['values'],
      positionals: parsed.positionals,
      json: parsed.values.json === true,
      debug,
      out,
      err,
    };
    const detach = attachProgressBar(err as NodeJS.WriteStream);
    try {
      const code = await cmd.run(ctx);
      return typeof code === 'number' ? code : 0;
    } finally {
      detach();
    }
  } catch (e) {
    if (e instanceof KestrelError) {
      err.write(`kestrel: ${e.code}: ${e.message}\n`);
      if (debug && e.stack) err.write(e.stack + '\n');
      return 1;
    }
    err.write(`kestrel: internal error: ${(e as Error)?.message ?? String(e)}\n`);
    if (debug && (e as Error)?.stack) err.write((e as Error).stack + '\n');
    else err.write('Run again with --debug for a stack trace.\n');
    return 1;
  }
}
