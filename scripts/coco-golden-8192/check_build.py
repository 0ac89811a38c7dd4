#!/usr/bin/env python3
"""Check a pycocotools build before generating: it must reproduce the older golden set
(test/fixtures/coco/det_cases.json) exactly, stats and precision/recall arrays.

Run: PYCOCOTOOLS=/tmp/cocoapi/PythonAPI /usr/bin/python3 scripts/coco-golden-8192/check_build.py
"""
import contextlib, io, json, os, sys, types

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.environ.get('PYCOCOTOOLS', '/tmp/cocoapi/PythonAPI'))
for m in ['matplotlib', 'matplotlib.pyplot', 'matplotlib.collections', 'matplotlib.patches']:
    sys.modules.setdefault(m, types.ModuleType(m))  # coco.py imports it for drawing only
sys.modules['matplotlib.collections'].PatchCollection = None
sys.modules['matplotlib.patches'].Polygon = None
import numpy as np  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def main():
    d = os.path.join(ROOT, 'test', 'fixtures', 'coco')
    bad = 0
    cases = json.load(open(os.path.join(d, 'det_cases.json')))['cases']
    for c in cases:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(os.path.join(d, c['gt']))
            E = COCOeval(gt, gt.loadRes(os.path.join(d, c['res'])), c['iouType'])
            for k, v in (c.get('params_override') or {}).items():
                setattr(E.params, k, v)
            E.evaluate(); E.accumulate(); E.summarize()
        exp = json.load(open(os.path.join(d, c['expected'])))
        ok = [float(s) for s in E.stats] == exp['stats'] and np.array_equal(E.eval['precision'], np.array(exp['precision'])) \
            and np.array_equal(E.eval['recall'], np.array(exp['recall']))
        print(c['name'], 'identical' if ok else 'DIFFERENT')
        bad += not ok
    print(f'numpy {np.__version__}: {len(cases) - bad} of {len(cases)} cases identical')
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
