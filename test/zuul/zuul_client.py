#!/usr/bin/python3
"""A Zuul-like node consumer written with kazoo, as Zuul 3.x talks to Nodepool.

Usage: zuul_client.py HOSTS LABELS [--count N] [--timeout S] [--hold-seconds S] [--priority P]
                      [--tls-cert PEM --tls-key PEM --tls-ca PEM]

HOSTS is a kazoo host string (host:port/chroot); with the --tls-* files it connects over TLS as
Zuul 4+ does (its zookeeper tls_cert/tls_key/tls_ca). LABELS is a comma-separated node_types list.
For each of N requests: create /nodepool/requests/<prio>- (ephemeral, sequential, makepath) with
state "requested", wait for fulfilled/failed, check allocated_to, lock every node, delete the
request, mark nodes in-use, then used, unlock. Prints one JSON line per request and a summary.
"""
import argparse
import json
import socket
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock


def run_one(zk, labels, priority, timeout, hold_seconds):
    req = {
        "state": "requested",
        "state_time": time.time(),
        "node_types": labels,
        "requestor": socket.gethostname() + ":zuul-like-client",
        "reuse": True,
        "declined_by": [],
        "provider": None,
        "relative_priority": 0,
        "event_id": "e2e-event",
    }
    started = time.time()
    path = zk.create("/nodepool/requests/%s-" % priority, json.dumps(req).encode("utf8"),
                     ephemeral=True, sequence=True, makepath=True)
    rid = path.rsplit("/", 1)[1]
    done = threading.Event()
    result = {}

    def watch(data, stat, event=None):
        if data is None:
            result["vanished"] = True
            done.set()
            return False
        if not data:
            return True
        obj = json.loads(data.decode("utf8"))
        if obj.get("state") in ("fulfilled", "failed"):
            result["req"] = obj
            done.set()
            return False
        return True

    zk.DataWatch(path, watch)
    if not done.wait(timeout):
        zk.delete(path)
        return {"id": rid, "outcome": "timeout"}
    latency = time.time() - started
    if "req" not in result:
        return {"id": rid, "outcome": "vanished"}
    obj = result["req"]
    out = {"id": rid, "outcome": obj["state"], "latency": latency, "nodes": obj.get("nodes", []),
           "declined_by": obj.get("declined_by", []), "event_id_kept": obj.get("event_id") == "e2e-event"}
    if obj["state"] != "fulfilled":
        zk.delete(path)
        return out
    locks = []
    nodes = []
    for nid in obj["nodes"]:
        data, _ = zk.get("/nodepool/nodes/%s" % nid)
        node = json.loads(data.decode("utf8"))
        if node.get("allocated_to") != rid:
            out["outcome"] = "bad-allocation"
            out["bad_node"] = nid
        lock = Lock(zk, "/nodepool/nodes/%s/lock" % nid)
        lock.acquire(timeout=30)
        locks.append(lock)
        nodes.append((nid, node))
    zk.delete(path)
    out["labels"] = [n[1]["type"] for n in nodes]
    out["interface_ips"] = [n[1].get("interface_ip") for n in nodes]
    for nid, node in nodes:
        node["state"] = "in-use"
        node["state_time"] = time.time()
        zk.set("/nodepool/nodes/%s" % nid, json.dumps(node).encode("utf8"))
    if hold_seconds:
        time.sleep(hold_seconds)
    for nid, node in nodes:
        node["state"] = "used"
        node["state_time"] = time.time()
        zk.set("/nodepool/nodes/%s" % nid, json.dumps(node).encode("utf8"))
    for lock in locks:
        lock.release()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hosts")
    ap.add_argument("labels")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--hold-seconds", type=float, default=0)
    ap.add_argument("--priority", default="200")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-ca")
    args = ap.parse_args()
    tls = {}
    if args.tls_cert:
        tls = dict(use_ssl=True, certfile=args.tls_cert, keyfile=args.tls_key, ca=args.tls_ca)
    zk = KazooClient(hosts=args.hosts, **tls)
    zk.start(timeout=15)
    results = []
    try:
        for _ in range(args.count):
            r = run_one(zk, args.labels.split(","), args.priority, args.timeout, args.hold_seconds)
            print(json.dumps(r), flush=True)
            results.append(r)
    finally:
        zk.stop()
        zk.close()
    ok = sum(1 for r in results if r["outcome"] == "fulfilled")
    print(json.dumps({"summary": True, "fulfilled": ok, "total": len(results)}), flush=True)
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
