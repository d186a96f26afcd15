// A test CA and a server certificate it signed (for 127.0.0.1 and localhost), made with openssl
// as scripts/zk.sh start-tls makes ZooKeeper's: for serving the simulator over HTTPS.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  /** the CA certificate (PEM), what clouds.yaml `cacert` points at */
  ca: string;
  caKey: string;
  /** the server certificate and key (PEM files) */
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes (once) DIR/ca.pem, ca.key, server.pem, server.key; `cn` names the CA. */
export function makeTestPki(dir: string, cn = 'nodepool-ts test CA'): TestPki {
  const pki: TestPki = {
    dir, ca: join(dir, 'ca.pem'), caKey: join(dir, 'ca.key'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key'),
  };
  if (existsSync(pki.key) && existsSync(pki.cert)) return pki;
  mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', `/CN=${cn}`,
    '-keyout', pki.caKey, '-out', pki.ca], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=openstack-sim', '-keyout', pki.key,
    '-out', join(dir, 'server.csr')], dir);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', join(dir, 'server.csr'), '-CA', pki.ca, '-CAkey', pki.caKey, '-CAcreateserial',
    '-days', '30', '-extfile', join(dir, 'server.ext'), '-out', pki.cert], dir);
  return pki;
}

/** The simulator's `tls` option from a PKI made by makeTestPki. */
export function simTls(pki: TestPki): { cert: string; key: string } {
  return { cert: readFileSync(pki.cert, 'utf8'), key: readFileSync(pki.key, 'utf8') };
}
