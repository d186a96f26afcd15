// @nodepool-ts/core/config: nodepool.yaml, the secure file and clouds.yaml as a typed Config.
export * from './types.js';
export { ConfigError, formatIssue, type ConfigIssue } from './errors.js';
export { loadConfig, validateConfig, resolveStateDir, type LoadOptions } from './load.js';
export { loadCloudsYaml, cloudsSearchPath, type CloudsOptions } from './clouds.js';
export { providersEqual } from './compare.js';
export { isCronExpression } from './schema.js';
export { runConfigValidate } from './validate-cli.js';
