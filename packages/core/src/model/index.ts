// Nodepool's ZooKeeper objects: types, state sets, and JSON (de)serialisation that is byte
// compatible with Nodepool/Zuul (Python json.dumps layout, Nodepool's key order).
export * from './types.js';
export { ModelError } from './errors.js';
export { PyFloat, pyFloatRepr, pyString, pythonJson, parseJsonObject } from './pyjson.js';
export {
  NODE_KEYS, REQUEST_KEYS,
  newNode, newNodeRequest, newImageBuild, newImageUpload, cloneNode, cloneNodeRequest, setShellFields,
  nodeFromDict, nodeFromData, nodeToJson, nodeToData,
  requestFromDict, requestFromData, requestToJson, requestToData,
  buildFromData, buildToJson, buildToData,
  uploadFromData, uploadToJson, uploadToData,
  launcherFromData, launcherToJson, launcherToData, launcherEquals,
} from './serde.js';
