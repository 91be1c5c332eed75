import { nullTranslator } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { PlanPreview } from '../views/plan-dialog';
import {
  cellLabel,
  describeChange,
  describePlan,
  firstLine,
  lineDiff,
  planResult,
  summarize,
  toastText
} from '../tools/plan-preview';
import { IPlan, PlanEdit } from '../api/notebook';

const trans = nullTranslator.load('jupyterlab-kerasgpu');

describe('the line diff of a cell', () => {
  const render = (before: string, after: string) =>
    lineDiff(before, after).map(
      line =>
        ({ same: ' ', removed: '-', added: '+' })[line.kind] + ' ' + line.text
    );

  it('marks one added line among kept ones', () => {
    expect(
      render(
        'model = make_model()\nmodel.compile()',
        'model = make_model()\nmodel.built = True\nmodel.compile()'
      )
    ).toEqual([
      '  model = make_model()',
      '+ model.built = True',
      '  model.compile()'
    ]);
  });

  it('shows a changed line as removed, then added', () => {
    expect(
      render(
        'ds = ds.batch(64)\nmodel.fit(ds)',
        'ds = ds.batch(64, drop_remainder=True)\nmodel.fit(ds)'
      )
    ).toEqual([
      '- ds = ds.batch(64)',
      '+ ds = ds.batch(64, drop_remainder=True)',
      '  model.fit(ds)'
    ]);
  });

  it('keeps the lines a wrap re-indents apart from the ones it keeps', () => {
    expect(
      render(
        '%%time\nmodel = build()\nmodel',
        '%%time\nwith s.scope():\n    model = build()\nmodel'
      )
    ).toEqual([
      '  %%time',
      '- model = build()',
      '+ with s.scope():',
      '+     model = build()',
      '  model'
    ]);
  });

  it('handles empty cells and identical text', () => {
    expect(render('', 'a\nb')).toEqual(['+ a', '+ b']);
    expect(render('a', '')).toEqual(['- a']);
    expect(render('a\nb', 'a\nb')).toEqual(['  a', '  b']);
  });

  it('replaces the middle whole beyond its size limit, keeping head and tail', () => {
    const before = ['head', 'x1', 'x2', 'x3', 'tail'].join('\n');
    const after = ['head', 'y1', 'y2', 'y3', 'tail'].join('\n');
    expect(lineDiff(before, after, 2).map(line => line.kind)).toEqual([
      'same',
      'removed',
      'removed',
      'removed',
      'added',
      'added',
      'added',
      'same'
    ]);
  });
});

describe('what a plan adds and changes', () => {
  const before = [
    'import keras\nBATCH_SIZE = 32',
    '\n# build\nmodel = make_model(BATCH_SIZE)',
    'model.fit(x, y)'
  ];
  // Distribute: a config cell above the model, and a line in the model cell.
  const edits: PlanEdit[] = [
    { op: 'insert', index: 1, source: '%load_ext kerasgpu\n%gpu_distribute' },
    {
      op: 'replace',
      index: 2,
      source: '\n# build\nmodel = make_model(BATCH_SIZE)\nmodel.built = True'
    }
  ];

  it('applies edits as the notebook does: inserts first, replaces numbered after them', () => {
    expect(planResult(before, edits)).toEqual([
      { source: before[0], origin: 0 },
      { source: '%load_ext kerasgpu\n%gpu_distribute', origin: null },
      {
        source: '\n# build\nmodel = make_model(BATCH_SIZE)\nmodel.built = True',
        origin: 1
      },
      { source: before[2], origin: 2 }
    ]);
    expect(() =>
      planResult(before, [{ op: 'replace', index: 3, source: '' }])
    ).toThrow(/cell 4/);
    expect(() =>
      planResult(before, [{ op: 'insert', index: 4, source: '' }])
    ).toThrow(/outside/);
  });

  it('says where a new cell goes and which lines change, in notebook order', () => {
    const changes = describePlan(before, edits);
    expect(changes.map(describeChange)).toEqual([
      'new cell 2, above `# build`',
      'cell 3 (was cell 2), `# build`: 1 line added, 0 lines removed'
    ]);
    expect(summarize(changes)).toBe('1 cell added, 1 cell changed');
    const changed = changes[1];
    expect(changed.kind === 'changed' && changed.diff.at(-1)).toEqual({
      kind: 'added',
      text: 'model.built = True'
    });
  });

  it('names the cell above a new last cell, and a new first cell of an empty notebook', () => {
    expect(
      describePlan(['a = 1'], [{ op: 'insert', index: 1, source: 'b' }]).map(
        describeChange
      )
    ).toEqual(['new cell 2, at the end, below `a = 1`']);
    expect(
      describePlan([], [{ op: 'insert', index: 0, source: 'b' }]).map(
        describeChange
      )
    ).toEqual(['new cell 1']);
    // Two new cells in a row both sit above the same existing cell.
    expect(
      describePlan(
        ['import tensorflow as tf'],
        [
          { op: 'insert', index: 0, source: 'x' },
          { op: 'insert', index: 1, source: 'y' }
        ]
      ).map(describeChange)
    ).toEqual([
      'new cell 1, above `import tensorflow as tf`',
      'new cell 2, above `import tensorflow as tf`'
    ]);
  });

  it('leaves out a replace that changes nothing', () => {
    expect(
      describePlan(['a'], [{ op: 'replace', index: 0, source: 'a' }])
    ).toEqual([]);
  });

  it('labels a message by the cell it is about, numbered after the edits', () => {
    const after = planResult(before, edits);
    expect(cellLabel({ level: 'info', text: 'x' })).toBeNull();
    expect(
      cellLabel({
        level: 'warning',
        text: 'x',
        cell: 2,
        cell_line: 'model = make_model(BATCH_SIZE)'
      })
    ).toBe('cell 3: model = make_model(BATCH_SIZE)');
    // Without the server's line, the cell's own first line.
    expect(cellLabel({ level: 'warning', text: 'x', cell: 2 }, after)).toBe(
      'cell 3: # build'
    );
    expect(firstLine('\n  \n  x = 1  \ny')).toBe('x = 1');
  });
});

