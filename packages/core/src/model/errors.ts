/** A model object that cannot be written as Nodepool would (bad state, non-string id ...). */
export class ModelError extends Error {
  readonly code = 'EMODEL' as const;
  constructor(message: string, readonly context: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ModelError';
  }
}
