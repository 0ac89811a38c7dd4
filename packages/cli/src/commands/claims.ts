import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

const HELP = `Usage: kestrel claims --fpr P [--confidence 0.95] [--json]
       kestrel claims --bench RESULT.json [--fpr P] [--json]
       kestrel claims --fp K --negatives N [--fpr P] [--json]

With --fpr alone: how many consecutive defect-free parts without a single false alarm are needed
to support "false-positive rate <= P" at 95 % confidence:
  exact Clopper-Pearson, one-sided (the usual reading of such a claim): smallest n with (1-P)^n <= 0.05
  rule of three (approximation of the one-sided bound): n ~ 3/P
  exact Clopper-Pearson, two-sided interval (stricter): smallest n with (1-P)^n <= 0.025

With --bench (a JSON file with {"fp": K, "negatives": N}, or "tn" instead of "negatives", or
either under "confusion") or --fp/--negatives: the FPR range the data support, as the exact
two-sided 95 % Clopper-Pearson interval and the one-sided 95 % upper bound. Adding --fpr says
whether the data support that claim.`;

/** A flag's number: undefined when absent, NaN when not a (non-negative integer, if asked) number. */
function num(v: unknown, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v).trim();
  const x = Number(s);
  if (s === '' || !Number.isFinite(x) || (integer && (!Number.isInteger(x) || x < 0))) return Number.NaN;
  return x;
}

function fmtP(x: number): string {
  if (x === 0 || x === 1) return String(x);
  return x < 1e-3 ? x.toExponential(3) : x.toPrecision(4);
}

/** `kestrel claims`: parts needed for an FPR claim, and the FPR range a bench result supports. */
export const commands: CommandSpec[] = [
  {
    path: ['claims'],
    summary: 'false-positive-rate claims: parts needed at 95 %, and the FPR range bench data support',
    help: HELP,
    allowPositionals: false,
    options: {
      fpr: { type: 'string' },
      bench: { type: 'string' },
      fp: { type: 'string' },
      negatives: { type: 'string' },
      confidence: { type: 'string' },
    },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const bad = (flag: string, v: unknown, want: string): never => {
        throw new KestrelError('E_OPTIONS', `--${flag} ${String(v)}: expected ${want}. Run "kestrel claims --help".`);
      };
      const fpr = num(ctx.values.fpr, false);
      if (fpr !== undefined && !(fpr > 0 && fpr < 1)) bad('fpr', ctx.values.fpr, 'a rate between 0 and 1, e.g. 7.2e-6');
      const confidence = num(ctx.values.confidence, false) ?? 0.95;
      if (!(confidence > 0 && confidence < 1)) bad('confidence', ctx.values.confidence, 'a level between 0 and 1, e.g. 0.95');
      const fpFlag = num(ctx.values.fp, true);
      const negFlag = num(ctx.values.negatives, true);
      if (fpFlag !== undefined && Number.isNaN(fpFlag)) bad('fp', ctx.values.fp, 'a non-negative integer');
      if (negFlag !== undefined && Number.isNaN(negFlag)) bad('negatives', ctx.values.negatives, 'a non-negative integer');
      const benchPath = ctx.values.bench;
      const ev = await import('@kestrel/eval');

      let counts: { fp: number; negatives: number } | undefined;
      if (typeof benchPath === 'string') {
        if (fpFlag !== undefined || negFlag !== undefined) throw new KestrelError('E_OPTIONS', 'give either --bench FILE or --fp/--negatives, not both');
        const { readFile } = await import('node:fs/promises');
        let text: string;
        try {
          text = await readFile(benchPath, 'utf8');
        } catch (e) {
          throw new KestrelError('E_IO', `cannot read bench result ${benchPath}: ${(e as Error).message}`, { cause: e });
        }
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch (e) {
          throw new KestrelError('E_DATA_FORMAT', `bench result ${benchPath} is not valid JSON: ${(e as Error).message}`, { cause: e });
        }
        counts = ev.benchFpCounts(json, `bench result ${benchPath}`);
      } else if (fpFlag !== undefined || negFlag !== undefined) {
        if (fpFlag === undefined || negFlag === undefined) throw new KestrelError('E_OPTIONS', '--fp and --negatives go together');
        counts = ev.benchFpCounts({ fp: fpFlag, negatives: negFlag }, 'flags');
      }
      if (!counts && fpr === undefined) throw new KestrelError('E_OPTIONS', 'give --fpr P, or --bench FILE, or --fp K --negatives N. Run "kestrel claims --help".');

      const pct = `${+(confidence * 100).toFixed(6)} %`;
      const result: Record<string, unknown> = {};
      if (fpr !== undefined) {
        const req = ev.fprClaimRequirement(fpr, confidence);
        result.requirement = req;
        if (!ctx.json) {
          const p = req.partsNeeded;
          ctx.out.write(`Claim: false-positive rate <= ${fmtP(fpr)} at ${pct} confidence\n`);
          ctx.out.write('Consecutive defect-free parts with zero false alarms needed:\n');
          ctx.out.write(`  exact Clopper-Pearson, one-sided upper bound <= p : ${p.clopperPearsonOneSided.toLocaleString('en-US')}\n`);
          if (p.ruleOfThree !== null) ctx.out.write(`  rule of three (3/p, approximates the one-sided)   : ${p.ruleOfThree.toLocaleString('en-US')}\n`);
          ctx.out.write(`  exact Clopper-Pearson, two-sided interval <= p    : ${p.clopperPearsonTwoSided.toLocaleString('en-US')}\n`);
          ctx.out.write('One false alarm among them and the count starts over with a larger n.\n');
        }
      }
      if (counts) {
        const e = ev.fprEvidence(counts.fp, counts.negatives, confidence, fpr);
        result.evidence = e;
        if (!ctx.json) {
          if (fpr !== undefined) ctx.out.write('\n');
          ctx.out.write(`Observed: ${e.fp} false alarm(s) in ${e.negatives.toLocaleString('en-US')} defect-free parts (FPR ${fmtP(e.fpr)})\n`);
          ctx.out.write(`  ${pct} Clopper-Pearson interval (two-sided): [${fmtP(e.interval[0])}, ${fmtP(e.interval[1])}]\n`);
          ctx.out.write(`  ${pct} upper bound (one-sided)             : ${fmtP(e.upperOneSided)}  -> the data support "FPR <= ${fmtP(e.upperOneSided)}"\n`);
          if (e.claimSupported !== undefined) {
            ctx.out.write(`  claim FPR <= ${fmtP(fpr!)}: ${e.claimSupported ? 'supported' : 'NOT supported'} by these data`);
            if (e.additionalCleanPartsNeeded !== undefined && !e.claimSupported) ctx.out.write(` (${e.additionalCleanPartsNeeded.toLocaleString('en-US')} more clean parts with no false alarm needed)`);
            ctx.out.write('\n');
          }
        }
      }
      if (ctx.json) printJson(ctx, result);
    },
  },
];
