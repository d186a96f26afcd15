// An in-process launcher on a fresh test env (its own chroot and temp dir) with a ZooKeeper
// client beside it; `cleanups` stops both and removes the env.
import { Launcher, type LauncherOptions } from '@nodepool-ts/launcher';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { connectZk, testEnv, type TestEnv } from './harness.js';

export async function startLauncher(cleanups: (() => Promise<void> | void)[], yaml: (env: TestEnv) => string,
  options: Partial<LauncherOptions> = {}): Promise<{ env: TestEnv; zk: ZooKeeper; launcher: Launcher; config: string }> {
  const env = testEnv();
  const config = env.write('nodepool.yaml', yaml(env));
  const zk = await connectZk(env);
  const launcher = new Launcher({ configFile: config, hostname: 'test', watchIntervalMs: 100, cleanupIntervalMs: 60_000, ...options });
  await launcher.start();
  cleanups.push(async () => {
    await launcher.stop();
    await zk.close();
    env.cleanup();
  });
  return { env, zk, launcher, config };
}
