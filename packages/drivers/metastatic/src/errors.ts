// Why a node could not get a slot on a backing node. The launcher treats each as a failed launch
// attempt (retried per `launch-retries`, as Nodepool's state machine does).
export type MetastaticErrorCode =
  /** the backing request failed (every launcher declined it) or vanished */
  | 'EBACKINGREQUEST'
  /** no backing node within `launch-timeout` */
  | 'EBACKINGTIMEOUT'
  /** the backing node went away (deleted, or no longer ours) */
  | 'EBACKINGGONE'
  /** the provider manager is stopping */
  | 'ESTOPPED';

export class MetastaticError extends Error {
  constructor(readonly code: MetastaticErrorCode, message: string, readonly context: Record<string, unknown> = {}) {
    super(message);
    this.name = 'MetastaticError';
  }
}
