#!/usr/bin/env python3
"""Adds `stats_pairwise` to test/fixtures/coco-8192/cases.json: pycocotools' own summarize() run under
numpy >= 2.3, whose np.mean sums a contiguous array as one pairwise sum (numpy < 2.3: 8,192 blocks).

pycocotools' C mask extension (Cython 0.29 output) does not build against numpy 2 headers, and
summarize() needs none of it, so this script stubs pycocotools.mask and runs the unmodified
COCOeval.summarize on the precision/recall arrays gen.py saved (from the numpy 1.24 evaluation).

Run after gen.py, with a Python whose numpy is >= 2.3 (numpy 2.4.6 made the fixture):
  PYCOCOTOOLS=/tmp/cocoapi/PythonAPI python3 scripts/coco-golden-8192/gen_numpy2_stats.py
"""
import contextlib, io, json, os, sys, types

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
EVAL_DIR = os.environ.get('COCO8192_EVAL_DIR', '/tmp/coco8192-eval')
sys.path.insert(0, os.environ.get('PYCOCOTOOLS', '/tmp/cocoapi/PythonAPI'))
sys.modules['pycocotools.mask'] = types.ModuleType('pycocotools.mask')  # evaluate()/IoU only; unused here
import numpy as np  # noqa: E402
from pycocotools.cocoeval import COCOeval, Params  # noqa: E402


def main():
    major, minor = (int(x) for x in np.__version__.split('.')[:2])
    if (major, minor) < (2, 3):
        sys.exit(f'numpy {np.__version__}: this needs numpy >= 2.3 (gen.py already covers the older order)')
    path = os.path.join(ROOT, 'test', 'fixtures', 'coco-8192', 'cases.json')
    meta = json.load(open(path))
    for c in meta['cases']:
        E = COCOeval.__new__(COCOeval)  # no GT needed: summarize() reads only params and eval
        E.params = Params(iouType=c['iouType'])
        for k, v in c['params_override'].items():
            setattr(E.params, k, np.array(v) if k in ('iouThrs', 'recThrs') else v)
        arrays = np.load(os.path.join(EVAL_DIR, c['name'] + '.npz'))
        E.eval = {'precision': arrays['precision'], 'recall': arrays['recall']}
        with contextlib.redirect_stdout(io.StringIO()):
            E.summarize()
        c['stats_pairwise'] = [float(s) for s in E.stats]
        print(c['name'], sum(a != b for a, b in zip(c['stats'], c['stats_pairwise'])), 'stats differ from numpy', meta['numpy'])
    meta['numpy_pairwise'] = np.__version__
    with open(path, 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
