#!/usr/bin/env bash
# Start or stop a private, real OpenStack on loopback, from Debian's archive (Zed):
# Keystone, Glance, Placement and Nova (api, conductor, scheduler, compute with
# compute_driver = fake.FakeDriver) on MariaDB and RabbitMQ. Neutron is stood in for by the
# API simulator (test/openstack-sim), which answers the Neutron calls Nova makes (networks,
# ports with bindings, subnets, quotas, security groups) and trusts this Keystone's tokens.
#   scripts/openstack-real.sh start DIR   -> prints the Keystone URL (cold start ~1.5 min)
#   scripts/openstack-real.sh stop DIR
#   scripts/openstack-real.sh status DIR
# DIR receives every config, database, log (DIR/log) and pid (DIR/run); DIR/clouds.yaml has the
# clouds `real` (user demo, domain Default), `real-example` (alice, domain Example) and
# `real-admin`. Flavors m1.tiny..m1.large and a `cirros` image exist once it is up. Packages:
# `scripts/install-deps.sh openstack`. Every process is stopped by its pid, never by name.
set -euo pipefail
cmd="${1:?usage: openstack-real.sh start|stop|status DIR}"
dir="${2:?usage: openstack-real.sh start|stop|status DIR}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

log() { printf '%s openstack-real: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Runs a service in the background, its pid in DIR/run/NAME.pid, output in DIR/log/NAME.out.
spawn() {
  local name="$1"; shift
  nohup "$@" > "$dir/log/$name.out" 2>&1 < /dev/null &
  echo $! > "$dir/run/$name.pid"
}

# python3 -c 'from MODULE import main; main()' with argv[0] NAME and the rest as arguments.
pymain() {
  local module="$1" name="$2"; shift 2
  "$PY" -c "import sys; sys.argv[0] = '$name'; from $module import main; sys.exit(main())" "$@"
}

wait_http() {
  local url="$1" what="$2" pidname="$3"
  for _ in $(seq 1 240); do
    if curl -s -o /dev/null -m 2 "$url"; then return 0; fi
    if ! kill -0 "$(cat "$dir/run/$pidname.pid")" 2>/dev/null; then
      log "$what exited; see $dir/log/$pidname.out"; tail -20 "$dir/log/$pidname.out" >&2; return 1
    fi
    sleep 0.5
  done
  log "$what did not answer on $url in 120 s"; return 1
}

running() { [ -f "$dir/run/$1.pid" ] && kill -0 "$(cat "$dir/run/$1.pid")" 2>/dev/null; }

stop_all() {
  local p
  for p in nova-compute nova-scheduler nova-conductor nova-api glance-api placement keystone neutron-standin; do
    if running "$p"; then kill "$(cat "$dir/run/$p.pid")" 2>/dev/null || true; fi
  done
  for p in nova-compute nova-scheduler nova-conductor nova-api glance-api placement keystone neutron-standin; do
    if [ -f "$dir/run/$p.pid" ]; then
      for _ in $(seq 1 50); do running "$p" || break; sleep 0.1; done
      running "$p" && kill -9 "$(cat "$dir/run/$p.pid")" 2>/dev/null || true
      rm -f "$dir/run/$p.pid"
    fi
  done
  if [ -f "$dir/ports.env" ]; then
    # shellcheck disable=SC1091
    . "$dir/ports.env"
    if [ -f "$dir/rabbit/rabbit.pid" ] && kill -0 "$(cat "$dir/rabbit/rabbit.pid")" 2>/dev/null; then
      local rpid; rpid="$(cat "$dir/rabbit/rabbit.pid")"
      kill "$rpid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$rpid" 2>/dev/null || true
    fi
    [ -n "${EPMD_PORT:-}" ] && epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
  fi
  if [ -d "$dir/db" ]; then bash "$root/scripts/mariadb.sh" stop "$dir/db" || true; fi
}

case "$cmd" in
  stop)
    stop_all
    exit 0
    ;;
  status)
    for p in keystone placement glance-api neutron-standin nova-api nova-conductor nova-scheduler nova-compute; do
      if running "$p"; then echo "$p running (pid $(cat "$dir/run/$p.pid"))"; else echo "$p stopped"; fi
    done
    exit 0
    ;;
  start) ;;
  *) echo "usage: openstack-real.sh start|stop|status DIR" >&2; exit 2 ;;
esac

