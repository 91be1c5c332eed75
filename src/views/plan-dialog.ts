import { Dialog } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { el } from './dom';
import {
  cellLabel,
  describeChange,
  describePlan,
  IDiffLine,
  IPlannedCell,
  PlanChange,
  planResult,
  summarize
} from '../tools/plan-preview';
import type { IPlan, IPlanMessage } from '../api/notebook';

/** The preview of a notebook tool's plan: cells added, lines changed, its messages in full. */
export class PlanPreview extends Widget {
  constructor(options: PlanPreview.IOptions) {
    super();
    const { plan, before, trans } = options;
    this.addClass('kerasgpu-PlanPreview');
    this._after = planResult(before, plan.edits);
    const changes = describePlan(before, plan.edits);
    const node = this.node;

    node.appendChild(
      el(
        'p',
        'kerasgpu-PlanPreview-summary',
        trans.__(
          '%1. Applied as one undo step: Z in command mode (Undo Cell Operation) takes it all back.',
          summarize(changes).replace(/^./, c => c.toUpperCase())
        )
      )
    );
    const list = el('ol', 'kerasgpu-PlanPreview-changes');
    list.setAttribute('aria-label', trans.__('Changes'));
    for (const change of changes) {
      list.appendChild(this._change(change, trans));
    }
    node.appendChild(list);

    if (plan.messages.length > 0) {
      node.appendChild(
        el('h3', 'kerasgpu-PlanPreview-heading', trans.__('Before you apply'))
      );
      node.appendChild(
        renderMessages(plan.messages, trans, index => this._goto(index), {
          after: this._after
        })
      );
    }
    this._select = options.select;
  }

  /** A link to a cell of the notebook after the plan: its entry here, and the cell itself if it exists now. */
  private _goto(index: number): void {
    const entry = this.node.querySelector<HTMLElement>(
      `.kerasgpu-PlanPreview-change[data-cell="${index}"]`
    );
    if (entry) {
      entry.scrollIntoView?.({ block: 'nearest' }); // Not in every DOM (jsdom).
      entry.classList.remove('kerasgpu-mod-flash');
      void entry.offsetWidth; // Restart the animation.
      entry.classList.add('kerasgpu-mod-flash');
    }
    const origin = this._after[index]?.origin;
    if (origin !== null && origin !== undefined) {
      this._select(origin);
    }
  }

  private _change(change: PlanChange, trans: TranslationBundle): HTMLElement {
    const item = el(
      'li',
      `kerasgpu-PlanPreview-change kerasgpu-mod-${change.kind}`
    );
    item.dataset.cell = String(change.index);
    const words = describeChange(change);
    item.appendChild(
      el(
        'div',
        'kerasgpu-PlanPreview-where',
        words.charAt(0).toUpperCase() + words.slice(1)
      )
    );
    const lines: IDiffLine[] =
      change.kind === 'added'
        ? change.source
            .split(/\r\n|\r|\n/)
            .map(text => ({ kind: 'added' as const, text }))
        : change.diff;
    item.appendChild(renderDiff(lines, trans));
    return item;
  }

  private _after: IPlannedCell[];
  private _select: (index: number) => void;
}

export namespace PlanPreview {
  /** What the preview shows and what its links do. */
  export interface IOptions {
    /** The tool's name, e.g. "Distribute This Notebook". */
    title: string;
    plan: IPlan;
    /** The notebook's cell sources now, as planned. */
    before: readonly string[];
    trans: TranslationBundle;
    /** Selects and scrolls to a cell of the notebook as it is now. */
    select: (index: number) => void;
  }
}

/** Shows a plan before it changes the notebook; resolves true when the user applies it. */
export async function previewPlan(
  options: PlanPreview.IOptions
): Promise<boolean> {
  const { trans } = options;
  const dialog = new Dialog({
    title: trans.__('%1: preview', options.title),
    body: new PlanPreview(options),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.okButton({
        label: trans.__('Apply'),
        caption: trans.__('Change the notebook (one undo step)')
      })
    ]
  });
  dialog.addClass('kerasgpu-PlanDialog');
  const result = await dialog.launch();
  return result.button.accept;
}

/** The full text of a tool's messages in a dialog; a cell link selects the cell and closes it. */
export async function showMessages(
  title: string,
  messages: readonly IPlanMessage[],
  trans: TranslationBundle,
  select: (index: number) => void
): Promise<void> {
  let dialog: Dialog<unknown> | null = null;
  const body = new Widget();
  body.addClass('kerasgpu-PlanPreview');
  body.node.appendChild(
    renderMessages(messages, trans, index => {
      dialog?.resolve(0);
      select(index);
    })
  );
  dialog = new Dialog({
    title,
    body,
    buttons: [Dialog.okButton({ label: trans.__('Close') })]
  });
  dialog.addClass('kerasgpu-PlanDialog');
  await dialog.launch();
}

/** A tool's messages, whole, each with a link to the cell it is about. */
export function renderMessages(
  messages: readonly IPlanMessage[],
  trans: TranslationBundle,
  goto: (index: number) => void,
  options: { after?: readonly IPlannedCell[] } = {}
): HTMLElement {
  const list = el('ul', 'kerasgpu-PlanPreview-messages');
  for (const message of messages) {
    const item = el(
      'li',
      `kerasgpu-PlanPreview-message kerasgpu-mod-${message.level}`
    );
    item.appendChild(
      el(
        'span',
        'kerasgpu-PlanPreview-level',
        message.level === 'error'
          ? trans.__('Error')
          : message.level === 'warning'
            ? trans.__('Warning')
            : trans.__('Note')
      )
    );
    item.appendChild(el('span', 'kerasgpu-PlanPreview-text', message.text));
    const label = cellLabel(message, options.after);
    if (label !== null) {
      const link = el('button', 'kerasgpu-PlanPreview-cellLink', label);
      link.setAttribute('type', 'button');
      link.title = trans.__('Select this cell and scroll to it');
      const index = message.cell!;
      link.addEventListener('click', event => {
        event.preventDefault();
        goto(index);
      });
      item.appendChild(link);
    }
    if (message.code) {
      item.dataset.code = message.code;
    }
    list.appendChild(item);
  }
  return list;
}

/** Lines of a diff, monospace, each marked + (added), - (removed) or kept. */
export function renderDiff(
  lines: readonly IDiffLine[],
  trans: TranslationBundle
): HTMLElement {
  const pre = el('pre', 'kerasgpu-PlanPreview-diff');
  pre.setAttribute('aria-label', trans.__('Code'));
  for (const line of lines) {
    const mark =
      line.kind === 'added' ? '+' : line.kind === 'removed' ? '-' : ' ';
    const row = el(
      'div',
      `kerasgpu-PlanPreview-line kerasgpu-mod-${line.kind}`,
      `${mark} ${line.text}`
    );
    pre.appendChild(row);
  }
  return pre;
}
