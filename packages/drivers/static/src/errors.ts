// Errors of the static driver: a code an operator (or the CLI/web API) can act on, and the host
// or script they concern.
import type { SshErrorCode } from '@nodepool-ts/core/ssh';

export type StaticErrorCode =
  | SshErrorCode // EDNS, ECONNECT, EKEYSCAN, EABORTED, EHOSTKEY (here also: a configured host-key not offered)
  | 'ENOPRIVATEKEY' // a ready-script needs `private-key` and none is usable
  | 'ESCRIPT' // the ready-script could not be read or started
  | 'EBADHOST' // a runtime host definition is invalid
  | 'EHOSTEXISTS' // a runtime host with that name exists (or the name is configured)
  | 'ENOHOST'; // no such runtime host

export class StaticDriverError extends Error {
  constructor(
    readonly code: StaticErrorCode,
    message: string,
    readonly context: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'StaticDriverError';
  }
}

/** One problem of a runtime host definition: the field (nodepool.yaml's key name) and what is wrong. */
export interface HostIssue {
  field: string;
  message: string;
}

/** Several problems with one runtime host definition, all reported at once. */
export class StaticHostValidationError extends StaticDriverError {
  readonly problems: string[];

  constructor(readonly host: string, readonly issues: HostIssue[]) {
    const problems = issues.map((i) => i.message);
    super('EBADHOST', `static host ${JSON.stringify(host)}: ${problems.join('; ')}`, { host, problems });
    this.problems = problems;
    this.name = 'StaticHostValidationError';
  }
}
