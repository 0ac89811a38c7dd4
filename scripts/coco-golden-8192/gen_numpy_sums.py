#!/usr/bin/env python3
"""np.add.reduce / np.mean of adversarial float64 arrays, as numpy itself computes them.

The arrays are not stored: both this script and test/coco-numpy-sum.test.ts rebuild them from a
xorshift32 stream whose values (sign * k/2^53 * 2^e, e in -8..8) are exact doubles in both languages.
Mixed magnitudes make every change of summation order visible in the last bits.

Run with numpy < 2.3, then with numpy >= 2.3 (it adds that order's figures; 1.24.2 and 2.4.6 made the fixture):
  /usr/bin/python3 scripts/coco-golden-8192/gen_numpy_sums.py && python3 scripts/coco-golden-8192/gen_numpy_sums.py
"""
import json, os, sys
import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SIZES = [1, 7, 8, 127, 128, 129, 1000, 8191, 8192, 8193, 9000, 10010, 16383, 16384, 16385, 24577, 50000, 72720, 100000]


def xorshift_values(seed, n, kind):
    x = seed
    out = []
    for _ in range(3 * n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out.append(x)
    vals = []
    for i in range(n):
        k, m, y = out[3 * i], out[3 * i + 1], out[3 * i + 2]
        u = (k * 2 ** 21 + (m >> 11)) / 2.0 ** 53  # a full 53-bit mantissa, so no sum is exact by luck
        if kind == 'mixed':  # signs and magnitudes 2^-8..2^8
            vals.append((-1.0 if y & 1 else 1.0) * u * 2.0 ** ((y >> 1) % 17 - 8))
        else:  # 'unit': [0, 1), like COCO precisions
            vals.append(u)
    return vals


def main():
    # numpy < 2.3 writes sum/mean; numpy >= 2.3 (one pairwise sum per array) adds sum_/mean_pairwise.
    major, minor = (int(x) for x in np.__version__.split('.')[:2])
    new = (major, minor) >= (2, 3)
    path = os.path.join(ROOT, 'test', 'fixtures', 'coco-8192', 'numpy_sums.json')
    out = json.load(open(path)) if new else {'numpy': np.__version__, 'python': sys.version.split()[0], 'cases': []}
    cases = out['cases']
    i = 0
    for kind, seed in (('mixed', 2463534242), ('unit', 88172645)):
        a = np.array(xorshift_values(seed, max(SIZES), kind), dtype=np.float64)
        for n in SIZES:
            x = np.ascontiguousarray(a[:n])
            s, m = float(np.add.reduce(x)), float(np.mean(x))
            if new:
                assert (cases[i]['kind'], cases[i]['n']) == (kind, n)
                cases[i].update({'sum_pairwise': s, 'mean_pairwise': m})
            else:
                cases.append({'kind': kind, 'seed': seed, 'n': n, 'sum': s, 'mean': m})
            i += 1
    if new:
        out['numpy_pairwise'] = np.__version__
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
