#!/usr/bin/env python3
"""Golden COCO cases whose summarize() means run over more than 8,192 values, made by pycocotools.

numpy 1.x sums np.mean in buffered blocks of 8,192 values; the existing golden cases average fewer
values than that, so they cannot tell numpy's order from a whole-array pairwise sum. These cases can.

GT: the bundled COCO val2017 subset (datasets/coco-val2017-128), boxes and polygons as published, with
a seeded ~3% of annotations turned into crowd regions; keypoint GT is synthetic (17 points inside each
real person box). Detections are fake and deterministic (seeded jitter of the GT, wrong classes, false
positives, 2-decimal scores so ties occur). Everything is fixed by SEED; rerunning gives the same bytes.

Run (see docs/eval-coco.md for building pycocotools):
  PYCOCOTOOLS=/tmp/cocoapi/PythonAPI /usr/bin/python3 scripts/coco-golden-8192/gen.py
"""
import contextlib, gzip, hashlib, io, json, os, random, sys, types

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.environ.get('PYCOCOTOOLS', '/tmp/cocoapi/PythonAPI'))
# coco.py imports matplotlib for showAnns only; evaluation never touches it.
for m in ['matplotlib', 'matplotlib.pyplot', 'matplotlib.collections', 'matplotlib.patches']:
    sys.modules.setdefault(m, types.ModuleType(m))
sys.modules['matplotlib.collections'].PatchCollection = None
sys.modules['matplotlib.patches'].Polygon = None
import numpy as np  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402
import pycocotools.mask as maskUtils  # noqa: E402

SEED = 20261204
DATA = os.path.join(ROOT, 'datasets', 'coco-val2017-128', 'annotations')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'coco-8192')
EVAL_DIR = os.environ.get('COCO8192_EVAL_DIR', '/tmp/coco8192-eval')
REC1001 = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .001)) + 1, endpoint=True).tolist()


def write_gz(name, obj):
    # mtime=0 and fixed separators keep the bytes reproducible.
    data = json.dumps(obj, separators=(',', ':')).encode()
    with open(os.path.join(OUT, name), 'wb') as f:
        with gzip.GzipFile(filename='', mode='wb', fileobj=f, mtime=0, compresslevel=9) as g:
            g.write(data)


def crowdify(gt, rng):
    for a in gt['annotations']:
        a['iscrowd'] = 1 if rng.random() < 0.03 else 0
        a.pop('ignore', None)
    return gt


def jitter_box(b, rng, s):
    x, y, w, h = b
    return [round(x + rng.gauss(0, s * w), 2), round(y + rng.gauss(0, s * h), 2),
            round(max(1.0, w * (1 + rng.gauss(0, s))), 2), round(max(1.0, h * (1 + rng.gauss(0, s))), 2)]


def fake_boxes(gt, rng):
    cats = [c['id'] for c in gt['categories']]
    imgs = {i['id']: i for i in gt['images']}
    res = []
    for a in gt['annotations']:
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            cat = a['category_id'] if rng.random() < 0.85 else rng.choice(cats)
            res.append({'image_id': a['image_id'], 'category_id': cat,
                        'bbox': jitter_box(a['bbox'], rng, rng.choice([0.02, 0.08, 0.25])), 'score': round(rng.random(), 2)})
    for img in gt['images']:  # false positives anywhere in the image
        for _ in range(rng.randint(0, 12)):
            w, h = rng.uniform(4, img['width'] / 2), rng.uniform(4, img['height'] / 2)
            res.append({'image_id': img['id'], 'category_id': rng.choice(cats),
                        'bbox': [round(rng.uniform(0, imgs[img['id']]['width'] - w), 2), round(rng.uniform(0, img['height'] - h), 2), round(w, 2), round(h, 2)],
                        'score': round(rng.random() * 0.6, 2)})
    rng.shuffle(res)
    return res


