// `nodepool info <provider>` and `nodepool erase <provider>`: a provider's data in ZooKeeper,
// for cleaning up after a provider was removed from the config.
import { READ_CONCURRENCY, mapLimit } from '@nodepool-ts/core/zk';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { providerBuilds, providerNodes } from '../status.js';
import { formatTable } from '../table.js';
import { bool, printJson, str } from './common.js';
import type { Command } from './common.js';

export const infoCommand: Command = async (args, ctx) => {
  const provider = str(args, 'provider');
  const zk = await ctx.zookeeper();
  const [builds, nodes] = await Promise.all([providerBuilds(zk, provider), providerNodes(zk, provider)]);
  if (ctx.json) {
    printJson(ctx, {
      provider,
      builds: Object.fromEntries(builds),
      nodes: nodes.map((n) => ({ id: n.id, server_id: n.external_id })),
    });
    return 0;
  }
  ctx.out(`ZooKeeper data for provider ${provider}\n`);
  ctx.out('Image builds:');
  ctx.out(formatTable(['Image Name', 'Build IDs'], [...builds].map(([image, ids]) => [image, ids.join(',')])));
  ctx.out('\nNodes:');
  ctx.out(formatTable(['ID', 'Server ID'], nodes.map((n) => [n.id, n.external_id])));
  return 0;
};

async function erase(
  zk: ZooKeeper, provider: string, builds: Map<string, string[]>,
  nodes: Awaited<ReturnType<typeof providerNodes>>, say: (text: string) => void,
): Promise<void> {
  say(`Erasing build data for ${provider}...`);
  const pairs = [...builds].flatMap(([image, ids]) => ids.map((id) => ({ image, id })));
  await mapLimit(pairs, READ_CONCURRENCY, ({ image, id }) => zk.deleteBuildProvider(image, id, provider));
  say(`Erasing node data for ${provider}...`);
  await mapLimit(nodes, READ_CONCURRENCY, (node) => zk.deleteNode(node));
}

export const eraseCommand: Command = async (args, ctx) => {
  const provider = str(args, 'provider');
  const zk = await ctx.zookeeper();
  // Like Nodepool, what gets erased is what was found BEFORE asking.
  const [builds, nodes] = await Promise.all([providerBuilds(zk, provider), providerNodes(zk, provider)]);
  // With --json, stdout carries only the JSON document; the dialogue goes to stderr.
  const say = (text: string) => (ctx.json ? ctx.err(text) : ctx.out(text));
  let confirmed = bool(args, 'force');
  if (!confirmed) {
    say('\nWARNING! This action is not reversible!');
    const question = `Erase ZooKeeper data for provider ${provider}? [N/y] `;
    const answer = ctx.json ? (ctx.err(question.trimEnd()), await ctx.prompt('')) : await ctx.prompt(question);
    confirmed = answer.toLowerCase() === 'y';
    if (!confirmed) say('Aborting. No data erased.');
  }
  if (confirmed) await erase(zk, provider, builds, nodes, say);
  if (ctx.json) {
    printJson(ctx, {
      provider,
      erased: confirmed,
      builds: Object.fromEntries(builds),
      nodes: nodes.map((n) => n.id),
    });
  }
  return 0;
};
