// NodeLauncher: boots one node through a cloud driver (fake, openstack), with Nodepool's retry
// rules (§3.5): a failed attempt that created a server leaves an artificial `deleting` record so
// the DeletedNodeWorker removes that server; "quota exceeded" aborts instead of failing.
import type { CloudPool, CloudPoolLabel, FakeProvider, OpenStackProvider } from '@nodepool-ts/core/config';
import type { Node, NodeRequest } from '@nodepool-ts/core/model';
import { newNode, setShellFields } from '@nodepool-ts/core/model';
import type { ServerInfo, ServerSpec } from '@nodepool-ts/core/provider';
import type { CloudManager } from './drivers.js';
import { nodepoolServerMetadata, ProviderError } from '@nodepool-ts/core/provider';
import { isRetryable, type ZooKeeper } from '@nodepool-ts/core/zk';
import type { Logger } from '@nodepool-ts/core/log';
import { formatHostname, pyFormat } from './format.js';
import { retryConnectionLoss } from './zk-retry.js';
import { describeScriptResult, outputExcerpt, type ReadyScriptResult } from '@nodepool-ts/driver-static';

export type LaunchResult =
  | 'ready'
  | 'error.zksession'
  | 'error.quota'
  | 'error.unknown'
  | 'error.nodepool'
  | 'error.status'
  | 'error.network'
  | 'error.keyscan'
  | 'error.readyscript';

export class LaunchError extends Error {
  readonly code = 'ELAUNCH';
  constructor(readonly result: LaunchResult, message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'LaunchError';
  }
}

export interface LaunchContext {
  zk: ZooKeeper;
  provider: OpenStackProvider | FakeProvider;
  pool: CloudPool;
  label: CloudPoolLabel;
  manager: CloudManager;
  log: Logger;
  /** request's chosen AZ (shared by every node of one request) */
  az: string | null;
  signal: AbortSignal;
  /** called whenever the node was stored, so observers (recorder, stats) see the change */
  onStore?: (node: Node, reason: string) => void;
  /** scan host keys of a booted server (real SSH for clouds; the fake driver answers itself) */
  keyscan?: (host: string, port: number, timeoutMs: number, signal: AbortSignal) => Promise<string[]>;
  /** the label's ready-script (seed era): the node becomes READY only if it exits 0 */
  readyScript?: (node: Node, label: string, signal: AbortSignal) => Promise<ReadyScriptResult>;
  onAttempt?: (attempt: { attempt: number; startedAt: number; endedAt: number; result: LaunchResult; error: string | null }) => void;
  /** a min-ready request's node: its `ready` write also clears `allocated_to` (it joins the pool) */
  releaseWhenReady?: boolean;
  /** the image's `python-path` / `shell-type` (diskimage or cloud-image), written on the node when set */
  shell?: { pythonPath: string | null; shellType: string | null };
  /** the request the node is launched for (`dynamic-instance-properties` are formatted from it) */
  request?: Readonly<NodeRequest>;
}

export async function store(ctx: Pick<LaunchContext, 'zk' | 'onStore'>, node: Node, reason: string): Promise<void> {
  // The node's lock died with a ZooKeeper session: another launcher may be deleting it already.
  // Checked in the same tick as the write is issued, so the write cannot land in a new session.
  // A write whose reply a dropped connection lost is written again (the session, and the lock,
  // survive a connection moving to another ensemble member).
  await retryConnectionLoss(ctx.zk, async () => {
    if (!ctx.zk.holdsLock(node)) {
      throw new LaunchError('error.zksession', `lost the lock of node ${node.id ?? ''} with its ZooKeeper session`);
    }
    await ctx.zk.storeNode(node);
  }, () => ctx.zk.holdsLock(node));
  ctx.onStore?.(node, reason);
}

/**
 * A new `deleting` record for the server of a failed attempt (nobody's lock is involved: it is a
 * new znode). Retried once across a connection loss, so a launcher whose session just expired
 * still hands the server it booted to the DeletedNodeWorkers instead of leaving it to the next
 * cleanup cycle.
 */
async function storeLeftover(ctx: LaunchContext, leftover: Node, reason: string): Promise<void> {
  try {
    await ctx.zk.storeNode(leftover);
  } catch (err) {
    if (!isRetryable(err) || !(await ctx.zk.waitConnected(ctx.zk.sessionTimeout + 5_000).catch(() => false))) throw err;
    leftover.id = null;
    await ctx.zk.storeNode(leftover);
  }
  ctx.onStore?.(leftover, reason);
}

