import { Notification } from '@jupyterlab/apputils';
import { Notebook, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';

import {
  IPlan,
  IPlanMessage,
  NotebookTool,
  requestPlan
} from '../api/notebook';
import { applyPlan, planCells } from './notebook-edits';
import { previewPlan, showMessages } from '../views/plan-dialog';
import { cellLabel, hasEdits, toastText } from './plan-preview';

/** The command a plan message may offer (`IPlanMessage.action`). */
export const DISTRIBUTE_COMMAND = 'kerasgpu:distribute-notebook';

/**
 * Runs the notebook tools: asks the server's planner what a tool does to a
 * notebook, previews the edits (unless the setting turns that off), applies
 * them as one undo step, and tells the user what the plan said.
 */
export class ToolRunner {
  constructor(options: ToolRunner.IOptions) {
    this._commands = options.commands;
    this._serverSettings = options.serverSettings;
    this._trans = options.trans;
  }

  /** Show each tool's edits before applying them (setting `previewEdits`). */
  previewEdits = true;

  /**
   * Asks the server for the tool's plan, shows what it changes and applies it
   * to the notebook as one undo step. Resolves with the plan applied (or
   * refused), null when nothing was applied (an error is told to the user).
   */
  async run(
    panel: NotebookPanel,
    tool: NotebookTool,
    options: Record<string, unknown> = {},
    title = ''
  ): Promise<IPlan | null> {
    const shared = panel.model?.sharedModel;
    if (!shared) {
      return null;
    }
    title = title || this._trans.__('The GPU tool');
    const before = shared.cells.map(cell => cell.getSource());
    const active = panel.content.activeCell
      ? panel.content.activeCellIndex
      : null;
    let plan: IPlan;
    try {
      plan = await requestPlan(
        tool,
        planCells(shared),
        active,
        options,
        this._serverSettings
      );
    } catch (reason) {
      return this.fail(panel, title, reason);
    }
    if (panel.isDisposed || !panel.model) {
      return null;
    }
    if (!hasEdits(plan)) {
      // Refused, or nothing to do: the reason in full, nothing changed.
      this._select(panel, plan.select);
      this.tell(panel, title, plan.messages);
      return plan;
    }
    return this._apply(panel, plan, before, title);
  }

  /** Tells the user that `title` changed nothing, and why; resolves nothing. */
  fail(panel: NotebookPanel, title: string, reason: unknown): null {
    const text = this._trans.__(
      '%1 did not change the notebook: %2',
      title,
      reason instanceof Error ? reason.message : String(reason)
    );
    this.tell(panel, title, [{ level: 'error', text }]);
    return null;
  }

  /**
   * Tells the user what the plan said, as notifications: text that fits a
   * toast whole, else its start and a Details action with the full text; a
   * link to the cell a message is about; the command a message offers.
   */
  tell(
    panel: NotebookPanel,
    title: string,
    messages: readonly IPlanMessage[]
  ): void {
    for (const message of messages) {
      const { text, cut } = toastText(message.text);
      const notify =
        message.level === 'error'
          ? Notification.error
          : message.level === 'warning'
            ? Notification.warning
            : Notification.info;
      notify(text, {
        autoClose: message.level === 'info' && !cut ? 6000 : false,
        actions: this._actions(panel, title, message, cut)
      });
    }
  }

  /** Selects a cell of a notebook and scrolls to it. */
  selectCell(panel: NotebookPanel, index: number): void {
    if (
      !panel.isDisposed &&
      index >= 0 &&
      index < panel.content.widgets.length
    ) {
      activateCell(panel.content, index);
    }
  }

  private async _apply(
    panel: NotebookPanel,
    plan: IPlan,
    before: string[],
    title: string
  ): Promise<IPlan | null> {
    let shown = false;
    if (this.previewEdits) {
      let accepted: boolean;
      try {
        accepted = await previewPlan({
          title,
          plan,
          before,
          trans: this._trans,
          select: index => this.selectCell(panel, index)
        });
      } catch (reason) {
        return this.fail(panel, title, reason);
      }
      if (!accepted || panel.isDisposed || !panel.model) {
        return null;
      }
      shown = true;
    }
    try {
      applyPlan(panel.model!.sharedModel, plan, before);
    } catch (reason) {
      return this.fail(panel, title, reason);
    }
    this._select(panel, plan.select);
    // Notes were read in the preview; what still needs doing stays in the notification centre.
    this.tell(
      panel,
      title,
      shown
        ? plan.messages.filter(message => message.level !== 'info')
        : plan.messages
    );
    return plan;
  }

  private _select(panel: NotebookPanel, index: number | null): void {
    if (index !== null && index !== undefined) {
      this.selectCell(panel, index);
    }
  }

  /** A message's actions: its cell, its whole text, the command it offers. */
  private _actions(
    panel: NotebookPanel,
    title: string,
    message: IPlanMessage,
    cut: boolean
  ): Notification.IAction[] {
    const trans = this._trans;
    const actions: Notification.IAction[] = [];
    const label = cellLabel(message);
    // Found by id when the link is followed, wherever the cell is then.
    const go =
      typeof message.cell === 'number'
        ? this._cellLink(panel, message.cell)
        : () => undefined;
    if (label !== null) {
      actions.push({
        label: trans.__('Cell %1', message.cell! + 1),
        caption: trans.__('Select %1 and scroll to it', label),
        displayType: 'link',
        callback: event => {
          event.preventDefault(); // The toast stays: Details may follow.
          go();
        }
      });
    }
    if (cut) {
      actions.push({
        label: trans.__('Details'),
        caption: trans.__('The whole message'),
        callback: () => {
          void showMessages(title, [message], trans, () => go());
        }
      });
    }
    if (message.action === 'distribute-notebook') {
      actions.push({
        label: trans.__('Distribute This Notebook'),
        caption: trans.__(
          'One strategy for the whole notebook, before the first model is built'
        ),
        callback: () => {
          void this._commands.execute(DISTRIBUTE_COMMAND);
        }
      });
    }
    return actions;
  }

  /**
   * A link to the cell now at `index` that still finds it after later edits
   * move it (notifications stay in the notification centre).
   */
  private _cellLink(panel: NotebookPanel, index: number): () => void {
    const id = panel.model?.sharedModel.cells[index]?.id;
    return () => {
      const cells = panel.model?.sharedModel.cells ?? [];
      const now = id ? cells.findIndex(cell => cell.id === id) : -1;
      this.selectCell(panel, now >= 0 ? now : index);
    };
  }

  private _commands: CommandRegistry;
  private _serverSettings: ServerConnection.ISettings;
  private _trans: TranslationBundle;
}

export namespace ToolRunner {
  export interface IOptions {
    commands: CommandRegistry;
    serverSettings: ServerConnection.ISettings;
    trans: TranslationBundle;
  }
}

/** Makes one cell the active and only selected one, and scrolls to it. */
export function activateCell(notebook: Notebook, index: number): void {
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  const cell = notebook.widgets[index];
  if (cell) {
    void notebook.scrollToCell(cell).catch(() => undefined);
  }
}
