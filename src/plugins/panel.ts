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

import { fetchTensorFlow } from '../api/tensorflow';
import { GpuModel } from '../models/model';
import { connectKernels } from '../models/training-comm';
import { TrainingModel } from '../models/training';
import { IGpuModel, ITrainingModel } from '../tokens';
import { HostGpusSection } from '../views/host-gpus-view';
import { gpuIcon } from '../views/icons';
import { GpuPanel, IPanelConfig } from '../views/panel';
import { GpuStatusItem } from '../views/statusbar';
import { TensorFlowCheck } from '../views/tfcheck';
import { TrainingCards } from '../views/training-card';

/** Command ids. */
export namespace CommandIDs {
  export const openPanel = 'kerasgpu:open-panel';
  export const openDashboard = 'kerasgpu:open-dashboard';
  export const toggleStatusItem = 'kerasgpu:toggle-status-item';
}

const PANEL_PLUGIN = 'jupyterlab-kerasgpu:panel';
const CATEGORY = 'GPU';
const DEFAULT_SHOW_STATUS = true;

/** The page's one GPU model (one websocket), for every view and other plugins. */
export const modelPlugin: JupyterFrontEndPlugin<GpuModel> = {
  id: 'jupyterlab-kerasgpu:model',
  description: 'The live GPU readings shared by every GPU view of the page.',
  autoStart: true,
  provides: IGpuModel,
  activate: (app: JupyterFrontEnd) =>
    new GpuModel({ serverSettings: app.serviceManager.serverSettings })
};

/** Each notebook's watched `fit`, from its kernel's comm: the panel's cards and the tools read it. */
export const trainingPlugin: JupyterFrontEndPlugin<TrainingModel> = {
  id: 'jupyterlab-kerasgpu:training',
  description:
    "Each notebook's training progress and findings, from its kernel.",
  autoStart: true,
  provides: ITrainingModel,
  optional: [INotebookTracker],
  activate: (app: JupyterFrontEnd, notebooks: INotebookTracker | null) => {
    const model = new TrainingModel();
    connectKernels(notebooks, model);
    return model;
  }
};

/** What the panel plugin's parts share. */
interface IPanelParts {
  app: JupyterFrontEnd;
  model: GpuModel;
  notebooks: INotebookTracker | null;
  labShell: ILabShell | null;
  palette: ICommandPalette | null;
  themes: IThemeManager | null;
}

/** The "GPUs" sidebar panel, the status bar item, their commands and settings. */
export const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: PANEL_PLUGIN,
  description:
    'A sidebar panel and status bar item showing each NVIDIA GPU live.',
  autoStart: true,
  requires: [IGpuModel, ITrainingModel],
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
    training: TrainingModel,
    labShell: ILabShell | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    notebooks: INotebookTracker | null,
    themes: IThemeManager | null
  ) => {
    const parts: IPanelParts = {
      app,
      model,
      notebooks,
      labShell,
      palette,
      themes
    };
    const tfCheck = tensorFlowCheck(app, model);
    // the GPUs of the host where the current notebook's kernel runs, when not the server's
    const hostGpus = new HostGpusSection({ notebooks, serverModel: model });
    const panel = sidebarPanel(parts, tfCheck, hostGpus, training);
    app.shell.add(panel, 'right', { rank: 600 });
    restorer?.add(panel, 'jupyterlab-kerasgpu:panel');
    addOpenPanelCommand(parts, panel);
    const statusItem = statusBar
      ? addStatusItem(parts, statusBar, panel, hostGpus)
      : null;
    followNotebooks(parts, panel, tfCheck, statusItem);
    const dashboards = addDashboard(parts, restorer);
    const settings = addToggleStatusCommand(parts, statusItem);
    if (settingRegistry) {
      loadPanelSettings(settingRegistry, loaded => {
        settings.current = loaded;
        const c = loaded.composite as Record<string, any>;
        model.processesInterval = c.refreshInterval;
        model.historySeconds = c.historyMinutes * 60;
        const config: IPanelConfig = {
          showChart: c.showChart,
          showTemperature: c.showTemperature,
          showPower: c.showPower,
          showClocks: c.showClocks,
          compactThreshold: c.compactThreshold
        };
        panel.config = config;
        dashboards.config = config;
        dashboards.tracker.forEach(w => (w.content.config = config));
        statusItem?.setEnabled(c.showStatusItem);
        app.commands.notifyCommandChanged(CommandIDs.toggleStatusItem);
      });
    }
  }
};

