import { LabIcon } from '@jupyterlab/ui-components';

const GPU_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M2 7h1V5h2v2h14a2 2 0 0 1 2 2v7a2 2 0 0 1-2 2h-6v2H5v-2H3V7H2zm3 2v7h14V9H5zm2 1.5h4v4H7v-4zm6 0h4v1.5h-4V10.5zm0 2.5h4v1.5h-4V13z"/>
  </g>
</svg>`;

/** The GPU icon of the sidebar tab and the status bar item. */
export const gpuIcon = new LabIcon({ name: 'kerasgpu:gpu', svgstr: GPU_SVG });
