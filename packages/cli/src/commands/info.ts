import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

/** `kestrel info`: what this installation has (versions, native kernels, backends). */
export const commands: CommandSpec[] = [
  {
    path: ['info'],
    summary: 'show versions and which kernels/backends are available',
    help: 'Usage: kestrel info [--json]\n\nPrints the Node.js version, the platform and which compute backends load here.',
    async run(ctx) {
      const info: Record<string, unknown> = {
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
      };
      try {
        const native = await import('@kestrel/native');
        info.backends = (await native.availableBackends()).map((k) => k.name);
        info.kernels = native.backendInfo();
        info.cuda = await native.cudaAvailability();
      } catch (e) {
        info.kernels = { error: (e as Error).message };
      }
      if (ctx.json) printJson(ctx, info);
      else for (const [k, v] of Object.entries(info)) ctx.out.write(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}\n`);
    },
  },
];