for p in /usr/lib/rabbitmq/bin/rabbitmq-server; do
  [ -x "$p" ] || { log "$p missing: run scripts/install-deps.sh openstack"; exit 1; }
done
"$PY" -c 'import keystone, glance, nova, placement' 2>/dev/null \
  || { log "python3-keystone/glance/nova/placement missing: run scripts/install-deps.sh openstack"; exit 1; }

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
if [ -f "$dir/url" ] && running nova-compute; then cat "$dir/url"; exit 0; fi
stop_all
rm -rf "$dir/log" "$dir/run" "$dir/keystone" "$dir/glance" "$dir/nova" "$dir/placement" "$dir/rabbit" "$dir/url"
mkdir -p "$dir/log" "$dir/run" "$dir/keystone/fernet" "$dir/keystone/credential" "$dir/glance/images" \
  "$dir/glance/staging" "$dir/glance/tasks" "$dir/nova/state" "$dir/nova/locks" "$dir/placement" "$dir/rabbit/mnesia"
# (the newest logs go to stderr, which the tests print: the step that failed wrote last)
trap 'log "start failed; stopping what was started"; for f in $(ls -t "$dir"/log/* 2>/dev/null | head -n 3); do printf "== %s (last lines)\n" "$f" >&2; tail -n 15 "$f" >&2; done; stop_all' ERR

K=$(free_port); N=$(free_port); G=$(free_port); P=$(free_port); Q=$(free_port)
RABBIT_PORT=$(free_port); RABBIT_DIST=$(free_port); EPMD_PORT=$(free_port)
ADMIN_PW="admin-$RANDOM$RANDOM"; SERVICE_PW="service-$RANDOM$RANDOM"; DEMO_PW="demo-$RANDOM$RANDOM"
cat > "$dir/ports.env" <<EOF
K=$K N=$N G=$G P=$P Q=$Q RABBIT_PORT=$RABBIT_PORT RABBIT_DIST=$RABBIT_DIST EPMD_PORT=$EPMD_PORT
EOF
KS="http://127.0.0.1:$K/v3"

# ---- MariaDB (scripts/mariadb.sh: private instance; root by unix socket) ----
log "MariaDB"
bash "$root/scripts/mariadb.sh" start "$dir/db" >/dev/null
DBPORT="$(cat "$dir/db/port")"
DB_PW="db-$RANDOM$RANDOM"
sql="CREATE USER IF NOT EXISTS 'openstack'@'127.0.0.1' IDENTIFIED BY '$DB_PW'; ALTER USER 'openstack'@'127.0.0.1' IDENTIFIED BY '$DB_PW'; GRANT ALL ON *.* TO 'openstack'@'127.0.0.1';"
for db in keystone glance placement nova_api nova nova_cell0; do sql="$sql DROP DATABASE IF EXISTS $db; CREATE DATABASE $db;"; done
mariadb --no-defaults --protocol=socket -S "$dir/db/mysqld.sock" -uroot -e "$sql"
dburl() { echo "mysql+pymysql://openstack:$DB_PW@127.0.0.1:$DBPORT/$1?charset=utf8"; }

# ---- RabbitMQ ----
log "RabbitMQ"
echo '[].' > "$dir/rabbit/enabled_plugins"
echo "listeners.tcp.default = 127.0.0.1:$RABBIT_PORT" > "$dir/rabbit/rabbitmq.conf"
touch "$dir/rabbit/env.conf"
(
  export HOME="$dir/rabbit" RABBITMQ_NODENAME="np$RABBIT_PORT@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$RABBIT_PORT" RABBITMQ_DIST_PORT="$RABBIT_DIST" ERL_EPMD_PORT="$EPMD_PORT" \
    RABBITMQ_MNESIA_BASE="$dir/rabbit/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/rabbit/enabled_plugins" RABBITMQ_PID_FILE="$dir/rabbit/rabbit.pid" \
    RABBITMQ_CONFIG_FILE="$dir/rabbit/rabbitmq" RABBITMQ_CONF_ENV_FILE="$dir/rabbit/env.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/rabbit/advanced.config"
  nohup /usr/lib/rabbitmq/bin/rabbitmq-server > "$dir/log/rabbitmq.out" 2>&1 < /dev/null &
)
TRANSPORT="rabbit://guest:guest@127.0.0.1:$RABBIT_PORT/"

# ---- Keystone ----
log "Keystone"
cat > "$dir/wsgi_serve.py" <<'EOF'
# Serves one WSGI application factory on 127.0.0.1:PORT, one thread per request.
import importlib, socketserver, sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

class ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

class Handler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))

module, factory = sys.argv[1].split(":")
port = int(sys.argv[2])
sys.argv = sys.argv[:1]  # the services parse the command line themselves
app = getattr(importlib.import_module(module), factory)()
make_server("127.0.0.1", port, app, server_class=ThreadedServer, handler_class=Handler).serve_forever()
EOF
cat > "$dir/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $dir/log/keystone.log
[database]
connection = $(dburl keystone)
[token]
provider = fernet
expiration = 7200
[fernet_tokens]
key_repository = $dir/keystone/fernet
[fernet_receipts]
key_repository = $dir/keystone/fernet
[credential]
key_repository = $dir/keystone/credential
EOF
km() { pymain keystone.cmd.manage keystone-manage --config-file "$dir/keystone/keystone.conf" "$@" >> "$dir/log/keystone-manage.out" 2>&1; }
km db_sync
km fernet_setup --keystone-user root --keystone-group root
km credential_setup --keystone-user root --keystone-group root
km bootstrap --bootstrap-password "$ADMIN_PW" --bootstrap-admin-url "$KS" --bootstrap-internal-url "$KS" \
  --bootstrap-public-url "$KS" --bootstrap-region-id RegionOne
OS_KEYSTONE_CONFIG_DIR="$dir/keystone" spawn keystone "$PY" "$dir/wsgi_serve.py" keystone.server.wsgi:initialize_public_application "$K"
wait_http "$KS" Keystone keystone

cat > "$dir/keystone_setup.py" <<'EOF'
# Projects, users, roles, services and endpoints of the private cloud, through Keystone's API.
import os, sys
from keystoneauth1 import session
from keystoneauth1.identity import v3

K = os.environ["KEYSTONE_URL"]
s = session.Session(auth=v3.Password(auth_url=K, username="admin", password=os.environ["ADMIN_PASSWORD"],
                                     project_name="admin", user_domain_id="default", project_domain_id="default"))

def call(method, path, body=None):
    r = s.request(K + path, method, json=body, raise_exc=False)
    if r.status_code >= 300:
        sys.exit("%s %s: %s %s" % (method, path, r.status_code, r.text))
    return r.json() if r.text else {}

def find(kind, name, extra=""):
    got = call("GET", "/%ss?name=%s%s" % (kind, name, extra))["%ss" % kind]
    return got[0]["id"] if got else None

def ensure(kind, body, extra=""):
    return find(kind, body["name"], extra) or call("POST", "/%ss" % kind, {kind: body})[kind]["id"]

role = {r["name"]: r["id"] for r in call("GET", "/roles")["roles"]}
example = ensure("domain", {"name": "Example", "enabled": True})
service = ensure("project", {"name": "service", "domain_id": "default"}, "&domain_id=default")
demo = ensure("project", {"name": "demo", "domain_id": "default"}, "&domain_id=default")
ci = ensure("project", {"name": "ci", "domain_id": example}, "&domain_id=" + example)

def user(name, password, domain, project, rolename):
    uid = ensure("user", {"name": name, "password": password, "domain_id": domain}, "&domain_id=" + domain)
    call("PUT", "/projects/%s/users/%s/roles/%s" % (project, uid, role[rolename]))

for svc in ("nova", "glance", "placement", "neutron"):
    user(svc, os.environ["SERVICE_PASSWORD"], "default", service, "admin")
user("demo", os.environ["DEMO_PASSWORD"], "default", demo, "member")
user("alice", os.environ["DEMO_PASSWORD"], example, ci, "member")

for name, kind, url in (("nova", "compute", os.environ["NOVA_URL"]), ("glance", "image", os.environ["GLANCE_URL"]),
                        ("placement", "placement", os.environ["PLACEMENT_URL"]),
                        ("neutron", "network", os.environ["NEUTRON_URL"])):
    sid = find("service", name) or call("POST", "/services", {"service": {"name": name, "type": kind}})["service"]["id"]
    for iface in ("public", "internal", "admin"):
        call("POST", "/endpoints", {"endpoint": {"service_id": sid, "interface": iface, "url": url, "region_id": "RegionOne"}})
