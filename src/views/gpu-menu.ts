import { TranslationBundle } from '@jupyterlab/translation';
import { caretDownEmptyIcon } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { ReadonlyJSONObject } from '@lumino/coreutils';
import { Menu, Widget } from '@lumino/widgets';

import { gpuIcon } from './icons';

/** One entry of the GPU menu: a command and its arguments, or a separator. */
export type GpuMenuEntry =
  { command: string; args?: ReadonlyJSONObject } | { separator: true };

/**
 * The notebook toolbar's *GPU* menu: one labelled button ("GPU ▾") that opens
 * the notebook tools by name. A real <button>: Tab reaches it; Enter, Space or
 * ArrowDown opens the menu, whose arrows and Enter pick a tool; Escape closes it
 * and gives the focus back to the button.
 */
export class GpuMenuButton extends Widget {
  constructor(options: GpuMenuButton.IOptions) {
    super({ node: document.createElement('div') });
    this.addClass('jp-kerasgpu-GpuMenu');
    this._commands = options.commands;
    this._entries = options.entries;
    const trans = options.trans;
    const button = document.createElement('button');
    button.type = 'button';
    button.className =
      'jp-ToolbarButtonComponent jp-Button jp-mod-minimal jp-kerasgpu-GpuMenu-button';
    button.setAttribute('aria-haspopup', 'menu');
    button.setAttribute('aria-expanded', 'false');
    button.setAttribute('aria-label', trans.__('GPU tools'));
    button.title = trans.__(
      'GPU tools for this notebook: the verification cell, distribution, mixed precision, memory settings, snippets'
    );
    const icon = gpuIcon.element({
      tag: 'span',
      className: 'jp-kerasgpu-GpuMenu-icon'
    });
    const label = document.createElement('span');
    label.className = 'jp-ToolbarButtonComponent-label';
    label.textContent = trans.__('GPU');
    const caret = caretDownEmptyIcon.element({
      tag: 'span',
      className: 'jp-kerasgpu-GpuMenu-caret'
    });
    button.append(icon, label, caret);
    this.node.appendChild(button);
    this._button = button;
    button.addEventListener('click', this._onClick);
    button.addEventListener('keydown', this._onKeyDown);
  }

  /** The open menu, if any. */
  get menu(): Menu | null {
    return this._menu;
  }

  /** Opens the menu below the button (its first enabled item active when `fromKeyboard`). */
  open(fromKeyboard = false): void {
    if (this._menu) {
      return;
    }
    const menu = new Menu({ commands: this._commands });
    menu.addClass('jp-kerasgpu-GpuMenu-menu');
    menu.id = 'jp-kerasgpu-gpu-menu';
    for (const entry of this._entries()) {
      if ('separator' in entry) {
        menu.addItem({ type: 'separator' });
      } else {
        menu.addItem({ command: entry.command, args: entry.args ?? {} });
      }
    }
    this._menu = menu;
    this._button.setAttribute('aria-expanded', 'true');
    menu.aboutToClose.connect(() => {
      if (this._menu !== menu) {
        return; // closing again while being disposed
      }
      this._menu = null;
      this._closedAt = Date.now();
      this._button.setAttribute('aria-expanded', 'false');
      // Disposed once closed (disposing it here would close it again: Lumino 2.0 recurses).
      // After a pick the tool takes the focus; after Escape it comes back here.
      requestAnimationFrame(() => {
        menu.dispose();
        if (
          !document.activeElement ||
          document.activeElement === document.body
        ) {
          this._button.focus();
        }
      });
    });
    const rect = this._button.getBoundingClientRect();
    menu.open(rect.left, rect.bottom, { forceX: false, forceY: false });
    if (fromKeyboard) {
      menu.activateNextItem();
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._menu?.close();
    this._button.removeEventListener('click', this._onClick);
    this._button.removeEventListener('keydown', this._onKeyDown);
    super.dispose();
  }

  private _onClick = (event: MouseEvent): void => {
    // A click from the keyboard (Enter, Space) has no pointer press (detail 0).
    const fromKeyboard = event.detail === 0;
    // The press on this button that closed the open menu does not reopen it.
    if (!fromKeyboard && Date.now() - this._closedAt < 300) {
      return;
    }
    this.open(fromKeyboard);
  };

  private _onKeyDown = (event: KeyboardEvent): void => {
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      this.open(true);
    }
  };

  private _button: HTMLButtonElement;
  private _closedAt = 0;
  private _commands: CommandRegistry;
  private _entries: () => GpuMenuEntry[];
  private _menu: Menu | null = null;
}

export namespace GpuMenuButton {
  export interface IOptions {
    commands: CommandRegistry;
    /** The menu's entries, read each time it opens (the catalog may have arrived since). */
    entries: () => GpuMenuEntry[];
    trans: TranslationBundle;
  }
}
