// @nodepool-ts/driver-static: pre-existing hosts as Nodepool nodes (§3.7, §5.6), alive checks
// over TCP + SSH, the ready-script runner every driver may use, and runtime-added hosts.
export {
  StaticNodeManager, createStaticProvider, STATIC_LAUNCHER,
  type StaticDriverContext, type StaticManagerOptions, type DesiredHost, type HostState, type HostStatus,
} from './provider.js';
// host keys, TCP and SSH scans themselves: @nodepool-ts/core/ssh
export { checkHost, type HostCheckTarget, type HostCheckResult } from './check.js';
export {
  runReadyScript, runScriptOverSsh, labelReadyScript, resolveScriptPath, readyScriptTimeoutMs,
  describeScriptResult, outputExcerpt, shellQuote, DEFAULT_READY_SCRIPT_TIMEOUT_MS, DEFAULT_OUTPUT_LIMIT,
  type ScriptTarget, type RunScriptOptions, type ScriptResult, type ReadyScriptResult, type ReadyScriptOptions,
} from './ready-script.js';
export {
  StaticHostStore, validateRuntimeHost, runtimeHostFromData, filterHosts, configuredHost, CONNECTION_TYPES,
  type RuntimeHost, type RuntimeHostInput, type HostFilter, type HostField,
} from './runtime-hosts.js';
export { staticHostRows, runtimeHostView, type StaticHostRow, type RuntimeHostView } from './host-list.js';
export { StaticDriverError, StaticHostValidationError, type StaticErrorCode, type HostIssue } from './errors.js';
