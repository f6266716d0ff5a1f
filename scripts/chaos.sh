#!/usr/bin/env bash
# The chaos harness (tests/chaos/): real agents in network namespaces,
# seeded faults, an observer outside the nodes. Root only.
#
#   scripts/chaos.sh [--rounds N] [--seed S|random] [--topologies three,two-witness,two]
#                    [--faults all|safe|crash-holder|crash-leader|KIND,KIND...]
#                    [--group web|db] [--switchovers N] [--keep-logs]
# (all, the default: also agent kill -9 and SIGSTOP, fenced by the lease guard,
# and a node cut from its peers by packet filtering (needs nft or iptables),
# fenced on quorum loss;
# KIND: crash, line-down, partition, kill-agent, freeze, cut-from-peers, mute,
# disk-full, disk-ro, stop-writer, disk-slow)
# --group db aims the rounds that hit a group's node at db's (the data failover
# benchmark: --faults crash-holder --group db); --switchovers N ends each
# topology with N clean switchovers of db (asctl move), timed.
#
# Prints the seed; a violation exits non-zero with the command that replays it.
# --keep-logs keeps the agents' logs of a passing run too (a violation always does).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=20 seed=random topologies=three faults=all keep= group= switchovers=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --topologies) topologies="$2"; shift 2 ;;
    --faults) faults="$2"; shift 2 ;;
    --group) group="$2"; shift 2 ;;
    --switchovers) switchovers="$2"; shift 2 ;;
    --keep-logs) keep=1; shift ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then
  echo "the chaos harness needs root (network namespaces)" >&2
  exit 2
fi
if [ -n "$keep" ]; then export CHAOS_KEEP_LOGS=1; fi
if [ -n "$group" ]; then export CHAOS_GROUP="$group"; fi
export CHAOS_SWITCHOVERS="$switchovers"
CHAOS_ROUNDS="$rounds" CHAOS_SEED="$seed" CHAOS_TOPOLOGIES="$topologies" CHAOS_FAULTS="$faults" \
  cargo test --release --test chaos -- --include-ignored --exact chaos --nocapture