describe('toast text', () => {
  it('keeps a text that fits whole, and cuts a long one at a word', () => {
    expect(toastText('short')).toEqual({ text: 'short', cut: false });
    const long = 'word '.repeat(40).trim();
    const { text, cut } = toastText(long);
    expect(cut).toBe(true);
    expect(text.length).toBeLessThanOrEqual(140);
    expect(text.endsWith('word…')).toBe(true);
  });
});

describe('the preview widget', () => {
  const plan: IPlan = {
    tool: 'distribute',
    ok: true,
    edits: [
      { op: 'insert', index: 0, source: '%gpu_distribute' },
      { op: 'replace', index: 1, source: 'model = m()\nmodel.built = True' }
    ],
    messages: [
      {
        level: 'warning',
        text: 'A long message that is never cut. '.repeat(10),
        cell: 1,
        cell_line: 'model = m()'
      }
    ],
    select: 0
  };

  it('lists the new cell, the changed lines and the whole message; a link selects the cell as numbered now', () => {
    const selected: number[] = [];
    const widget = new PlanPreview({
      title: 'Distribute This Notebook',
      plan,
      before: ['model = m()'],
      trans,
      select: index => selected.push(index)
    });
    Widget.attach(widget, document.body);
    const node = widget.node;
    const where = [...node.querySelectorAll('.kerasgpu-PlanPreview-where')].map(
      e => e.textContent
    );
    expect(where).toEqual([
      'New cell 1, above `model = m()`',
      'Cell 2 (was cell 1), `model = m()`: 1 line added, 0 lines removed'
    ]);
    expect(
      [
        ...node.querySelectorAll(
          '.kerasgpu-PlanPreview-line.kerasgpu-mod-added'
        )
      ].map(e => e.textContent)
    ).toEqual(['+ %gpu_distribute', '+ model.built = True']);
    expect(node.querySelector('.kerasgpu-PlanPreview-text')!.textContent).toBe(
      plan.messages[0].text
    );
    const link = node.querySelector<HTMLButtonElement>(
      '.kerasgpu-PlanPreview-cellLink'
    )!;
    expect(link.textContent).toBe('cell 2: model = m()');
    link.click();
    // Cell 2 after the edits is cell 1 now (index 0).
    expect(selected).toEqual([0]);
    // ...and its entry in the preview is pointed out.
    expect(
      node
        .querySelector('.kerasgpu-PlanPreview-change[data-cell="1"]')!
        .classList.contains('kerasgpu-mod-flash')
    ).toBe(true);
    widget.dispose();
    expect(document.querySelector('.kerasgpu-PlanPreview')).toBeNull();
  });
});
