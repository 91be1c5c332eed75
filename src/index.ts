import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { gpuIcon } from './icons';
import { GpuModel } from './model';
import { GpuPanel } from './panel';

/** Command ids. */
export namespace CommandIDs {
  export const openPanel = 'kerasgpu:open-panel';
}

const PLUGIN_ID = 'jupyterlab-kerasgpu:panel';

/** The "GPUs" sidebar panel and its palette command. */
const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'A sidebar panel showing each NVIDIA GPU live.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, ILayoutRestorer, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    const model = new GpuModel({
      serverSettings: app.serviceManager.serverSettings
    });
    const panel = new GpuPanel({ model });
    panel.title.icon = gpuIcon;
    panel.title.caption = 'GPUs';
    labShell.add(panel, 'right', { rank: 600 });
    restorer?.add(panel, 'jupyterlab-kerasgpu:panel');

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Open the GPU Panel',
      caption: 'Show live memory and utilization of each NVIDIA GPU',
      icon: gpuIcon,
      execute: () => {
        labShell.activateById(panel.id);
      }
    });
    palette?.addItem({ command: CommandIDs.openPanel, category: 'GPU' });

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () => {
            model.refreshInterval = settings.composite
              .refreshInterval as number;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error('jupyterlab-kerasgpu: cannot load settings.', reason);
        });
    }
  }
};

export default [panelPlugin];