/**
 * Before a (re)try creates a server: a suspended session is waited out (it either comes back or
 * is declared lost), then the node lock must still be ours. A launcher frozen past its session
 * timeout must not boot servers for nodes other launchers have reaped meanwhile.
 */
export async function stillOurs(ctx: Pick<LaunchContext, 'zk'>, node: Node): Promise<boolean> {
  if (ctx.zk.state !== 'connected') {
    await ctx.zk.waitConnected(ctx.zk.sessionTimeout + 5_000).catch(() => false);
  }
  return ctx.zk.state === 'connected' && ctx.zk.holdsLock(node);
}

/** Resolve the image a label boots from: newest ready upload, or a cloud image. */
async function resolveImage(ctx: LaunchContext, node: Node): Promise<{
  spec: ServerSpec['image']; imageName: string; username: string | null; connectionType: string;
  connectionPort: number; configDrive: boolean | null;
}> {
  const { label, provider, zk } = ctx;
  if (label.diskimage !== null) {
    const upload = await zk.getMostRecentImageUpload(label.diskimage, provider.name, 'ready');
    if (!upload || upload.external_id === null) {
      throw new LaunchError('error.nodepool', `Unable to find current cloud image ${label.diskimage} in ${provider.name}`);
    }
    const pdi = provider.diskimages.find((d) => d.name === label.diskimage);
    node.image_id = `/nodepool/images/${label.diskimage}/builds/${upload.build_id}/providers/${provider.name}/images/${upload.id}`;
    return {
      spec: { kind: 'upload', externalId: upload.external_id },
      imageName: label.diskimage,
      username: upload.username,
      connectionType: pdi?.connectionType ?? 'ssh',
      connectionPort: pdi?.connectionPort ?? 22,
      configDrive: pdi?.configDrive ?? null,
    };
  }
  const ci = provider.cloudImages.find((c) => c.name === label.cloudImage);
  if (!ci) throw new LaunchError('error.nodepool', `cloud-image ${label.cloudImage} not configured in ${provider.name}`);
  node.image_id = ci.name;
  return {
    spec: { kind: 'cloud', name: ci.imageName ?? ci.name, id: ci.imageId },
    imageName: ci.name,
    username: ci.username,
    connectionType: ci.connectionType,
    connectionPort: ci.connectionPort,
    configDrive: ci.configDrive,
  };
}

/**
 * Nodepool 8.0's `dynamic-instance-properties`: each value formatted with the request's safe
 * attributes (`{request.id}`, `{request.labels}`, `{request.requestor}`, `{request.requestor_data}`,
 * `{request.relative_priority}`, `{request.event_id}`, `{request.created_time}`,
 * `{request.tenant_name}`); one that does not format is logged and left out.
 */
function dynamicProperties(ctx: LaunchContext): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Object.entries(ctx.label.dynamicInstanceProperties);
  if (entries.length === 0) return out;
  const r = ctx.request;
  const request = {
    id: r?.id ?? null,
    labels: r ? [...r.node_types] : [],
    requestor: r?.requestor ?? null,
    requestor_data: r?.extra['requestor_data'] ?? null,
    relative_priority: r?.relative_priority ?? 0,
    event_id: r?.extra['event_id'] ?? null,
    created_time: r?.extra['created_time'] ?? null,
    tenant_name: r?.extra['tenant_name'] ?? null,
  };
  for (const [k, template] of entries) {
    try {
      out[k] = pyFormat(template, { request });
    } catch (err) {
      ctx.log.error({ property: k, err: (err as Error).message }, `Error formatting dynamic instance property ${k}: ${(err as Error).message}`);
    }
  }
  return out;
}

function classify(err: unknown): LaunchResult {
  if (err instanceof LaunchError) return err.result;
  if (err instanceof ProviderError && err.kind === 'quota') return 'error.quota';
  if (err instanceof Error && /quota exceeded/i.test(err.message)) return 'error.quota';
  return 'error.unknown';
}

