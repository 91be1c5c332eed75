const jestJupyterLab = require('@jupyterlab/testing/lib/jest-config');

// ESM packages that @jupyterlab/notebook and friends pull in: jest must transform them.
const esModules = [
  '@codemirror',
  '@jupyter/ydoc',
  '@jupyter/react-components',
  '@jupyter/web-components',
  '@jupyterlab/',
  '@lezer',
  '@marijn',
  '@microsoft',
  'color',
  'exenv-es6',
  'lib0',
  'marked',
  'nanoid',
  'uplot',
  'vscode-ws-jsonrpc',
  'y-protocols',
  'y-websocket',
  'yjs'
].join('|');

const baseConfig = jestJupyterLab(__dirname);

module.exports = {
  ...baseConfig,
  automock: false,
  roots: ['<rootDir>/src'],
  collectCoverageFrom: ['src/**/*.{ts,tsx}', '!src/**/*.d.ts'],
  coverageReporters: ['text-summary'],
  reporters: ['default'],
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  // The websocket tests wait for a real server's messages: on a loaded 2-core CI machine a
  // wait can pass jest's 5 s default although nothing is wrong (their own waits say what hung).
  testTimeout: 30000,
  transformIgnorePatterns: [`/node_modules/(?!${esModules}).+`]
};
