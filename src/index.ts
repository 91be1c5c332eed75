import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  IThemeManager,
  MainAreaWidget,
  WidgetTracker
} from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { HostGpusSection } from './host-gpus-view';
import { gpuIcon } from './icons';
import { GpuModel } from './model';
import { GpuPanel, IPanelConfig } from './panel';
import { GpuStatusItem } from './statusbar';
import { ITensorFlowReply, TensorFlowCheck } from './tfcheck';
import { requestAPI } from './request';
import { connectTraining } from './training-comm';
import { IGpuModel } from './tokens';

/** Command ids. */
export namespace CommandIDs {
  export const openPanel = 'kerasgpu:open-panel';
  export const openDashboard = 'kerasgpu:open-dashboard';
  export const toggleStatusItem = 'kerasgpu:toggle-status-item';
}

const PANEL_PLUGIN = 'jupyterlab-kerasgpu:panel';

/** The page's one GPU model (one websocket), for every view and other plugins. */
const modelPlugin: JupyterFrontEndPlugin<GpuModel> = {
  id: 'jupyterlab-kerasgpu:model',
  description: 'The live GPU readings shared by every GPU view of the page.',
  autoStart: true,
  provides: IGpuModel,
  activate: (app: JupyterFrontEnd) =>
    new GpuModel({ serverSettings: app.serviceManager.serverSettings })
};

