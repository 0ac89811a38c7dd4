import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isKestrelError } from '@kestrel/core';
import { detectLabelsLayout, readLabelledImages } from './labels.js';
import { listImageFiles } from './folders.js';

const fixtures = fileURLToPath(new URL('../../test/fixtures/qc/', import.meta.url));

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isKestrelError(e) ? e.code : `not a KestrelError: ${String(e)}`;
  }
}

function tmpData(labels: string, images: string[] = []): string {
  const d = mkdtempSync(join(tmpdir(), 'kestrel-qc-'));
  writeFileSync(join(d, 'labels.csv'), labels);
  for (const i of images) {
    mkdirSync(join(d, i, '..'), { recursive: true });
    copyFileSync(join(fixtures, 'pneumoniamnist/images/train_0000.png'), join(d, i));
  }
  return d;
}

describe('labels.csv layouts', () => {
  it('detects the three layouts from the first line', () => {
    expect(detectLabelsLayout('file,split,label,label_name')).toBe('classification-csv');
    expect(detectLabelsLayout('image,mask,class,defective,width,height')).toBe('magnetic-tile');
    expect(detectLabelsLayout('images/cell0001.png  1.0                  mono')).toBe('elpv');
  });

  it('reads the PneumoniaMNIST layout with and without a split', async () => {
    const all = await readLabelledImages(join(fixtures, 'pneumoniamnist'));
    expect(all.layout).toBe('classification-csv');
    expect(all.items).toHaveLength(32);
    const val = await readLabelledImages(join(fixtures, 'pneumoniamnist'), { split: 'val' });
    expect(val.items).toHaveLength(8);
    expect(val.items.filter((i) => i.label === 1)).toHaveLength(4);
    expect(val.items.every((i) => i.split === 'val')).toBe(true);
  });

  it('reads ELPV (defective = probability >= 0.5) and magnetic tile', async () => {
    const e = await readLabelledImages(join(fixtures, 'elpv'));
    expect(e.layout).toBe('elpv');
    expect(e.items.map((i) => i.label)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(e.items[0]!.meta).toEqual({ probability: 0, type: 'mono' });
    const m = await readLabelledImages(join(fixtures, 'magnetic-tile'));
    expect(m.layout).toBe('magnetic-tile');
    expect(m.items.filter((i) => i.label === 0)).toHaveLength(12);
    expect(m.items.filter((i) => i.label === 1)).toHaveLength(5);
  });

  it('ELPV probabilities 1/3 and 2/3 fall either side of 0.5', async () => {
    const d = tmpData('a.png 0.3333333333 poly\nb.png 0.6666666666 mono\n', ['a.png', 'b.png']);
    const r = await readLabelledImages(d);
    expect(r.items.map((i) => i.label)).toEqual([0, 1]);
  });

  it('bad inputs are E_DATA_FORMAT with a clear message', async () => {
    expect(await code(readLabelledImages(join(fixtures, 'no-such-folder')))).toBe('E_DATA_FORMAT');
    expect(await code(readLabelledImages(mkdtempSync(join(tmpdir(), 'kestrel-qc-'))))).toBe('E_DATA_FORMAT'); // no labels.csv
    expect(await code(readLabelledImages(tmpData('name,value\nx.png,1\n')))).toBe('E_DATA_FORMAT'); // unknown header
    expect(await code(readLabelledImages(tmpData('file,split,label\nmissing.png,train,1\n')))).toBe('E_DATA_FORMAT'); // missing image
    expect(await code(readLabelledImages(tmpData('file,split,label\na.png,train,2\n', ['a.png'])))).toBe('E_DATA_FORMAT'); // bad label
    expect(await code(readLabelledImages(tmpData('a.png notanumber mono\n', ['a.png'])))).toBe('E_DATA_FORMAT');
    expect(await code(readLabelledImages(tmpData('a.png 1.0\n', ['a.png'])))).toBe('E_DATA_FORMAT'); // ELPV row without type
    expect(await code(readLabelledImages(tmpData('file,split,label\na.png,train,1\n', ['a.png']), { split: 'test' }))).toBe('E_DATA_FORMAT');
    expect(await code(readLabelledImages(tmpData('')))).toBe('E_DATA_FORMAT');
    // labels.csv that is a folder used to escape as a bare EISDIR (an "internal error" in the CLI)
    const dirLabels = mkdtempSync(join(tmpdir(), 'kestrel-qc-'));
    mkdirSync(join(dirLabels, 'labels.csv'));
    expect(await code(readLabelledImages(dirLabels))).toBe('E_DATA_FORMAT');
    // a file given as the data folder is named as a file, not as missing
    await expect(readLabelledImages(join(fixtures, 'README.md'))).rejects.toThrow(/is a file/);
    await expect(readLabelledImages(tmpData('file,split,label\nmissing.png,train,1\n'))).rejects.toThrow(/missing\.png does not exist/);
  });

  it('lists image files recursively, sorted, with an exclusion pattern', async () => {
    const files = await listImageFiles(join(fixtures, 'magnetic-tile'));
    expect(files).toHaveLength(17);
    expect([...files].sort()).toEqual(files);
    expect(await listImageFiles(join(fixtures, 'magnetic-tile'), { exclude: /^MT_Free\// })).toHaveLength(5);
    expect(await code(listImageFiles(join(fixtures, 'nope')))).toBe('E_DATA_FORMAT');
  });
});
