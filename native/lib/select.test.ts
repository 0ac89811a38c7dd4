import { describe, it, expect } from 'vitest';
import { isKestrelError } from '@kestrel/core';
import { getKernels, availableBackends, backendInfo, portableKernels } from './index.js';

describe('getKernels', () => {
  it('portable on request; auto returns a backend listed by availableBackends; backendInfo agrees', async () => {
    expect(await getKernels({ backend: 'portable' })).toBe(portableKernels);
    const all = await availableBackends();
    expect(all[0]).toBe(portableKernels);
    const auto = await getKernels();
    expect(all).toContain(auto);
    const info = backendInfo();
    expect(info.default).toBe(auto.name);
    expect(info.native.loaded).toBe(all.length > 1);
    if (all.length > 1) expect(await getKernels({ backend: 'native' })).toBe(all[1]);
    else {
      const e = await getKernels({ backend: 'native' }).catch((x: unknown) => x);
      expect(isKestrelError(e, 'E_BACKEND_UNAVAILABLE')).toBe(true);
    }
  });
  // CI=true is a fresh `npm ci`, whose install script builds the addon: a build that did not load there is a
  // broken release, not a machine without a compiler. KESTREL_PORTABLE_ONLY=1 is for a CI job that means it.
  it('with CI=true the addon npm ci built loads; elsewhere a missing addon is printed', async () => {
    await getKernels();
    const info = backendInfo();
    if (process.env.CI && process.env.KESTREL_PORTABLE_ONLY !== '1') {
      expect(info.native.loaded, `CI: the native addon did not load (${info.native.reason ?? 'no reason'})`).toBe(true);
    } else if (!info.native.loaded) {
      console.warn(`select.test: the native addon is not loaded here (${info.native.reason ?? 'no reason'}); only the portable backend was checked`);
    }
  });
  it('rejects an unknown backend', async () => {
    const e = await getKernels({ backend: 'tpu' as 'auto' }).catch((x: unknown) => x);
    expect(isKestrelError(e, 'E_OPTIONS')).toBe(true);
  });
});
