// @nodepool-ts/driver-metastatic: Nodepool 5.0+'s metastatic driver — nodes carved out of backing
// nodes requested from the launcher's other providers, with Nodepool's ZooKeeper records of them.
export {
  MetastaticManager, createMetastaticProvider, BACKING_REQUEST_PRIORITY,
  type MetastaticDriverContext, type MetastaticManagerOptions, type BackingNodeStatus,
} from './provider.js';
export {
  BackingNodeRecord, metastaticOwner, encodeUserData, decodeUserData, slotOf, releaseDecision, applyBackingNode,
  SLOT_RESOURCES, METASTATIC_IMAGE_ID,
  type BackingUserData, type SlotDriverData, type ReleaseDecision,
} from './backing.js';
export { MetastaticError, type MetastaticErrorCode } from './errors.js';
