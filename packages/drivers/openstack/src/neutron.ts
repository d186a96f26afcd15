// The Neutron calls pkgcloud cannot make usefully: its network model drops `router:external`
// (needed to pick the floating-IP network and to tell public from private addresses), its port
// listing takes no filters, and it has no floating-IP API at all (only Nova's removed proxy).
// Port deletion stays with pkgcloud's network client.
import type { OpenStackSession } from './session.js';
import type { NetworkRef } from './addresses.js';

export interface PortInfo {
  id: string;
  status: string;
  deviceId: string;
  deviceOwner: string;
  networkId: string;
  fixedIps: string[];
}

export interface FloatingIpInfo {
  id: string;
  address: string;
  networkId: string;
  portId: string | null;
  fixedIp: string | null;
  status: string;
  description: string;
}

function rec(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' ? v as Record<string, unknown> : {};
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function parseFip(v: unknown): FloatingIpInfo {
  const r = rec(v);
  return {
    id: str(r.id), address: str(r.floating_ip_address), networkId: str(r.floating_network_id),
    portId: typeof r.port_id === 'string' ? r.port_id : null, fixedIp: typeof r.fixed_ip_address === 'string' ? r.fixed_ip_address : null,
    status: str(r.status), description: str(r.description),
  };
}

export class NeutronApi {
  constructor(private readonly session: OpenStackSession) {}

  async networks(operation: string): Promise<NetworkRef[]> {
    const r = await this.session.http('network', 'GET', '/v2.0/networks', { operation, name: 'networks' });
    const list = (rec(r.body).networks as unknown[] | undefined) ?? [];
    return list.map((n) => {
      const x = rec(n);
      return { id: str(x.id), name: str(x.name), external: x['router:external'] === true };
    });
  }

  async ports(operation: string, filters: Record<string, string>): Promise<PortInfo[]> {
    const r = await this.session.http('network', 'GET', '/v2.0/ports', { operation, name: 'ports', query: filters });
    const list = (rec(r.body).ports as unknown[] | undefined) ?? [];
    return list.map((p) => {
      const x = rec(p);
      const ips = Array.isArray(x.fixed_ips) ? x.fixed_ips.map((f) => str(rec(f).ip_address)) : [];
      return {
        id: str(x.id), status: str(x.status), deviceId: str(x.device_id), deviceOwner: str(x.device_owner),
        networkId: str(x.network_id), fixedIps: ips,
      };
    });
  }

  async floatingIps(operation: string, filters: Record<string, string> = {}): Promise<FloatingIpInfo[]> {
    const r = await this.session.http('network', 'GET', '/v2.0/floatingips', { operation, name: 'floatingips', query: filters });
    return ((rec(r.body).floatingips as unknown[] | undefined) ?? []).map(parseFip);
  }

  async createFloatingIp(networkId: string, portId: string, description: string, operation: string): Promise<FloatingIpInfo> {
    const r = await this.session.http('network', 'POST', '/v2.0/floatingips', {
      operation, name: 'floatingips',
      json: { floatingip: { floating_network_id: networkId, port_id: portId, description } },
    });
    return parseFip(rec(r.body).floatingip);
  }

  async deleteFloatingIp(id: string, operation: string): Promise<void> {
    await this.session.http('network', 'DELETE', `/v2.0/floatingips/${encodeURIComponent(id)}`, { operation, name: 'floatingip' });
  }
}