EOF
KEYSTONE_URL="$KS" ADMIN_PASSWORD="$ADMIN_PW" SERVICE_PASSWORD="$SERVICE_PW" DEMO_PASSWORD="$DEMO_PW" \
  NOVA_URL="http://127.0.0.1:$N/v2.1" GLANCE_URL="http://127.0.0.1:$G" PLACEMENT_URL="http://127.0.0.1:$P" \
  NEUTRON_URL="http://127.0.0.1:$Q/network" "$PY" "$dir/keystone_setup.py" > "$dir/log/keystone-setup.out" 2>&1

authtoken() {
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KS
auth_url = $KS
auth_type = password
username = $1
password = $SERVICE_PW
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = RegionOne
EOF
}

# ---- Neutron stand-in (the API simulator, trusting this Keystone's tokens) ----
log "Neutron stand-in"
cat > "$dir/neutron-standin.json" <<EOF
{ "externalKeystone": "$KS", "networks": [{ "name": "private", "cidr": "10.20.0.0/16", "shared": true }, { "name": "public", "cidr": "172.24.8.0/24", "external": true }] }
EOF
(cd "$root" && spawn neutron-standin node --import tsx "$root/test/openstack-sim/main.ts" --port "$Q" --config "$dir/neutron-standin.json")
wait_http "http://127.0.0.1:$Q/network/" "Neutron stand-in" neutron-standin

# ---- Placement ----
log "Placement"
cat > "$dir/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $dir/log/placement.log
[placement_database]
connection = $(dburl placement)
[api]
auth_strategy = keystone
$(authtoken placement)
EOF
pymain placement.cmd.manage placement-manage --config-file "$dir/placement/placement.conf" db sync > "$dir/log/placement-manage.out" 2>&1
OS_PLACEMENT_CONFIG_DIR="$dir/placement" spawn placement "$PY" "$dir/wsgi_serve.py" placement.wsgi:init_application "$P"

# ---- Glance ----
log "Glance"
cat > "$dir/glance/glance-api-paste.ini" <<'EOF'
[pipeline:glance-api-keystone]
pipeline = versionnegotiation authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true
EOF
cat > "$dir/glance/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $G
workers = 1
log_file = $dir/log/glance-api.log
enabled_backends = fs:file
[database]
connection = $(dburl glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $dir/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $dir/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $dir/glance/tasks
[paste_deploy]
flavor = keystone
config_file = $dir/glance/glance-api-paste.ini
$(authtoken glance)
EOF
pymain glance.cmd.manage glance-manage --config-file "$dir/glance/glance-api.conf" db_sync > "$dir/log/glance-manage.out" 2>&1
spawn glance-api "$PY" -c "import sys; sys.argv[0] = 'glance-api'; from glance.cmd.api import main; sys.exit(main())" \
  --config-file "$dir/glance/glance-api.conf"

# ---- Nova ----
log "Nova"
cat > "$dir/nova/api-paste.ini" <<'EOF'
[composite:osapi_compute]
use = call:nova.api.openstack.urlmap:urlmap_factory
/: oscomputeversions
/v2.1: openstack_compute_api_v21

[composite:openstack_compute_api_v21]
use = call:nova.api.auth:pipeline_factory_v21
keystone = request_id faultwrap authtoken keystonecontext osapi_compute_app_v21

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:faultwrap]
paste.filter_factory = nova.api.openstack:FaultWrapper.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:keystonecontext]
paste.filter_factory = nova.api.auth:NovaKeystoneContext.factory

[app:osapi_compute_app_v21]
paste.app_factory = nova.api.openstack.compute:APIRouterV21.factory

[pipeline:oscomputeversions]
pipeline = faultwrap oscomputeversionapp

