// Which of a server's addresses is public and which private, from Nova's `addresses` field, the
// way openstacksdk decides it for Nodepool: a floating IP is public; a fixed address is public
// when its network is external (router:external) or when it is globally routable; RFC 1918 and
// shared (CGNAT) space are private. IPv6: the first global-scope fixed address.

export interface NetworkRef {
  id: string;
  name: string;
  external: boolean;
}

export interface ServerAddresses {
  publicIpv4: string | null;
  privateIpv4: string | null;
  publicIpv6: string | null;
  /** every fixed/floating address, for finding a server's floating IPs */
  floating: string[];
}

interface AddrEntry { addr: string; version: number; type: string }

function entries(addresses: unknown): { network: string; a: AddrEntry }[] {
  const out: { network: string; a: AddrEntry }[] = [];
  if (addresses === null || typeof addresses !== 'object') return out;
  for (const [network, list] of Object.entries(addresses as Record<string, unknown>)) {
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      if (item === null || typeof item !== 'object') continue;
      const rec = item as Record<string, unknown>;
      if (typeof rec.addr !== 'string') continue;
      out.push({
        network,
        a: {
          addr: rec.addr,
          version: typeof rec.version === 'number' ? rec.version : rec.addr.includes(':') ? 6 : 4,
          type: typeof rec['OS-EXT-IPS:type'] === 'string' ? rec['OS-EXT-IPS:type'] : 'fixed',
        },
      });
    }
  }
  return out;
}

/** RFC 1918, RFC 6598 (shared/CGNAT) and link-local: never what Zuul should connect to from outside. */
export function isPrivateIpv4(ip: string): boolean {
  const p = ip.split('.').map(Number);
  const [a = -1, b = -1] = p;
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)
    || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254);
}

function isGlobalIpv6(ip: string): boolean {
  const l = ip.toLowerCase();
  return !(l.startsWith('fe80:') || l.startsWith('fc') || l.startsWith('fd') || l === '::1');
}

export function classifyAddresses(addresses: unknown, networks: ReadonlyMap<string, NetworkRef>): ServerAddresses {
  const list = entries(addresses);
  const external = (name: string): boolean => networks.get(name)?.external ?? false;
  const floating = list.filter((e) => e.a.type === 'floating').map((e) => e.a.addr);
  const fixed4 = list.filter((e) => e.a.type !== 'floating' && e.a.version === 4);
  const publicIpv4 = list.find((e) => e.a.type === 'floating' && e.a.version === 4)?.a.addr
    ?? fixed4.find((e) => external(e.network))?.a.addr
    ?? fixed4.find((e) => !isPrivateIpv4(e.a.addr))?.a.addr
    ?? null;
  const privateIpv4 = fixed4.find((e) => !external(e.network) && isPrivateIpv4(e.a.addr))?.a.addr
    ?? fixed4.find((e) => !external(e.network))?.a.addr
    ?? null;
  const publicIpv6 = list.find((e) => e.a.version === 6 && isGlobalIpv6(e.a.addr))?.a.addr ?? null;
  return { publicIpv4, privateIpv4, publicIpv6, floating };
}