async function launchAttempt(ctx: LaunchContext, node: Node): Promise<void> {
  const { provider, pool, label, manager } = ctx;
  const image = await resolveImage(ctx, node);
  const flavor = await manager.findFlavor(label);
  const hostname = formatHostname(provider.hostnameFormat, { label, provider, node });
  const metadata = {
    ...label.instanceProperties,
    ...dynamicProperties(ctx),
    ...nodepoolServerMetadata({
      provider: provider.name, nodeId: node.id ?? '', imageName: image.imageName, label: label.name,
    }),
  };
  const spec: ServerSpec = {
    name: hostname,
    image: image.spec,
    flavor,
    az: ctx.az,
    keyName: label.keyName,
    networks: pool.networks,
    securityGroups: pool.securityGroups,
    userdata: label.userdata,
    bootFromVolume: label.bootFromVolume,
    volumeSize: label.volumeSize,
    configDrive: image.configDrive,
    metadata,
    autoFloatingIp: pool.autoFloatingIp,
  };
  const created = await manager.createServer(spec);
  node.external_id = created.id;
  node.hostname = hostname;
  node.resources = { cores: flavor.vcpus, instances: 1, ram: flavor.ram };
  if (image.username) node.username = image.username;
  if (ctx.shell) setShellFields(node, ctx.shell);
  node.connection_type = image.connectionType;
  node.connection_port = image.connectionPort;
  await store(ctx, node, 'server created');

  let server: ServerInfo;
  try {
    server = await manager.waitForServer(created.id, provider.launchTimeout * 1000, ctx.signal);
  } catch (err) {
    if (err instanceof ProviderError && err.kind !== 'retryable' && err.kind !== 'quota') {
      throw new LaunchError('error.status', `server ${created.id} did not become ACTIVE: ${err.message}`, err);
    }
    throw err;
  }
  if (server.status !== 'ACTIVE') {
    throw new LaunchError('error.status', `server ${server.id} is ${server.status}, not ACTIVE`);
  }
  if (node.az === null) node.az = server.az;
  node.host_id = server.hostId;
  node.public_ipv4 = pool.autoFloatingIp ? server.publicIpv4 : null;
  node.public_ipv6 = server.publicIpv6 ?? '';
  node.private_ipv4 = server.privateIpv4 ?? node.public_ipv4;
  node.interface_ip = server.publicIpv6 || node.public_ipv4 || node.private_ipv4;
  if (!node.interface_ip) {
    throw new LaunchError('error.network', `Unable to find public IP of server ${server.id}`);
  }
  // Checkpoint the addresses before the slow steps (an SSH key scan, a ready-script) so that
  // `nodepool list` shows them meanwhile; with nothing slow to come the `ready` write carries them.
  const scansOverSsh = pool.hostKeyChecking && !manager.hostKeys && ctx.keyscan !== undefined;
  if (scansOverSsh || ctx.readyScript) await store(ctx, node, 'server active');

  if (pool.hostKeyChecking && typeof node.connection_port === 'number') {
    const timeoutMs = provider.bootTimeout * 1000;
    let keys: string[] = [];
    try {
      if (manager.hostKeys) keys = await manager.hostKeys(server);
      else if (ctx.keyscan) keys = await ctx.keyscan(node.interface_ip, node.connection_port, timeoutMs, ctx.signal);
    } catch (err) {
      if (label.consoleLog && manager.getConsoleLog) {
        const log = await manager.getConsoleLog(server.id).catch(() => '');
        ctx.log.info({ node: node.id, server: server.id }, `console log of server ${server.id}:\n${log}`);
      }
      throw new LaunchError('error.keyscan', `Can't scan instance ${server.id} key: ${(err as Error).message}`, err);
    }
    if ((node.connection_type === 'ssh' || node.connection_type === 'network_cli') && keys.length === 0) {
      throw new LaunchError('error.keyscan', `Unable to gather host keys of ${server.id}`);
    }
    node.host_keys = keys;
  }

  if (ctx.readyScript) {
    const rs = await ctx.readyScript(node, label.name, ctx.signal);
    if (rs.script !== null && !rs.ok) {
      const output = rs.output !== '' ? `; output:\n${outputExcerpt(rs)}` : '';
      throw new LaunchError('error.readyscript',
        `ready-script ${rs.script} failed on node ${node.id ?? ''}: ${describeScriptResult(rs)}${output}`);
    }
    if (rs.script !== null) ctx.log.info({ node: node.id }, `ready-script ${rs.script} passed on node ${node.id ?? ''}`);
  }
}

