// Errors of the builder. Each carries a code to branch on and the context an operator needs.

export type BuilderErrorCode =
  | 'ECONFIG'        // the config cannot run a builder (no ZooKeeper servers, no images-dir)
  | 'EDIBEXEC'       // disk-image-create could not be started
  | 'ENOIMAGEFILE'   // a build has no local file of the format a provider needs
  | 'ENOPROVIDER'    // a provider (or its diskimage entry) vanished from the config
  | 'EHOOK'          // the provider's post-upload-hook rejected an upload
  | 'ETIMEOUT'       // an upload took longer than the provider's image-upload-timeout
  | 'ESTATE';        // start/stop misuse

export class BuilderError extends Error {
  constructor(readonly code: BuilderErrorCode, message: string, readonly context: Record<string, unknown> = {}) {
    super(message);
    this.name = 'BuilderError';
  }
}