/** "TensorFlow sees N of M GPUs", asked again when the driver's state changes (the verdict names it). */
function tensorFlowCheck(app: JupyterFrontEnd, model: GpuModel) {
  const tfCheck = new TensorFlowCheck(app.serviceManager.serverSettings, {
    // the notebook tools' command (src/plugins/notebook-tools.ts), run as it is
    insertVerificationCell: () =>
      void app.commands.execute('kerasgpu:insert-verification-cell')
  });
  let driverCode = model.status?.code ?? null;
  model.changed.connect((_, change) => {
    const code = model.status?.code ?? null;
    if (change === 'status' && code !== driverCode) {
      driverCode = code;
      void tfCheck.recheck();
    }
  });
  return tfCheck;
}

function currentKernelId(notebooks: INotebookTracker | null): string | null {
  return notebooks?.currentWidget?.sessionContext.session?.kernel?.id ?? null;
}

/** The sidebar panel: the TensorFlow line, the training cards, a remote host's GPUs, then the GPUs. */
function sidebarPanel(
  parts: IPanelParts,
  tfCheck: TensorFlowCheck,
  hostGpus: HostGpusSection,
  training: TrainingModel
): GpuPanel {
  const { app, labShell, notebooks } = parts;
  // A finding's input-pipeline fix runs the notebook tools' command.
  const cards = new TrainingCards({
    model: training,
    fixPipeline: (path, fix) =>
      void app.commands.execute('kerasgpu:fix-input-pipeline', {
        path,
        dataset: fix.dataset,
        fixes: fix.fixes
      })
  });
  const extra = document.createElement('div');
  extra.append(tfCheck.node, cards.node, hostGpus.node);
  const panel: GpuPanel = new GpuPanel({
    model: parts.model,
    extra,
    currentKernel: () => currentKernelId(notebooks),
    onShow: () => {
      void tfCheck.check(currentKernelId(notebooks), false);
    },
    openPath: openPathIn(app),
    themeChanged: parts.themes?.themeChanged ?? null,
    // JupyterLab's main area takes a dashboard tab; Notebook 7's holds one document.
    openDashboard: labShell
      ? () => void app.commands.execute(CommandIDs.openDashboard)
      : undefined
  });
  panel.title.icon = gpuIcon;
  panel.title.caption = 'GPUs';
  return panel;
}

function openPathIn(app: JupyterFrontEnd): (path: string) => void {
  return path => void app.commands.execute('docmanager:open', { path });
}

/**
 * Asks again what TensorFlow sees when the notebook in front changes, and when
 * a notebook's kernel changes or restarts (maybe after `pip install`).
 */
