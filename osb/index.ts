export * from './errors.js';
export * from './headers.js';
export * from './types.js';
export * from './versions.js';
