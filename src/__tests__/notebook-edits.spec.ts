import { NotebookModel } from '@jupyterlab/notebook';

import {
  applyPlan,
  cellInfos,
  ICellInfo,
  isEmptyNotebook,
  planCells,
  VERIFY_TAG
} from '../tools/notebook-edits';

const code = (source: string): ICellInfo => ({ source, cellType: 'code' });

describe('the cells the server plans over', () => {
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

  it("sends the server's planner each cell's code, type, tags and snippet id", () => {
    const model = notebook('import os');
    const shared = model.sharedModel;
    shared.insertCell(0, {
      cell_type: 'code',
      source: '%load_ext kerasgpu\n%gpu_check',
      metadata: { tags: [VERIFY_TAG], kerasgpu: { snippet: 'verify_gpu' } }
    });
    shared.insertCell(0, { cell_type: 'markdown', source: '# Title' });
    expect(planCells(shared)).toEqual([
      { source: '# Title', cell_type: 'markdown', tags: [] },
      {
        source: '%load_ext kerasgpu\n%gpu_check',
        cell_type: 'code',
        tags: [VERIFY_TAG],
        snippet: 'verify_gpu'
      },
      { source: 'import os', cell_type: 'code', tags: [] }
    ]);
    model.dispose();
  });
});
