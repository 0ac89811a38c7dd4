/**
 * What `kestrel serve` / `kestrel watch` need from the CLI: parsed flags and the two output streams.
 * Declared here (not imported from @kestrel/cli) so the CLI can depend on this package without a cycle.
 */
export interface CliContext {
  /** Parsed `--flag value` options (strings, booleans, or arrays for `multiple`). */
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  /** Positional arguments after the command name. */
  positionals: string[];
  /** `--json` was given: only JSON lines on stdout, fewer human messages on stderr. */
  json: boolean;
  /** Results (stdout) and human messages (stderr). */
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/**
 * Run until SIGTERM or SIGINT, then `shutdown` once: `kestrel serve: SIG: <what>` when it starts, the line
 * `shutdown` returns when it ends (exit code 0), or the shutdown error (exit code 1).
 */
export function runUntilSignal(ctx: CliContext, what: string, shutdown: () => Promise<string>): Promise<number> {
  return new Promise<number>((resolveRun) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      ctx.err.write(`kestrel serve: ${sig}: ${what}\n`);
      shutdown().then((done) => {
        ctx.err.write(`kestrel serve: ${done}\n`);
        resolveRun(0);
      }, (e: unknown) => {
        ctx.err.write(`kestrel serve: shutdown error: ${(e as Error).message}\n`);
        resolveRun(1);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
