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