def fake_masks(gt, rng):
    imgs = {i['id']: i for i in gt['images']}
    cats = [c['id'] for c in gt['categories']]
    res = []
    for a in gt['annotations']:
        img = imgs[a['image_id']]
        for _ in range(rng.choice([0, 1, 1, 2])):
            s = rng.choice([0.5, 2.0, 6.0])
            polys = [[round(v + rng.gauss(0, s), 1) for v in p] for p in a['segmentation']]
            rle = maskUtils.merge(maskUtils.frPyObjects(polys, img['height'], img['width']))
            cat = a['category_id'] if rng.random() < 0.85 else rng.choice(cats)
            res.append({'image_id': a['image_id'], 'category_id': cat,
                        'segmentation': {'size': rle['size'], 'counts': rle['counts'].decode('ascii')}, 'score': round(rng.random(), 2)})
    rng.shuffle(res)
    return res


def keypoint_gt(gt, rng):
    persons = [a for a in gt['annotations'] if a['category_id'] == 1]
    anns = []
    for a in persons:
        x, y, w, h = a['bbox']
        kps = []
        for _ in range(17):
            v = rng.choice([0, 1, 2, 2, 2]) if rng.random() > 0.1 else 0
            kps += [round(x + rng.random() * w), round(y + rng.random() * h), v] if v else [0, 0, 0]
        anns.append({'id': a['id'], 'image_id': a['image_id'], 'category_id': 1, 'bbox': a['bbox'], 'area': a['area'],
                     'iscrowd': 1 if rng.random() < 0.03 else 0, 'keypoints': kps, 'num_keypoints': sum(1 for i in range(2, 51, 3) if kps[i] > 0)})
    cat = {'id': 1, 'name': 'person', 'supercategory': 'person', 'keypoints': [f'k{i}' for i in range(17)], 'skeleton': []}
    return {'images': gt['images'], 'annotations': anns, 'categories': [cat]}


def fake_keypoints(kgt, rng):
    res = []
    for a in kgt['annotations']:
        x, y, w, h = a['bbox']
        for _ in range(rng.choice([0, 1, 1, 2])):
            s = rng.choice([1.0, 4.0, 15.0])
            kp = []
            for i in range(17):
                gx, gy, v = a['keypoints'][3 * i:3 * i + 3]
                if not v:
                    gx, gy = x + rng.random() * w, y + rng.random() * h
                kp += [round(gx + rng.gauss(0, s), 2), round(gy + rng.gauss(0, s), 2), round(rng.random(), 3)]
            res.append({'image_id': a['image_id'], 'category_id': 1, 'keypoints': kp, 'score': round(rng.random(), 2)})
    rng.shuffle(res)
    return res


def subset(ids, frac, rng):
    ids = list(ids)
    return rng.sample(ids, max(1, int(len(ids) * frac)))  # unsorted on purpose: pycocotools np.unique's it


