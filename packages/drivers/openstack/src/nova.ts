// The Nova calls Nodepool needs that pkgcloud lacks: its createServer cannot express an
// availability zone, boot-from-volume (block_device_mapping_v2), config drive without user data,
// or base64 user data; it has no availability-zone listing and no console output. Same session,
// token, rate limiter and error classification as every other call; microversion 2.1, the one
// pkgcloud speaks, so both sides see the same server shape.
import type { ServerSpec } from '@nodepool-ts/core/provider';
import type { OpenStackSession } from './session.js';

export interface NovaCreateRequest {
  spec: ServerSpec;
  /** resolved image id (absent for boot from volume it is still the volume's source image) */
  imageId: string;
  /** resolved network ids */
  networkIds: string[];
}

/** The JSON body of POST /servers for a Nodepool node. */
export function createServerBody(req: NovaCreateRequest): Record<string, unknown> {
  const { spec } = req;
  const server: Record<string, unknown> = {
    name: spec.name,
    flavorRef: spec.flavor.id,
    metadata: spec.metadata,
  };
  if (spec.bootFromVolume) {
    // the image becomes a volume of volume-size GB, deleted with the server
    server.block_device_mapping_v2 = [{
      boot_index: 0, uuid: req.imageId, source_type: 'image', destination_type: 'volume',
      volume_size: spec.volumeSize, delete_on_termination: true,
    }];
    server.imageRef = '';
  } else {
    server.imageRef = req.imageId;
  }
  if (req.networkIds.length > 0) server.networks = req.networkIds.map((uuid) => ({ uuid }));
  if (spec.az !== null) server.availability_zone = spec.az;
  if (spec.keyName !== null) server.key_name = spec.keyName;
  if (spec.securityGroups.length > 0) server.security_groups = spec.securityGroups.map((name) => ({ name }));
  if (spec.userdata !== null) server.user_data = Buffer.from(spec.userdata, 'utf8').toString('base64');
  if (spec.configDrive !== null) server.config_drive = spec.configDrive;
  return { server };
}

export class NovaApi {
  constructor(private readonly session: OpenStackSession) {}

  /** POST /servers; resolves with the new server's id once Nova accepted the request. */
  async createServer(req: NovaCreateRequest, operation: string): Promise<string> {
    const r = await this.session.http('compute', 'POST', '/servers', {
      operation, name: 'servers', json: createServerBody(req),
    });
    const id = (r.body as { server?: { id?: unknown } }).server?.id;
    if (typeof id !== 'string') throw new Error('Nova accepted the server but returned no id');
    return id;
  }

  /** Names of the AZs that are available (Nodepool picks among these when a pool names none). */
  async availabilityZones(operation: string): Promise<string[]> {
    const r = await this.session.http('compute', 'GET', '/os-availability-zone', { operation, name: 'os-availability-zone' });
    const info = (r.body as { availabilityZoneInfo?: { zoneName?: unknown; zoneState?: { available?: unknown } }[] })
      .availabilityZoneInfo ?? [];
    return info.filter((z) => z.zoneState?.available === true && typeof z.zoneName === 'string')
      .map((z) => String(z.zoneName));
  }

  async consoleOutput(id: string, operation: string, length?: number): Promise<string> {
    const r = await this.session.http('compute', 'POST', `/servers/${encodeURIComponent(id)}/action`, {
      operation, name: 'server_action', json: { 'os-getConsoleOutput': length === undefined ? {} : { length } },
    });
    const out = (r.body as { output?: unknown }).output;
    return typeof out === 'string' ? out : '';
  }
}
