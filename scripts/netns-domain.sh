#!/usr/bin/env bash
# A three-node asctl domain in network namespaces on this machine, to watch
# a failover happen: a group `web` with the managed address 10.220.1.100 and
# a demo web server bound to it, and a group `db` that takes its data along:
# a shared disk (one ext4 image, each node its own loop device over it, bound
# on the same device path in the node's own mount namespace), a mount point
# on it, `asctl demo-writer` (a record acknowledged only after its fsync) and
# the address 10.220.1.101. Root only (namespaces, addresses, loop devices).
#
#   scripts/netns-domain.sh up            build asctl, create the namespaces, start the agents, apply
#   scripts/netns-domain.sh status        asctl status (nodes, lines, where the groups run)
#   scripts/netns-domain.sh where         which node holds each group, what web answers, db's records
#   scripts/netns-domain.sh write TEXT    one record to db; prints its acknowledgement (`ack SEQ`)
#   scripts/netns-domain.sh crash NODE    the machine dies: every process killed, links down
#   scripts/netns-domain.sh boot NODE     links up, its agent started again
#   scripts/netns-domain.sh asctl ARGS... any asctl command against the domain
#   scripts/netns-domain.sh down          stop everything, remove the namespaces
#
# Layout: bridges d1 (10.220.1.0/24), d2 (10.220.2.0/24) and v (10.220.3.0/24)
# in namespace asd-sw; nodes asd-node1..3 at .1/.2/.3 on each line. This
# shell's namespace joins d1 as 10.220.1.254 (the isolation address, and
# where `curl http://10.220.1.100:8080/` works from). Each node's processes
# share one mount namespace, held by a `sleep` (nodes/<node>/init.pid), so a
# crashed node's mounts go with its last process, as on a real machine.
# State and logs in $ASCTL_NETNS_DIR (default /run/asctl-netns).
# ASCTL=path/to/asctl skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${ASCTL_NETNS_DIR:-/run/asctl-netns}
NODES=(node1 node2 node3)
VIP=10.220.1.100
PORT=8080
DB_VIP=10.220.1.101
DB_PORT=5433
API=7401
SW=asd-sw

