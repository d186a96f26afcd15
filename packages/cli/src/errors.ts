// Errors a command raises to stop with a message on stderr and a non-zero exit status (what an
// uncaught exception does in the Python CLI, minus the traceback).

export type CliErrorCode =
  | 'ENOTCONFIGURED' // image-build of an image that is not a diskimage
  | 'EPAUSED' // image-build of a paused diskimage
  | 'ELOCKTIMEOUT' // delete/hold could not lock the node in time
  | 'EZKCONNECT' // ZooKeeper unreachable
  | 'ENOZK' // no zookeeper-servers in the config
  | 'ETLS' // a zookeeper-tls file cannot be read or used
  | 'ECONFIG' // the config could not be loaded
  | 'ELOGCONFIG' // -l file unreadable
  | 'EUNAVAILABLE' // a feature whose module is not part of this build
  | 'EIO' // a file the command reads or writes (export/import-image-data)
  | 'EINVAL' // a file whose contents are not what the command takes
  | 'EFAILED'; // anything else a command reports as failed

export class CliError extends Error {
  constructor(
    readonly code: CliErrorCode,
    message: string,
    readonly exitCode = 1,
    readonly context: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'CliError';
  }
}