/** The "GPUs" sidebar panel, the status bar item, their commands and settings. */
const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: PANEL_PLUGIN,
  description:
    'A sidebar panel and status bar item showing each NVIDIA GPU live.',
  autoStart: true,
  requires: [IGpuModel],
  optional: [
    ILabShell,
    ICommandPalette,
    ILayoutRestorer,
    ISettingRegistry,
    IStatusBar,
    INotebookTracker,
    IThemeManager
  ],
  activate: (
    app: JupyterFrontEnd,
    model: GpuModel,
    labShell: ILabShell | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    notebooks: INotebookTracker | null,
    themes: IThemeManager | null
  ) => {
    const tfCheck = new TensorFlowCheck(app.serviceManager.serverSettings, {
      // the notebook tools' command (src/notebook-tools.ts), run as it is
      insertVerificationCell: () =>
        void app.commands.execute('kerasgpu:insert-verification-cell')
    });
    // The driver's state changed: the verdict is worded with it, so it is asked again.
    let driverCode = model.status?.code ?? null;
    model.changed.connect((_, change) => {
      const code = model.status?.code ?? null;
      if (change === 'status' && code !== driverCode) {
        driverCode = code;
        void tfCheck.recheck();
      }
    });
    // each notebook's running fit, from its kernel's `kerasgpu` comm
    // A finding's input-pipeline fix runs the notebook tools' command (src/notebook-tools.ts).
    const training = connectTraining(notebooks, (path, fix) => {
      void app.commands.execute('kerasgpu:fix-input-pipeline', {
        path,
        dataset: fix.dataset,
        fixes: fix.fixes
      });
    });
    const extra = document.createElement('div');
    // the GPUs of the host where the current notebook's kernel runs, when not the server's
    const hostGpus = new HostGpusSection({ notebooks, serverModel: model });
    extra.append(tfCheck.node, training.node, hostGpus.node);
    const openPath = (path: string) =>
      void app.commands.execute('docmanager:open', { path });
    const panel = new GpuPanel({
      model,
      extra,
      currentKernel: () =>
        notebooks?.currentWidget?.sessionContext.session?.kernel?.id ?? null,
      onShow: () => checkTensorFlow(),
      openPath,
      themeChanged: themes?.themeChanged ?? null,
      // JupyterLab's main area takes a dashboard tab; Notebook 7's holds one document.
      openDashboard: labShell
        ? () => void app.commands.execute(CommandIDs.openDashboard)
        : undefined
    });
    panel.title.icon = gpuIcon;
    panel.title.caption = 'GPUs';
    // JupyterLab's right sidebar, or Notebook 7's right side panel (it has no ILabShell).
    app.shell.add(panel, 'right', { rank: 600 });

    // "TensorFlow sees N of M GPUs" for the current notebook's kernel, while the panel shows.
    const currentKernelId = () =>
      notebooks?.currentWidget?.sessionContext.session?.kernel?.id ?? null;
    function checkTensorFlow(refresh = false): void {
      if (panel.isVisible) {
        void tfCheck.check(currentKernelId(), refresh);
      }
    }
    notebooks?.currentChanged.connect(() => {
      checkTensorFlow();
      panel.refreshMarks();
    });
    notebooks?.widgetAdded.connect((_, nb) => {
      // A new kernel, or a restart (same id: maybe after `pip install`), asks again
      // past the server's cache, for the notebook in front only.
      const recheck = () => {
        statusItem?.refreshKernel(
          nb.sessionContext.session?.kernel?.id ?? null
        );
        if (nb === notebooks.currentWidget) {
          checkTensorFlow(true);
        }
      };
      nb.sessionContext.kernelChanged.connect(recheck);
      let restarting = false;
      nb.sessionContext.statusChanged.connect((_, status) => {
        if (status === 'restarting' || status === 'autorestarting') {
          restarting = true;
        } else if (restarting && status === 'idle') {
          restarting = false;
          recheck();
        }
      });
    });
    labShell?.currentChanged.connect(() => checkTensorFlow());

    restorer?.add(panel, 'jupyterlab-kerasgpu:panel');

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Open the GPU Panel',
      caption: 'Show live memory and utilization of each NVIDIA GPU',
      icon: gpuIcon,
      execute: () => {
        app.shell.activateById(panel.id);
      }
    });
    palette?.addItem({ command: CommandIDs.openPanel, category: 'GPU' });

    // The same GPUs as a main-area tab (a big screen, like nvdashboard's): full cards in a grid.
    const dashboards = new WidgetTracker<MainAreaWidget<GpuPanel>>({
      namespace: 'kerasgpu-dashboard'
    });
    let dashboardConfig: IPanelConfig | null = null;
    app.commands.addCommand(CommandIDs.openDashboard, {
      label: 'Open the GPU Dashboard',
      caption: 'Every GPU with large history charts, in a main-area tab',
      icon: gpuIcon,
      isEnabled: () => labShell !== null,
      execute: () => {
        const open = dashboards.currentWidget;
        if (open && !open.isDisposed) {
          app.shell.activateById(open.id);
          return;
        }
        const content = new GpuPanel({
          model,
          id: 'jp-kerasgpu-dashboard-content',
          layout: 'dashboard',
          openPath,
          themeChanged: themes?.themeChanged ?? null
        });
        if (dashboardConfig) {
          content.config = dashboardConfig;
        }
        const widget = new MainAreaWidget({ content });
        widget.id = 'jp-kerasgpu-dashboard';
        widget.title.label = 'GPU Dashboard';
        widget.title.icon = gpuIcon;
        widget.title.closable = true;
        app.shell.add(widget, 'main');
        void dashboards.add(widget);
        app.shell.activateById(widget.id);
      }
    });
    palette?.addItem({ command: CommandIDs.openDashboard, category: 'GPU' });
    if (restorer && labShell) {
      void restorer.restore(dashboards, {
        command: CommandIDs.openDashboard,
        name: () => 'dashboard'
      });
    }

    let statusItem: GpuStatusItem | null = null;
    if (statusBar) {
      statusItem = new GpuStatusItem({
        model,
        currentKernel: () =>
          notebooks?.currentWidget?.sessionContext.session?.kernel?.id ?? null,
        onClick: () => app.shell.activateById(panel.id),
        remote: () => hostGpus.remote,
        probe: kernelId =>
          requestAPI<ITensorFlowReply>(
            `tensorflow?kernel_id=${encodeURIComponent(kernelId)}`,
            {},
            app.serviceManager.serverSettings
          )
      });
      statusBar.registerStatusItem('jupyterlab-kerasgpu:status', {
        item: statusItem,
        align: 'left',
        rank: 50
      });
      statusItem.setEnabled(DEFAULT_SHOW_STATUS);
      hostGpus.remoteChanged.connect(() => statusItem?.update());
      notebooks?.currentChanged.connect(() => statusItem?.update());
    }

    let settings: ISettingRegistry.ISettings | null = null;
    app.commands.addCommand(CommandIDs.toggleStatusItem, {
      label: 'Show GPU Status in the Status Bar',
      caption: 'Show or hide GPU memory and utilization in the status bar',
      isToggled: () => (statusItem ? !statusItem.isHidden : false),
      isEnabled: () => statusItem !== null,
      execute: async () => {
        const show = !(statusItem && !statusItem.isHidden);
        if (settings) {
          await settings.set('showStatusItem', show);
        } else {
          statusItem?.setEnabled(show);
        }
      }
    });
    palette?.addItem({ command: CommandIDs.toggleStatusItem, category: 'GPU' });

    if (settingRegistry) {
      settingRegistry
        .load(PANEL_PLUGIN)
        .then(loaded => {
          settings = loaded;
          const apply = () => {
            const c = loaded.composite as Record<string, any>;
            model.processesInterval = c.refreshInterval;
            model.historySeconds = c.historyMinutes * 60;
            dashboardConfig = {
              showChart: c.showChart,
              showTemperature: c.showTemperature,
              showPower: c.showPower,
              showClocks: c.showClocks,
              compactThreshold: c.compactThreshold
            };
            panel.config = dashboardConfig;
            dashboards.forEach(w => (w.content.config = dashboardConfig!));
            statusItem?.setEnabled(c.showStatusItem);
            app.commands.notifyCommandChanged(CommandIDs.toggleStatusItem);
          };
          apply();
          loaded.changed.connect(apply);
        })
        .catch(reason => {
          console.error('jupyterlab-kerasgpu: cannot load settings.', reason);
        });
    }
  }
};

const DEFAULT_SHOW_STATUS = true;

export { IGpuModel } from './tokens';
import { notebookToolsPlugin } from './notebook-tools';
import { fleetPlugin } from './fleet-plugin';
export default [modelPlugin, panelPlugin, notebookToolsPlugin, fleetPlugin];
