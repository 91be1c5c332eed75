import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  WidgetTracker
} from '@jupyterlab/apputils';

import { FleetModel } from '../models/fleet';
import { FleetView } from '../views/fleet-view';
import { gpuIcon } from '../views/icons';

/** The command that opens (or brings forward) the GPU Fleet. */
export const OPEN_FLEET = 'kerasgpu:open-fleet';

/** "GPU: Open the GPU Fleet": the GPU hosts a Prometheus scrapes, in the main area. */
export const fleetPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-kerasgpu:fleet',
  description:
    'A main-area view of every GPU host an existing Prometheus scrapes, sorted by where a job fits now.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const tracker = new WidgetTracker<MainAreaWidget<FleetView>>({
      namespace: 'kerasgpu-fleet'
    });
    app.commands.addCommand(OPEN_FLEET, {
      label: 'Open the GPU Fleet',
      caption: 'GPU hosts from Prometheus: which GPUs are free now',
      icon: gpuIcon,
      execute: () => {
        let widget = tracker.currentWidget;
        if (!widget || widget.isDisposed) {
          const model = new FleetModel({
            serverSettings: app.serviceManager.serverSettings
          });
          const content = new FleetView({ model });
          widget = new MainAreaWidget({ content });
          widget.id = 'jp-kerasgpu-fleet';
          widget.title.label = 'GPU Fleet';
          widget.title.icon = gpuIcon;
          widget.title.closable = true;
          widget.disposed.connect(() => model.dispose());
          void tracker.add(widget);
        }
        if (!widget.isAttached) {
          app.shell.add(widget, 'main');
        }
        app.shell.activateById(widget.id);
        return widget;
      }
    });
    palette?.addItem({ command: OPEN_FLEET, category: 'GPU' });
    void restorer?.restore(tracker, {
      command: OPEN_FLEET,
      name: () => 'kerasgpu-fleet'
    });
  }
};
