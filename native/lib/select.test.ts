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
  it('rejects an unknown backend', async () => {
    const e = await getKernels({ backend: 'tpu' as 'auto' }).catch((x: unknown) => x);
    expect(isKestrelError(e, 'E_OPTIONS')).toBe(true);
  });
});
