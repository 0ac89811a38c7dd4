import type { ParseArgsConfig } from 'node:util';
import { withCamelCaseKeys } from '@kestrel/core';

/** Option declarations in node:util parseArgs form. */
export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** What a command receives when it runs. */
export interface CommandContext {
  /** Parsed `--flag value` options (strings, booleans, or arrays for `multiple`). */
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  /** Positional arguments after the command name. */
  positionals: string[];
  /** `--json` was given: print machine-readable JSON on stdout only. */
  json: boolean;
  /** `--debug` was given: print stack traces. */
  debug: boolean;
  /** Where to write results (stdout) and human messages (stderr). */
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/**
 * One CLI command. Modules in `commands/` export `commands: CommandSpec[]`; the CLI discovers them at
 * start-up, so a package adds a command by adding a file. Keep modules light: import heavy packages
 * inside `run`, so `kestrel --help` stays fast.
 */
export interface CommandSpec {
  /** Words that select the command, e.g. `['eval', 'coco']`. */
  path: string[];
  /** One line for `kestrel --help`. */
  summary: string;
  /** Usage and option text for `kestrel <command> --help`. */
  help: string;
  /** Options beyond the global ones (`--json`, `--debug`, `--help`). */
  options?: OptionSpec;
  /** Allow positional arguments (default true). */
  allowPositionals?: boolean;
  /** Run; return the exit code (default 0). Throw KestrelError for user errors. */
  run(ctx: CommandContext): Promise<number | void>;
}

/** Print a value as JSON (one document on stdout). */
export function printJson(ctx: CommandContext, value: unknown): void {
  // camelCase is the case of JSON outputs; snake_case top-level keys stay as aliases for one release
  ctx.out.write(JSON.stringify(withCamelCaseKeys(value), null, 2) + '\n');
}