/** What a driver's launch gives the shared attempt loop (`runLaunchAttempts`). */
export interface AttemptLoop {
  /** the launcher's side of the launch */
  ctx: Pick<LaunchContext, 'zk' | 'log' | 'signal' | 'onStore' | 'onAttempt' | 'releaseWhenReady'> & {
    provider: { launchRetries: number };
  };
  /** one attempt: the node is ready to be stored READY when it resolves */
  attempt(): Promise<void>;
  /** how a failed attempt's error counts */
  classify(err: unknown): LaunchResult;
  /** undo what a failed attempt left; true stops the retries */
  afterFailure(result: LaunchResult, err: unknown): Promise<boolean>;
}

/**
 * Nodepool's launch retries: up to `launch-retries` attempts while the node's lock is ours;
 * resolves with the state stored last — `ready`, `failed`, or `aborted` (cloud quota exceeded:
 * the handler relaunches later).
 */
export async function runLaunchAttempts(node: Node, loop: AttemptLoop): Promise<'ready' | 'failed' | 'aborted'> {
  const { ctx } = loop;
  const retries = Math.max(1, ctx.provider.launchRetries);
  const started = Date.now();
  let lastResult: LaunchResult = 'error.unknown';
  for (let attempt = 1; attempt <= retries; attempt++) {
    const attemptStart = Date.now();
    if (!(await stillOurs(ctx, node))) {
      lastResult = 'error.zksession';
      ctx.log.warn({ node: node.id }, `Abandoning the launch of node ${node.id}: its lock was lost with the ZooKeeper session`);
      break;
    }
    try {
      await loop.attempt();
      ctx.onAttempt?.({ attempt, startedAt: attemptStart, endedAt: Date.now(), result: 'ready', error: null });
      node.state = 'ready';
      node.state_time = Date.now() / 1000;
      if (ctx.releaseWhenReady) node.allocated_to = null;
      await store(ctx, node, `launched in ${Date.now() - started} ms`);
      return 'ready';
    } catch (err) {
      lastResult = loop.classify(err);
      const message = err instanceof Error ? err.message : String(err);
      ctx.onAttempt?.({ attempt, startedAt: attemptStart, endedAt: Date.now(), result: lastResult, error: message });
      ctx.log.warn({ node: node.id, attempt, retries, result: lastResult, err: message },
        `Launch attempt ${attempt}/${retries} for node ${node.id} failed: ${message}`);
      if (ctx.zk.state === 'lost') lastResult = 'error.zksession';
      const stop = await loop.afterFailure(lastResult, err);
      if (stop || lastResult === 'error.quota' || ctx.signal.aborted || lastResult === 'error.nodepool'
        || lastResult === 'error.zksession') break;
    }
  }
  node.state = lastResult === 'error.quota' ? 'aborted' : 'failed';
  node.state_time = Date.now() / 1000;
  if (lastResult !== 'error.zksession' && ctx.zk.holdsLock(node)) {
    await store(ctx, node, `launch ${lastResult}`);
  }
  return node.state;
}

/** Launch `node` (stored, locked, state `building`) in a cloud. */
export function launchNode(ctx: LaunchContext, node: Node): Promise<'ready' | 'failed' | 'aborted'> {
  return runLaunchAttempts(node, {
    ctx,
    attempt: () => launchAttempt(ctx, node),
    classify,
    afterFailure: async (result) => {
      if (node.external_id !== null) {
        // Leave the half-built server to the DeletedNodeWorker through an artificial record.
        const leftover = newNode({
          state: 'deleting', provider: node.provider, pool: node.pool, type: node.type,
          external_id: node.external_id, launcher: node.launcher, cloud: node.cloud, region: node.region,
        });
        try {
          await storeLeftover(ctx, leftover, `leftover of failed launch of node ${node.id}`);
        } catch (storeErr) {
          ctx.log.error({ node: node.id, err: (storeErr as Error).message }, 'could not record leftover server; cleanup will find it');
        }
        node.external_id = null;
        node.public_ipv4 = null;
        node.public_ipv6 = null;
        node.private_ipv4 = null;
        node.interface_ip = null;
      }
      if (result === 'error.quota') ctx.manager.invalidateQuotaCache();
      return false;
    },
  });
}