[app:oscomputeversionapp]
paste.app_factory = nova.api.openstack.compute.versions:Versions.factory
EOF
servicecreds() {
  cat <<EOF
[$1]
auth_type = password
auth_url = $KS
username = nova
password = $SERVICE_PW
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = RegionOne
EOF
}
cat > "$dir/nova/nova.conf" <<EOF
[DEFAULT]
transport_url = $TRANSPORT
compute_driver = fake.FakeDriver
host = nodepool-compute
my_ip = 127.0.0.1
state_path = $dir/nova/state
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = $N
osapi_compute_workers = 1
enabled_apis = osapi_compute
use_rootwrap_daemon = false
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $dir/nova/api-paste.ini
[api_database]
connection = $(dburl nova_api)
[database]
connection = $(dburl nova)
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 2
[oslo_concurrency]
lock_path = $dir/nova/locks
[oslo_messaging_notifications]
driver = noop
[notifications]
notification_format = unversioned
$(authtoken nova)
$(servicecreds placement)
$(servicecreds neutron)
$(servicecreds glance)
EOF
# nova-compute reaches the database only through the conductor: its config has no database
sed -e '/^\[api_database\]/,+1d' -e '/^\[database\]/,+1d' "$dir/nova/nova.conf" > "$dir/nova/nova-compute.conf"
nm() { pymain nova.cmd.manage nova-manage --config-file "$dir/nova/nova.conf" "$@" >> "$dir/log/nova-manage.out" 2>&1; }
nm api_db sync
nm cell_v2 map_cell0 --database_connection "$(dburl nova_cell0)"
nm cell_v2 create_cell --name cell1 --verbose
nm db sync
for svc in api conductor scheduler compute; do
  conf="$dir/nova/nova.conf"; [ "$svc" = compute ] && conf="$dir/nova/nova-compute.conf"
  spawn "nova-$svc" "$PY" -c "import sys; sys.argv[0] = 'nova-$svc'; from nova.cmd.$svc import main; sys.exit(main())" \
    --config-file "$conf" --log-file "$dir/log/nova-$svc.log"
done
wait_http "http://127.0.0.1:$G/" Glance glance-api
wait_http "http://127.0.0.1:$P/" Placement placement
wait_http "http://127.0.0.1:$N/" "Nova API" nova-api

cat > "$dir/clouds.yaml" <<EOF
clouds:
  real:
    auth:
      auth_url: $KS
      username: demo
      password: $DEMO_PW
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
    image_format: qcow2
  real-example:
    auth:
      auth_url: $KS
      username: alice
      password: $DEMO_PW
      project_name: ci
      user_domain_name: Example
      project_domain_name: Example
    region_name: RegionOne
    identity_api_version: 3
    image_format: qcow2
  real-admin:
    auth:
      auth_url: $KS
      username: admin
      password: $ADMIN_PW
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
EOF

# ---- the compute host joins the cell; flavors and an image for tests ----
log "waiting for nova-compute"
cat > "$dir/cloud_setup.py" <<'EOF'
# Waits for the compute host to be up and mapped, then creates flavors and a cirros image.
import os, sys, time
from keystoneauth1 import session
from keystoneauth1.identity import v3

K = os.environ["KEYSTONE_URL"]
admin = session.Session(auth=v3.Password(auth_url=K, username="admin", password=os.environ["ADMIN_PASSWORD"],
                                         project_name="admin", user_domain_id="default", project_domain_id="default"))
compute = {"service_type": "compute", "interface": "public", "region_name": "RegionOne"}
# (150 s was not always enough for its first start on a loaded CI machine)
deadline = time.time() + 300
while True:
    r = admin.get("/os-hypervisors", endpoint_filter=compute, raise_exc=False)
    hv = r.json().get("hypervisors", []) if r.status_code == 200 else []
    r2 = admin.get("/os-services?binary=nova-compute", endpoint_filter=compute, raise_exc=False)
    up = [s for s in r2.json().get("services", []) if s["state"] == "up"] if r2.status_code == 200 else []
    if hv and up:
        break
    if time.time() > deadline:
        sys.exit("nova-compute did not come up: hypervisors %s services %s" % (hv, up))
    time.sleep(1)
for fid, name, vcpus, ram, disk in (("1", "m1.tiny", 1, 512, 1), ("2", "m1.small", 1, 2048, 20),
                                   ("3", "m1.medium", 2, 4096, 40), ("4", "m1.large", 4, 8192, 80)):
    admin.post("/flavors", endpoint_filter=compute, raise_exc=False,
               json={"flavor": {"id": fid, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk}})
image = {"service_type": "image", "interface": "public", "region_name": "RegionOne"}
img = admin.post("/v2/images", endpoint_filter=image, json={
    "name": "cirros", "disk_format": "qcow2", "container_format": "bare", "visibility": "public"}).json()
admin.put("/v2/images/%s/file" % img["id"], endpoint_filter=image, data=b"\0" * 65536,
          headers={"Content-Type": "application/octet-stream"})
EOF
KEYSTONE_URL="$KS" ADMIN_PASSWORD="$ADMIN_PW" "$PY" "$dir/cloud_setup.py" > "$dir/log/cloud-setup.out" 2>&1
nm cell_v2 discover_hosts --verbose
trap - ERR
echo "$KS" > "$dir/url"
echo "$KS"
