/**
 * The server's HTTP API, one module per resource, named as the Python handler
 * modules (python_ext/kerasgpu/server/): each endpoint's JSON types and call.
 */
export * from './request';
export * from './gpu';
export * from './stream';
export * from './tensorflow';
export * from './notebook';
export * from './fleet';
