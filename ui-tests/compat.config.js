/**
 * The compatibility tier (make test-compat): plain Playwright in Debian's Chromium against the
 * oldest supported JupyterLab (4.0) and Jupyter Notebook 7, each in its own environment with the
 * package installed from its wheel. Galata is not used: its helpers are built for the newest lab.
 */
module.exports = {
  testDir: './compat',
  workers: 1,
  retries: process.env.CI ? 1 : 0,
  timeout: 180_000,
  expect: { timeout: 30_000 },
  reporter: [['list']],
  use: {
    video: 'off',
    trace: 'off',
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking'
      ]
    }
  }
};