die() { echo "netns-domain: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
command -v ip >/dev/null || die "needs the ip command (iproute2)"
command -v losetup >/dev/null || die "needs losetup (mount)"
command -v mkfs.ext4 >/dev/null || die "needs mkfs.ext4 (e2fsprogs)"

asctl_bin() {
  if [ -n "${ASCTL:-}" ]; then
    echo "$ASCTL"
  elif [ -x "$DIR/asctl" ]; then
    echo "$DIR/asctl"
  else
    die "not up (run: $0 up)"
  fi
}

# asctl ARGS: against the domain, with its credentials.
cli() { ASCTL_STATE_DIR="$DIR/creds" "$(asctl_bin)" "$@"; }

node_index() {
  for i in "${!NODES[@]}"; do
    [ "${NODES[$i]}" = "$1" ] && { echo $((i + 1)); return; }
  done
  die "no node $1 (nodes: ${NODES[*]})"
}

write_config() {
  local c="$DIR/config"
  mkdir -p "$c"
  cat >"$c/domain.yaml" <<EOF
# A domain in network namespaces (scripts/netns-domain.sh).
apiVersion: asctl/v1
kind: Domain
metadata:
  name: netns
spec:
  qualification: generic
  heartbeat: {interval: 250ms, timeout: 1s}
  isolation: {addresses: [10.220.1.254], response: offline}
EOF
  for i in 1 2 3; do
    cat >>"$c/domain.yaml" <<EOF
---
apiVersion: asctl/v1
kind: Node
metadata: {name: node$i}
spec:
  physical: true
  os: {name: linux, bits: 64}
  agent: {address: "10.220.1.$i:$API"}
EOF
  done
  local k=1
  for line in d1 d2 v; do
    local role=domain
    [ "$line" = v ] && role=verification
    cat >>"$c/domain.yaml" <<EOF
---
apiVersion: asctl/v1
kind: NetworkLine
metadata: {name: $line}
spec:
  role: $role
  subnet: 10.220.$k.0/24
  members: {node1: 10.220.$k.1, node2: 10.220.$k.2, node3: 10.220.$k.3}
EOF
    k=$((k + 1))
  done
  cat >"$c/group-web.yaml" <<EOF
# The service: its address moves with the demo server, home on node1.
apiVersion: asctl/v1
kind: ResourceGroup
metadata: {name: web}
spec:
  preferredNodes: [node1, node2, node3]
  failback: auto
  ipAddresses: [{address: $VIP/24, line: d1}]
  processes:
    - name: server
      command: [asctl, demo-server, --bind, "$VIP", --port, "$PORT"]
      monitor:
        interval: 1s
        timeout: 500ms
        probe: {http: "http://$VIP:$PORT/health"}
EOF
  cat >"$c/group-db.yaml" <<EOF
# The data: the shared disk (each node's own loop device over one image,
# bound on $DIR/lun), its file system mounted at $DIR/db, the writer on it.
apiVersion: asctl/v1
kind: DataSource
metadata: {name: db-disk}
spec:
  type: sharedDisk
  device: {backing: rdm-physical, path: $DIR/lun}
  monitor: {interval: 1s, timeout: 2s}
---
apiVersion: asctl/v1
kind: DataSource
metadata: {name: db-data}
spec:
  type: mountPoint
  on: db-disk
  path: $DIR/db
  fsType: ext4
  options: noatime
  stopTimeout: 5s
  monitor: {interval: 1s, timeout: 2s}
---
apiVersion: asctl/v1
kind: ResourceGroup
metadata: {name: db}
spec:
  preferredNodes: [node2, node3, node1]
  dataSources: [db-disk, db-data]
  ipAddresses: [{address: $DB_VIP/24, line: d1}]
  processes:
    - name: writer
      command: [asctl, demo-writer, --dir, $DIR/db, --bind, "$DB_VIP", --port, "$DB_PORT"]
      stopTimeout: 5s
      monitor:
        interval: 1s
        timeout: 500ms
        probe: {tcp: "$DB_VIP:$DB_PORT"}
EOF
}

# The LUN: one ext4 image, one loop device per node over it (direct I/O, so
# that no node reads another's writes from a page cache of its own).
make_lun() {
  truncate -s 64M "$DIR/lun.img"
  mkfs.ext4 -q -F "$DIR/lun.img"
  : >"$DIR/lun"
  for n in "${NODES[@]}"; do
    mkdir -p "$DIR/nodes/$n"
    losetup --direct-io=on --find --show "$DIR/lun.img" >"$DIR/nodes/$n/loop"
  done
}

# The node's machine: a mount namespace of its own inside its network
# namespace, held by a sleep, with its loop device bound on the device path.
boot_machine() {
  local n=$1 d="$DIR/nodes/$1"
  ip netns exec "asd-$n" unshare --mount --propagation slave \
    sh -c 'mount --bind "$1" "$2" && exec sleep infinity' sh "$(cat "$d/loop")" "$DIR/lun" \
    </dev/null >/dev/null 2>&1 &
  echo $! >"$d/init.pid"
  for _ in $(seq 1 100); do
    grep -q " $DIR/lun " "/proc/$(cat "$d/init.pid")/mountinfo" 2>/dev/null && return
    sleep 0.05
  done
  die "$n: its loop device was not bound on $DIR/lun"
}

write_agents() {
  for n in "${NODES[@]}"; do
    local i d
    i=$(node_index "$n")
    d="$DIR/nodes/$n"
    mkdir -p "$d"
    cat >"$d/agent.yaml" <<EOF
node: $n
listen: "10.220.1.$i:$API"
allowRemote: true
dataDir: data
tokenFile: ../../creds/token
tls: {cert: ../../creds/tls/$n.crt, key: ../../creds/tls/$n.key, ca: ../../creds/tls/ca.crt}
bootstrap: ../../config
EOF
  done
}

start_agent() {
  local n=$1 d="$DIR/nodes/$1"
  nsenter -t "$(cat "$d/init.pid")" -m -n --wd="$PWD" setsid "$(asctl_bin)" agent \
    --config "$d/agent.yaml" </dev/null >>"$d/agent.log" 2>&1 &
  echo $! >"$d/agent.pid"
}

up() {
  ip netns list | grep -q "^$SW\b" && die "already up (run: $0 down)"
  local bin
  if [ -n "${ASCTL:-}" ]; then
    bin=$ASCTL
  else
    cargo build --release --quiet
    bin=target/release/asctl
  fi
  mkdir -p "$DIR"
  install -m 0755 "$bin" "$DIR/asctl"
  ip netns add $SW
  local k=1
  for b in d1 d2 v; do
    ip -n $SW link add "$b" type bridge
    ip -n $SW link set "$b" up
    for n in "${NODES[@]}"; do
      local i
      i=$(node_index "$n")
      [ $k = 1 ] && { ip netns add "asd-$n"; ip -n "asd-$n" link set lo up; }
      ip link add "asd$i$b" type veth peer name "$b" netns "asd-$n"
      ip link set "asd$i$b" netns $SW
      ip -n $SW link set "asd$i$b" master "$b" up
      ip -n "asd-$n" addr add "10.220.$k.$i/24" dev "$b"
      ip -n "asd-$n" link set "$b" up
    done
    k=$((k + 1))
  done
  # This shell's namespace on d1: the isolation address and the client.
  ip link add asd-host type veth peer name host netns $SW
  ip -n $SW link set host master d1 up
  ip addr add 10.220.1.254/24 dev asd-host
  ip link set asd-host up
  write_config
  ASCTL= ASCTL_STATE_DIR= "$DIR/asctl" credentials "$DIR/config" --out "$DIR/creds" >/dev/null
  write_agents
  make_lun
  for n in "${NODES[@]}"; do boot_machine "$n"; start_agent "$n"; done
  echo "Agents started; logs in $DIR/nodes/<node>/agent.log"
  wait_formed
  cli apply "$DIR/config" --auto-approve --timeout 60s
  echo
  where
  cat <<EOF

Try:  $0 crash node1     # the machine running web dies
      $0 where           # web and $VIP moved to node2 within about 2 s
      $0 boot node1      # node1 returns; web fails back (failback: auto)
      curl http://$VIP:$PORT/
      $0 write hello     # a record to db (on node2): ack 1
      $0 crash node2     # the machine running db dies, its disk mounted
      $0 where           # db on node3: mounted there, every record kept
      $0 down
EOF
}

# Until a leader is named and every node is up (a fresh domain elects its
# first leader from the bootstrap configuration's members).
wait_formed() {
  printf "Waiting for the domain to form"
  for _ in $(seq 1 120); do
    local s
    s=$(cli status --format json 2>/dev/null || true)
    if [ -n "$s" ] && python3 - "$s" <<'PY' 2>/dev/null; then
import json, sys
s = json.loads(sys.argv[1])
ok = s.get("leader") and all(s["nodes"].get(n, {}).get("state") == "up" for n in ("node1", "node2", "node3"))
sys.exit(0 if ok else 1)
PY
      echo " — leader named, every node up"
      return
    fi
    printf .
    sleep 0.5
  done
  echo
  die "the domain did not form within 60 s; see $DIR/nodes/*/agent.log"
}

# Which node's namespace holds the service address, and what the service
# answers from here.
where() {
  local holders=()
  for n in "${NODES[@]}"; do
    if ip -n "asd-$n" -o addr show 2>/dev/null | grep -q " $VIP/"; then holders+=("$n"); fi
  done
  echo "$VIP is on: ${holders[*]:-no node}"
  local answer
  answer=$(curl -s --max-time 1 "http://$VIP:$PORT/" || true)
  echo "http://$VIP:$PORT/ answers: ${answer:-(nothing)}"
  local on=0
  for n in "${NODES[@]}"; do
    local pid log
    pid=$(cat "$DIR/nodes/$n/init.pid" 2>/dev/null || true)
    [ -n "$pid" ] && grep -q " $DIR/db " "/proc/$pid/mountinfo" 2>/dev/null || continue
    on=$((on + 1))
    log="/proc/$pid/root$DIR/db/records.log"
    echo "db's file system is mounted on $n: $(wc -l <"$log" 2>/dev/null || echo 0) records; the last: $(tail -n 1 "$log" 2>/dev/null)"
  done
  [ $on = 0 ] && echo "db's file system is mounted on no node"
  cli status | sed -n '/^GROUP /,/^$/p'
}

# One record to db's writer, which answers `ack SEQ` once it is on disk.
write_record() {
  local answer
  answer=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "%s\n" "$3" >&3 && read -r a <&3 && echo "$a"' \
    sh "$DB_VIP" "$DB_PORT" "$*" 2>/dev/null || true)
  echo "db answered: ${answer:-(nothing: no node serves $DB_VIP:$DB_PORT now)}"
}

crash() {
  local n=$1
  node_index "$n" >/dev/null
  # Every process of the machine at once, then its address and cables.
  ip netns pids "asd-$n" | xargs -r kill -9
  ip -n "asd-$n" addr del "$VIP/24" dev d1 2>/dev/null || true
  ip -n "asd-$n" addr del "$DB_VIP/24" dev d1 2>/dev/null || true
  for l in d1 d2 v; do ip -n "asd-$n" link set "$l" down; done
  echo "$n crashed at $(date -u +%H:%M:%S.%N | cut -c1-12) UTC"
}

boot() {
  local n=$1
  node_index "$n" >/dev/null
  for l in d1 d2 v; do ip -n "asd-$n" link set "$l" up; done
  boot_machine "$n"
  start_agent "$n"
  echo "$n booted; its agent runs again"
}

down() {
  for n in "${NODES[@]}"; do
    local pid
    pid=$(cat "$DIR/nodes/$n/agent.pid" 2>/dev/null || true)
    # SIGTERM: each agent takes its groups offline first.
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 3
  for n in "${NODES[@]}"; do
    ip netns pids "asd-$n" 2>/dev/null | xargs -r kill -9
    ip netns del "asd-$n" 2>/dev/null || true
  done
  ip link del asd-host 2>/dev/null || true
  ip netns del $SW 2>/dev/null || true
  # A dead mount namespace's file systems are unmounted by the kernel a
  # moment after its last process: detach the loop devices after that.
  sleep 1
  for n in "${NODES[@]}"; do
    local loop
    loop=$(cat "$DIR/nodes/$n/loop" 2>/dev/null || true)
    [ -n "$loop" ] && { losetup -d "$loop" 2>/dev/null || true; }
  done
  rm -rf "$DIR"
  echo "down: namespaces removed"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  up) up ;;
  status) cli status "$@" ;;
  where) where ;;
  write) [ $# -ge 1 ] || die "write TEXT"; write_record "$@" ;;
  crash) [ $# = 1 ] || die "crash NODE"; crash "$1" ;;
  boot) [ $# = 1 ] || die "boot NODE"; boot "$1" ;;
  asctl) cli "$@" ;;
  down) down ;;
  *) sed -n 2,27p "$0"; exit 2 ;;
esac
