#!/usr/bin/python3
"""The slot map of a metastatic provider as Nodepool's metastatic adapter rebuilds it at start,
read with kazoo from the ZooKeeper tree (Nodepool's rules restated, not its code).

Usage: nodepool_view.py HOSTS PROVIDER
A backing node is a node whose user_data (a JSON string) has owner "NodePool:metastatic:PROVIDER"
and whose lock's first contender has that identifier; each node of PROVIDER with driver_data
naming such a backing node takes the slot driver_data names. Prints one JSON object:
{backing node id: {"label", "slots", "failed", "launched", "assigned": {slot: node id}}}.
"""
import json
import sys

from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock


def main():
    hosts, provider = sys.argv[1], sys.argv[2]
    owner = "NodePool:metastatic:%s" % provider
    zk = KazooClient(hosts=hosts)
    zk.start(timeout=15)
    try:
        nodes = {}
        for nid in zk.get_children("/nodepool/nodes"):
            data, _ = zk.get("/nodepool/nodes/%s" % nid)
            if data:
                nodes[nid] = json.loads(data.decode("utf8"))
        backing = {}
        for nid, node in sorted(nodes.items()):
            try:
                user_data = json.loads(node.get("user_data"))
            except Exception:
                continue
            if not isinstance(user_data, dict) or user_data.get("owner") != owner:
                continue
            contenders = Lock(zk, "/nodepool/nodes/%s/lock" % nid).contenders()
            if contenders and contenders[0] == owner:
                backing[nid] = {"label": user_data["label"], "slots": user_data["slots"],
                                "failed": user_data.get("failed", False),
                                "launched": user_data.get("launched", 0), "assigned": {}}
        for nid, node in sorted(nodes.items()):
            if node.get("provider") != provider or not node.get("driver_data"):
                continue
            dd = node["driver_data"]
            if dd.get("backing_node") in backing:
                backing[dd["backing_node"]]["assigned"][str(dd.get("slot"))] = nid
        print(json.dumps(backing, sort_keys=True))
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main()
