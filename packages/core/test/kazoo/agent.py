"""A kazoo client driven line by line: one JSON command in, one JSON reply out.

The interop tests use it to play Zuul / Nodepool / the Python CLI against our TypeScript
ZooKeeper layer. Usage: agent.py HOST:PORT/CHROOT
"""
import json
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout, NoNodeError


def main():
    client = KazooClient(hosts=sys.argv[1], timeout=10.0)
    client.start(timeout=15)
    locks = {}

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"ready": True})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "lock":
                locks[cmd["name"]] = client.Lock(cmd["path"], cmd.get("identifier"))
                reply({"ok": True})
            elif op == "acquire":
                lock = locks[cmd["name"]]
                try:
                    got = lock.acquire(blocking=cmd.get("blocking", True),
                                       timeout=cmd.get("timeout"),
                                       ephemeral=cmd.get("ephemeral", True))
                    reply({"ok": got})
                except LockTimeout:
                    reply({"error": "LockTimeout"})
            elif op == "release":
                reply({"ok": locks[cmd["name"]].release()})
            elif op == "contenders":
                reply({"contenders": locks[cmd["name"]].contenders()})
            elif op == "get":
                try:
                    data, stat = client.get(cmd["path"])
                except NoNodeError:
                    reply({"nonode": True})
                    continue
                text = data.decode("utf8")
                loaded = json.loads(text) if text else None
                reply({"raw": text, "loaded": loaded,
                       "redumped": json.dumps(loaded) if text else None})
            elif op == "set":
                client.set(cmd["path"], json.dumps(cmd["value"]).encode("utf8"))
                reply({"ok": True})
            elif op == "create":
                path = client.create(cmd["path"],
                                     value=json.dumps(cmd["value"]).encode("utf8"),
                                     ephemeral=cmd.get("ephemeral", False),
                                     sequence=cmd.get("sequence", False),
                                     makepath=cmd.get("makepath", False))
                reply({"path": path})
            elif op == "children":
                try:
                    reply({"children": client.get_children(cmd["path"])})
                except NoNodeError:
                    reply({"nonode": True})
            elif op == "close":
                client.stop()
                client.close()
                reply({"ok": True})
                return
            else:
                reply({"error": "unknown op %s" % op})
        except Exception as e:  # report, keep serving
            reply({"error": "%s: %s" % (type(e).__name__, e)})
    client.stop()
    client.close()


if __name__ == "__main__":
    main()