def run_case(c, gt_path, res_path):
    sizes = []
    real_mean = np.mean

    def recording_mean(a, *args, **kw):  # only records how many values each summarize() mean sees
        sizes.append(int(np.asarray(a).size))
        return real_mean(a, *args, **kw)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        gt = COCO(gt_path)
        dt = gt.loadRes(res_path)
        E = COCOeval(gt, dt, c['iouType'])
        for k, v in c['params_override'].items():
            setattr(E.params, k, np.array(v) if k in ('iouThrs', 'recThrs') else v)
        E.evaluate()
        E.accumulate()
        np.mean = recording_mean
        try:
            E.summarize()
        finally:
            np.mean = real_mean
    summary = '\n'.join(l for l in out.getvalue().splitlines() if l.startswith(' Average')) + '\n'
    prec = np.ascontiguousarray(E.eval['precision'], dtype='<f8')
    rec = np.ascontiguousarray(E.eval['recall'], dtype='<f8')
    # For gen_numpy2_stats.py: pycocotools' summarize() rerun on these arrays under numpy >= 2.3.
    os.makedirs(EVAL_DIR, exist_ok=True)
    np.savez(os.path.join(EVAL_DIR, c['name'] + '.npz'), precision=prec, recall=rec)
    return {**c, 'stats': [float(s) for s in E.stats], 'mean_sizes': sizes, 'summary_text': summary,
            'precision_shape': list(prec.shape), 'precision_sha256': hashlib.sha256(prec.tobytes()).hexdigest(),
            'recall_shape': list(rec.shape), 'recall_sha256': hashlib.sha256(rec.tobytes()).hexdigest(),
            **({'recall': rec.ravel().tolist()} if rec.size <= 12000 else {})}


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(SEED)
    box_gt = crowdify(json.load(open(os.path.join(DATA, 'instances_val2017_128.json'))), rng)
    seg_gt = crowdify(json.load(open(os.path.join(DATA, 'instances_seg_val2017_100.json'))), rng)
    for g in (box_gt, seg_gt):
        g.pop('licenses', None)
        for i in g['images']:
            for k in ('license', 'coco_url', 'flickr_url', 'date_captured'):
                i.pop(k, None)
    kp_gt = keypoint_gt(box_gt, rng)
    files = {'gt_bbox.json.gz': box_gt, 'gt_segm.json.gz': seg_gt, 'gt_keypoints.json.gz': kp_gt,
             'res_bbox.json.gz': fake_boxes(box_gt, rng), 'res_segm.json.gz': fake_masks(seg_gt, rng),
             'res_keypoints.json.gz': fake_keypoints(kp_gt, rng)}
    for name, obj in files.items():
        write_gz(name, obj)
    box_ids = [i['id'] for i in box_gt['images']]
    seg_ids = [i['id'] for i in seg_gt['images']]
    # 115 thresholds (0.5 and 0.75 among them) x 73 categories with GT: the AR means exceed 8,192 values too.
    many_iou = sorted(set(np.linspace(.5, 0.95, 10).tolist() + [round(0.5 + 0.0043 * i, 4) for i in range(106)]))
    cases = [
        ('bbox_default', 'bbox', {}),
        ('bbox_imgids_a', 'bbox', {'imgIds': subset(box_ids, 0.6, rng)}),
        ('bbox_imgids_b', 'bbox', {'imgIds': subset(box_ids, 0.3, rng)}),
        ('bbox_usecats0_rec1001', 'bbox', {'useCats': 0, 'recThrs': REC1001}),
        ('bbox_usecats0_imgids_rec1001', 'bbox', {'useCats': 0, 'recThrs': REC1001, 'imgIds': subset(box_ids, 0.5, rng)}),
        ('bbox_many_iouthrs', 'bbox', {'iouThrs': many_iou}),
        ('segm_default', 'segm', {}),
        ('segm_imgids_a', 'segm', {'imgIds': subset(seg_ids, 0.5, rng)}),
        ('segm_usecats0_imgids_rec1001', 'segm', {'useCats': 0, 'recThrs': REC1001, 'imgIds': subset(seg_ids, 0.7, rng)}),
        ('keypoints_rec1001', 'keypoints', {'recThrs': REC1001}),
        ('keypoints_imgids_rec1001', 'keypoints', {'recThrs': REC1001, 'imgIds': subset(box_ids, 0.6, rng)}),
        ('keypoints_usecats0_imgids_rec1001', 'keypoints', {'useCats': 0, 'recThrs': REC1001, 'imgIds': subset(box_ids, 0.8, rng)}),
    ]
    out = []
    for name, iou_type, override in cases:
        c = {'name': name, 'iouType': iou_type, 'gt': f'gt_{iou_type}.json.gz', 'res': f'res_{iou_type}.json.gz', 'params_override': override}
        gt_tmp, res_tmp = '/tmp/coco8192_gt.json', '/tmp/coco8192_res.json'
        json.dump(files[c['gt']], open(gt_tmp, 'w'))
        json.dump(files[c['res']], open(res_tmp, 'w'))
        r = run_case(c, gt_tmp, res_tmp)
        print(name, 'max values in one mean:', max(r['mean_sizes']), 'stats:', r['stats'][:3], '...')
        out.append(r)
    meta = {'seed': SEED, 'numpy': np.__version__, 'python': sys.version.split()[0],
            'pycocotools': 'cocodataset/cocoapi 8c9bcc3cf640524c4c20a9c40e89cb6a2f2fa0e9 (np.float -> np.float64 in accumulate)',
            'cases': out}
    with open(os.path.join(OUT, 'cases.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
