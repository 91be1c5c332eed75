import { NotebookModel } from '@jupyterlab/notebook';

import {
  applyPlan,
  cellInfos,
  findVerificationCell,
  firstTensorFlowCell,
  ICellInfo,
  importsTensorFlow,
  isEmptyNotebook,
  upsertVerificationCell,
  VERIFY_TAG
} from '../snippets';

const code = (source: string): ICellInfo => ({ source, cellType: 'code' });
const markdown = (source: string): ICellInfo => ({
  source,
  cellType: 'markdown'
});

describe('finding the first cell that touches TensorFlow', () => {
  it.each([
    'import tensorflow as tf',
    'import tensorflow',
    'from tensorflow import keras',
    'from tensorflow.keras import layers',
    'import tensorflow.keras as K',
    'import keras',
    'from keras import layers',
    'import numpy as np, tensorflow as tf',
    'import tf_keras',
    'import keras_hub',
    'try:\n    import tensorflow as tf\nexcept ImportError:\n    tf = None',
    'x = 1; import tensorflow as tf',
    '%matplotlib inline\nimport tensorflow as tf'
  ])('sees %j', source => {
    expect(importsTensorFlow(source)).toBe(true);
  });

  it.each([
    '# import tensorflow as tf',
    'import numpy as np',
    'import kerasgpu',
    'from kerasgpu import check',
    '%load_ext kerasgpu',
    '!pip install tensorflow',
    'import tensorflowish as t',
    'print("import tensorflow")'
  ])('ignores %j', source => {
    expect(importsTensorFlow(source)).toBe(false);
  });

  it('returns the first code cell, skipping markdown that mentions the import', () => {
    const cells = [
      markdown('We `import tensorflow as tf` below.'),
      code('import numpy as np'),
      code('import tensorflow as tf'),
      code('from keras import layers')
    ];
    expect(firstTensorFlowCell(cells)).toBe(2);
  });

  it('counts `tf.` used above the cell that imports it (cells run out of order)', () => {
    const cells = [
      code('import numpy as np'),
      code('x = tf.constant([1, 2])'),
      code('import tensorflow as tf')
    ];
    expect(firstTensorFlowCell(cells)).toBe(1);
    // Without that import, `tf` is just a name.
    expect(firstTensorFlowCell(cells.slice(0, 2))).toBe(-1);
  });
});

describe('the verification cell and snippet cells', () => {
  it('finds the tagged verification cell wherever it is', () => {
    const cells: ICellInfo[] = [
      code('import os'),
      { source: 'x', cellType: 'code', tags: ['other', VERIFY_TAG] }
    ];
    expect(findVerificationCell(cells)).toBe(1);
    expect(findVerificationCell([code('%gpu_check')])).toBe(-1);
  });

  it('calls a notebook with one empty cell empty', () => {
    expect(isEmptyNotebook([])).toBe(true);
    expect(isEmptyNotebook([code('  \n')])).toBe(true);
    expect(isEmptyNotebook([code('import os')])).toBe(false);
    expect(isEmptyNotebook([code(''), code('')])).toBe(false);
  });
});

