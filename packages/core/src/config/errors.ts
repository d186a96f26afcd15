// Configuration errors. Every problem found in nodepool.yaml, the secure file or clouds.yaml is a
// ConfigIssue naming the file, the position and the key path in YAML spelling, so an operator can
// jump straight to the offending line. Issues are collected, never thrown one by one.

export interface ConfigIssue {
  file: string;
  /** 1-based line, null when the problem has no position (e.g. the file is missing) */
  line: number | null;
  /** 1-based column */
  column: number | null;
  /** YAML spelling, e.g. `providers[1].pools[0].labels[0].min-ram`; '' for the whole document */
  keyPath: string;
  message: string;
}

/** `file:line:col: keyPath: message` — the parts that are unknown are left out. */
export function formatIssue(issue: ConfigIssue): string {
  let where = issue.file;
  if (issue.line !== null) {
    where += `:${issue.line}`;
    if (issue.column !== null) where += `:${issue.column}`;
  }
  return issue.keyPath === ''
    ? `${where}: ${issue.message}`
    : `${where}: ${issue.keyPath}: ${issue.message}`;
}

export class ConfigError extends Error {
  readonly code = 'ECONFIG' as const;
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}
