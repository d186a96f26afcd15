"""Print json.dumps() of every element of a JSON list read from stdin, one per line.

Used by the model tests: the bytes Python's json module writes (default separators,
ensure_ascii, no key sorting) are what Nodepool and Zuul write into ZooKeeper.
"""
import json
import sys

for item in json.loads(sys.stdin.read()):
    sys.stdout.write(json.dumps(item) + "\n")