describe('insertions in a real notebook model are one undo step each', () => {
  function notebook(...sources: string[]): NotebookModel {
    const model = new NotebookModel();
    model.sharedModel.insertCells(
      0,
      sources.map(source => ({ cell_type: 'code', source }))
    );
    model.sharedModel.clearUndoHistory();
    return model;
  }

  const sources = (model: NotebookModel) =>
    model.sharedModel.cells.map(cell => cell.getSource());

  it("applies a server plan's wrap; one notebook undo (Z) restores it", () => {
    const model = notebook('import tensorflow as tf', 'model = build()');
    const cell = model.sharedModel.cells[1];
    // Typing just before must not merge with the edit's undo step.
    cell.setSource('model = build()\nmodel.compile()');
    const wrapped =
      'import kerasgpu\n\nwith kerasgpu.notebook_strategy().scope():\n    model = build()\n    model.compile()';
    applyPlan(
      model.sharedModel,
      {
        tool: 'wrap',
        ok: true,
        edits: [{ op: 'replace', index: 1, source: wrapped }],
        messages: [],
        select: 1
      },
      2
    );
    expect(cell.getSource()).toBe(wrapped);
    // The cell's own history no longer holds the typing the wrap replaced.
    expect(cell.undo()).toBe(false);
    expect(cell.getSource()).toBe(wrapped);
    expect(model.sharedModel.undo()).toBe(true);
    expect(cell.getSource()).toBe('model = build()\nmodel.compile()');
    model.dispose();
  });

  it("applies a server plan's new cell with its metadata; one notebook undo removes it", () => {
    const model = notebook('import keras', 'model = keras.Sequential()');
    const shared = model.sharedModel;
    applyPlan(
      shared,
      {
        tool: 'distribute',
        ok: true,
        edits: [
          {
            op: 'insert',
            index: 1,
            source: '%load_ext kerasgpu\n%gpu_distribute',
            metadata: { kerasgpu: { snippet: 'distribute_notebook' } }
          }
        ],
        messages: [],
        select: 1
      },
      2
    );
    expect(sources(model)).toEqual([
      'import keras',
      '%load_ext kerasgpu\n%gpu_distribute',
      'model = keras.Sequential()'
    ]);
    expect(cellInfos(shared)[1].snippetId).toBe('distribute_notebook');
    expect(shared.undo()).toBe(true);
    expect(sources(model)).toEqual([
      'import keras',
      'model = keras.Sequential()'
    ]);
    model.dispose();
  });

  it('applies a plan of new cells and changed code as ONE notebook undo step', () => {
    const model = notebook(
      'import keras',
      'model = make_model()',
      'model.fit(x, y)'
    );
    const shared = model.sharedModel;
    const before = sources(model);
    // Typing just before must not merge with the plan's undo step.
    shared.cells[2].setSource('model.fit(x, y, epochs=2)');
    const typed = sources(model);
    applyPlan(
      shared,
      {
        tool: 'distribute',
        ok: true,
        edits: [
          { op: 'insert', index: 1, source: '%gpu_distribute' },
          { op: 'insert', index: 1, source: '%load_ext kerasgpu' },
          {
            op: 'replace',
            index: 3,
            source: 'model = make_model()\nmodel.built = True'
          }
        ],
        messages: [],
        select: 2
      },
      typed
    );
    expect(sources(model)).toEqual([
      'import keras',
      '%load_ext kerasgpu',
      '%gpu_distribute',
      'model = make_model()\nmodel.built = True',
      'model.fit(x, y, epochs=2)'
    ]);
    expect(shared.undo()).toBe(true);
    expect(sources(model)).toEqual(typed);
    expect(shared.redo()).toBe(true);
    expect(sources(model)).toHaveLength(5);
    expect(sources(model)[3]).toBe('model = make_model()\nmodel.built = True');
    expect(before).toHaveLength(3);
    model.dispose();
  });

  it('changes nothing when a plan names a cell that is not there, or the code changed since', () => {
    const model = notebook('a = 1', 'b = 2');
    const shared = model.sharedModel;
    const plan = {
      tool: 'wrap' as const,
      ok: true,
      edits: [
        { op: 'insert' as const, index: 0, source: 'new' },
        { op: 'replace' as const, index: 5, source: 'x' }
      ],
      messages: [],
      select: 0
    };
    expect(() => applyPlan(shared, plan, 2)).toThrow(/cell 6/);
    expect(sources(model)).toEqual(['a = 1', 'b = 2']);
    expect(() =>
      applyPlan(shared, { ...plan, edits: [plan.edits[0]] }, ['a = 1', 'b'])
    ).toThrow(/changed/);
    expect(sources(model)).toEqual(['a = 1', 'b = 2']);
    model.dispose();
  });

  it('refuses a plan made for a notebook that changed since', () => {
    const model = notebook('a = 1');
    expect(() =>
      applyPlan(
        model.sharedModel,
        { tool: 'verify', ok: true, edits: [], messages: [], select: 0 },
        3
      )
    ).toThrow(/changed/);
    model.dispose();
  });

  it('adds one tagged verification cell at the top, then updates it', () => {
    const model = notebook('import tensorflow as tf');
    const shared = model.sharedModel;
    expect(upsertVerificationCell(shared, '%gpu_check\n')).toEqual({
      index: 0,
      added: true
    });
    expect(shared.cells[0].getMetadata('tags')).toEqual([VERIFY_TAG]);
    expect(sources(model)).toEqual(['%gpu_check', 'import tensorflow as tf']);

    expect(upsertVerificationCell(shared, '%gpu_check --deep')).toEqual({
      index: 0,
      added: false
    });
    expect(sources(model)).toEqual([
      '%gpu_check --deep',
      'import tensorflow as tf'
    ]);
    expect(shared.undo()).toBe(true);
    expect(sources(model)).toEqual(['%gpu_check', 'import tensorflow as tf']);
    expect(shared.undo()).toBe(true);
    expect(sources(model)).toEqual(['import tensorflow as tf']);
    model.dispose();
  });
});
