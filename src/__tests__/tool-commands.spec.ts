import { nullTranslator } from '@jupyterlab/translation';

import { ISnippet } from '../api/notebook';
import { SnippetCatalog } from '../tools/snippet-catalog';
import { gpuMenuEntries, snippetLabel } from '../tools/tool-commands';

const trans = nullTranslator.load('jupyterlab-kerasgpu');

function snippet(
  id: string,
  title: string,
  placement: ISnippet['placement'],
  order: number
): ISnippet {
  return { id, title, placement, order, description: '', code: '' };
}

const CATALOG = [
  snippet('verify_gpu', 'GPU verification', 'top', 0),
  snippet('memory_growth', 'GPU memory growth', 'top', 10),
  snippet(
    'mirrored_strategy',
    "Run Cell in the Notebook's Strategy",
    'wrap',
    30
  ),
  snippet('mixed_precision', 'Mixed Precision Policy', 'cursor', 50),
  snippet('tf_data_pipeline', 'tf.data input pipeline', 'cursor', 70)
];

describe('the snippet labels say where the planner puts the code', () => {
  it('puts settings that must come before TensorFlow above its import', () => {
    expect(snippetLabel(CATALOG[1], trans)).toBe(
      'Insert GPU memory growth (above the TensorFlow import)'
    );
  });

  it('puts the precision policy above the first model, not below the active cell', () => {
    expect(snippetLabel(CATALOG[3], trans)).toBe(
      'Insert Mixed Precision Policy (above the first model)'
    );
  });

  it('names the wrap by its title and puts other snippets below the active cell', () => {
    expect(snippetLabel(CATALOG[2], trans)).toBe(
      "Run Cell in the Notebook's Strategy"
    );
    expect(snippetLabel(CATALOG[4], trans)).toBe(
      'Insert tf.data input pipeline (below this cell)'
    );
  });
});

describe('the GPU menu', () => {
  it('lists the named tools first, then each other snippet of the catalog once', () => {
    const catalog = {
      snippets: CATALOG
    } as unknown as SnippetCatalog;
    const entries = gpuMenuEntries(catalog).map(entry =>
      'separator' in entry
        ? '---'
        : `${entry.command}${entry.args?.id ? ` ${entry.args.id}` : ''}`
    );
    expect(entries).toEqual([
      'kerasgpu:insert-verification-cell',
      'kerasgpu:distribute-notebook',
      'kerasgpu:insert-snippet mirrored_strategy',
      'kerasgpu:insert-snippet mixed_precision',
      'kerasgpu:fix-input-pipeline',
      '---',
      'kerasgpu:insert-snippet memory_growth',
      'kerasgpu:insert-snippet tf_data_pipeline'
    ]);
  });
});
