// The part of pkgcloud 2.x's OpenStack API this driver uses (pkgcloud ships no types). Every
// call is callback-style and returns the in-flight request (abortable) when it started one.
declare module 'pkgcloud' {
  import type { EventEmitter } from 'node:events';

  /** What pkgcloud's errs.create() hands back for an HTTP error. */
  interface PkgcloudHttpError extends Error {
    statusCode?: number;
    failCode?: string;
    result?: unknown;
    href?: string;
    method?: string;
  }

  type Callback<T> = (err: PkgcloudHttpError | null, result: T) => void;

  interface Abortable { abort?(): void }

  interface IdentityToken { id: string; expires: Date; issued_at?: Date; tenant?: { id: string; name: string } }

  interface Identity extends EventEmitter {
    token?: IdentityToken | null;
    options: Record<string, unknown>;
    authorize(options: Record<string, unknown> | Callback<void>, callback?: (err: PkgcloudHttpError | null) => void): void;
    getServiceEndpointUrl(options: { serviceType: string; region?: string; useInternal?: boolean; useAdmin?: boolean }): string;
    serviceCatalog?: { services: Record<string, { type: string; endpoints?: { region?: string; interface?: string; url?: string }[] }> };
    /** Reads a Keystone v3 token answer (body and headers) into `token`, `user` and `serviceCatalog`. */
    _parseIdentityResponse(body: unknown, headers: Record<string, string>): void;
  }

  interface OpenStackClientOptions {
    provider: 'openstack';
    authUrl: string;
    keystoneAuthVersion: 'v3' | 'v2.0';
    username?: string;
    password?: string;
    tenantName?: string;
    tenantId?: string;
    domainName?: string;
    domainId?: string;
    projectDomainName?: string;
    projectDomainId?: string;
    region?: string;
    strictSSL?: boolean;
    useInternal?: boolean;
    earlyTokenTimeout?: number;
    /** a constructor; `new` on a function returning an object yields that object */
    identity?: new (options: Record<string, unknown>) => Identity;
  }

  interface RawServer { original: Record<string, unknown> }
  interface RawFlavor { id: string; name: string; ram: number; disk: number; vcpus?: number; original?: Record<string, unknown> }
  interface RawImage { id: string; name: string; status: string; created?: string; updated?: string }

  interface OpenStackClient extends EventEmitter {
    _identity: Identity;
    region?: string;
    /** hooks run on the options of every request before `request` is called */
    before?: ((req: Record<string, unknown>) => Record<string, unknown> | undefined)[];
    auth(callback: (err: PkgcloudHttpError | null) => void): void;
  }

  interface ComputeClient extends OpenStackClient {
    getServers(options: { limit?: number; marker?: string; name?: string; status?: string }, cb: Callback<RawServer[]>): Abortable | undefined;
    getServer(id: string, cb: Callback<RawServer>): Abortable | undefined;
    destroyServer(id: string, cb: Callback<{ ok: string }>): Abortable | undefined;
    getFlavors(cb: Callback<RawFlavor[]>): Abortable | undefined;
    getImages(cb: Callback<RawImage[]>): Abortable | undefined;
    getImage(id: string, cb: Callback<RawImage>): Abortable | undefined;
    getLimits(cb: Callback<{ absolute: Record<string, number>; rate: unknown[] }>): Abortable | undefined;
    listKeys(cb: Callback<{ keypair: { name: string; fingerprint: string } }[]>): Abortable | undefined;
  }

  interface NetworkClient extends OpenStackClient {
    destroyPort(id: string, cb: Callback<string>): Abortable | undefined;
  }

  const pkgcloud: {
    version: string;
    providers: {
      openstack: {
        compute: { createClient(options: OpenStackClientOptions): ComputeClient };
        network: { createClient(options: OpenStackClientOptions): NetworkClient };
      };
    };
  };
  export default pkgcloud;
  export type {
    PkgcloudHttpError, Identity, IdentityToken, OpenStackClientOptions, ComputeClient, NetworkClient, RawServer,
    RawFlavor, RawImage, Abortable, Callback,
  };
}