function followNotebooks(
  parts: IPanelParts,
  panel: GpuPanel,
  tfCheck: TensorFlowCheck,
  statusItem: GpuStatusItem | null
): void {
  const { notebooks } = parts;
  const check = (refresh = false) => {
    if (panel.isVisible) {
      void tfCheck.check(currentKernelId(notebooks), refresh);
    }
  };
  notebooks?.currentChanged.connect(() => {
    check();
    panel.refreshMarks();
  });
  notebooks?.widgetAdded.connect((_, nb) => {
    // A new kernel, or a restart, asks again past the server's cache, for the notebook in front only.
    const recheck = () => {
      statusItem?.refreshKernel(nb.sessionContext.session?.kernel?.id ?? null);
      if (nb === notebooks.currentWidget) {
        check(true);
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
  parts.labShell?.currentChanged.connect(() => check());
}

function addOpenPanelCommand(parts: IPanelParts, panel: GpuPanel): void {
  parts.app.commands.addCommand(CommandIDs.openPanel, {
    label: 'Open the GPU Panel',
    caption: 'Show live memory and utilization of each NVIDIA GPU',
    icon: gpuIcon,
    execute: () => {
      parts.app.shell.activateById(panel.id);
    }
  });
  parts.palette?.addItem({ command: CommandIDs.openPanel, category: CATEGORY });
}

/** The open dashboards and the settings they take. */
interface IDashboards {
  tracker: WidgetTracker<MainAreaWidget<GpuPanel>>;
  config: IPanelConfig | null;
}

/** The same GPUs as a main-area tab (a big screen, like nvdashboard's): full cards in a grid. */
function addDashboard(
  parts: IPanelParts,
  restorer: ILayoutRestorer | null
): IDashboards {
  const { app, labShell } = parts;
  const dashboards: IDashboards = {
    tracker: new WidgetTracker<MainAreaWidget<GpuPanel>>({
      namespace: 'kerasgpu-dashboard'
    }),
    config: null
  };
  app.commands.addCommand(CommandIDs.openDashboard, {
    label: 'Open the GPU Dashboard',
    caption: 'Every GPU with large history charts, in a main-area tab',
    icon: gpuIcon,
    isEnabled: () => labShell !== null,
    execute: () => openDashboard(parts, dashboards)
  });
  parts.palette?.addItem({
    command: CommandIDs.openDashboard,
    category: CATEGORY
  });
  if (restorer && labShell) {
    void restorer.restore(dashboards.tracker, {
      command: CommandIDs.openDashboard,
      name: () => 'dashboard'
    });
  }
  return dashboards;
}

/** Shows the dashboard tab: the open one, else a new one. */
function openDashboard(parts: IPanelParts, dashboards: IDashboards): void {
  const { app } = parts;
  const open = dashboards.tracker.currentWidget;
  if (open && !open.isDisposed) {
    app.shell.activateById(open.id);
    return;
  }
  const content = new GpuPanel({
    model: parts.model,
    id: 'jp-kerasgpu-dashboard-content',
    layout: 'dashboard',
    openPath: openPathIn(app),
    themeChanged: parts.themes?.themeChanged ?? null
  });
  if (dashboards.config) {
    content.config = dashboards.config;
  }
  const widget = new MainAreaWidget({ content });
  widget.id = 'jp-kerasgpu-dashboard';
  widget.title.label = 'GPU Dashboard';
  widget.title.icon = gpuIcon;
  widget.title.closable = true;
  app.shell.add(widget, 'main');
  void dashboards.tracker.add(widget);
  app.shell.activateById(widget.id);
}

/** The status bar item: this notebook's GPUs (or the machine's); a click opens the panel. */
function addStatusItem(
  parts: IPanelParts,
  statusBar: IStatusBar,
  panel: GpuPanel,
  hostGpus: HostGpusSection
): GpuStatusItem {
  const { app, notebooks } = parts;
  const statusItem = new GpuStatusItem({
    model: parts.model,
    currentKernel: () => currentKernelId(notebooks),
    onClick: () => app.shell.activateById(panel.id),
    remote: () => hostGpus.remote,
    probe: kernelId =>
      fetchTensorFlow(kernelId, false, app.serviceManager.serverSettings)
  });
  statusBar.registerStatusItem('jupyterlab-kerasgpu:status', {
    item: statusItem,
    align: 'left',
    rank: 50
  });
  statusItem.setEnabled(DEFAULT_SHOW_STATUS);
  hostGpus.remoteChanged.connect(() => statusItem.update());
  notebooks?.currentChanged.connect(() => statusItem.update());
  return statusItem;
}

/** Shows or hides the status item (through the setting once it is loaded). */
function addToggleStatusCommand(
  parts: IPanelParts,
  statusItem: GpuStatusItem | null
): { current: ISettingRegistry.ISettings | null } {
  const settings: { current: ISettingRegistry.ISettings | null } = {
    current: null
  };
  parts.app.commands.addCommand(CommandIDs.toggleStatusItem, {
    label: 'Show GPU Status in the Status Bar',
    caption: 'Show or hide GPU memory and utilization in the status bar',
    isToggled: () => (statusItem ? !statusItem.isHidden : false),
    isEnabled: () => statusItem !== null,
    execute: async () => {
      const show = !(statusItem && !statusItem.isHidden);
      if (settings.current) {
        await settings.current.set('showStatusItem', show);
      } else {
        statusItem?.setEnabled(show);
      }
    }
  });
  parts.palette?.addItem({
    command: CommandIDs.toggleStatusItem,
    category: CATEGORY
  });
  return settings;
}

/** Loads the panel's settings and calls `apply` now and on each change. */
function loadPanelSettings(
  registry: ISettingRegistry,
  apply: (settings: ISettingRegistry.ISettings) => void
): void {
  registry
    .load(PANEL_PLUGIN)
    .then(loaded => {
      apply(loaded);
      loaded.changed.connect(() => apply(loaded));
    })
    .catch(reason => {
      console.error('jupyterlab-kerasgpu: cannot load settings.', reason);
    });
}
