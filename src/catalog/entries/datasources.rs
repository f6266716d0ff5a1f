//! Data sources a Linux node cannot drive, and OCF agents (`rules::datasources`).

use crate::catalog::Origin::Asctl;

rules! {
    DATASOURCES_FAMILY;
    NO_LINUX_DRIVER = {
        id: "AS0314",
        name: "no-linux-driver",
        severity: Warning,
        title: "a data source a Linux node may run has no driver there and no `agent`",
        origin: Asctl,
        scope: Structural,
        fix: "give the data source an `agent: {ocf: PROVIDER:TYPE, params: {...}}` that drives it on Linux, or run its group on nodes that support it",
        explanation: "On Linux, asctl drives `sharedDisk`, `mountPoint` and `composite` data sources itself. Every other type (mirroring, MirrorView, SRDF, VMFS, network shares, RepliStor, VxVM) needs hardware or an array interface that only an OCF resource agent knows how to drive: DRBD's agent for mirroring, the array vendor's agent for SRDF or MirrorView, LVM-activate for a volume group. Without an `agent`, a Linux node refuses to start the data source (a permanent start error that fails the group over), so the group never runs without its data, but it never runs on that node either. The finding names the first Linux node among the group's preferred nodes.",
    }
    OCF_AGENT_NAME = {
        id: "AS0315",
        name: "ocf-agent-name",
        severity: Error,
        title: "an OCF agent is not named `PROVIDER:TYPE`",
        origin: Asctl,
        scope: Structural,
        fix: "write the agent as `PROVIDER:TYPE`, e.g. `heartbeat:Filesystem` (the agent at `$OCF_ROOT/resource.d/heartbeat/Filesystem`)",
        explanation: "An OCF resource agent is found at `$OCF_ROOT/resource.d/PROVIDER/TYPE` (`OCF_ROOT` is `/usr/lib/ocf` unless the agent's environment sets it). Both parts must be plain names (letters, digits, `-`, `_`, `.`): a `/` or `..` would name a program outside the agents' directory.",
    }
    OCF_PARAM_MISSING = {
        id: "AS0316",
        name: "ocf-param-missing",
        severity: Error,
        title: "an OCF agent's required parameter is not given",
        origin: Asctl,
        scope: Structural,
        fix: "add the parameter under `params`",
        explanation: "Checked where the agent is installed on the machine that runs `asctl validate`: asctl runs its `meta-data` action and compares the parameters the configuration gives with those the agent declares `required=\"1\"`. The agent would refuse to start without them (usually with OCF_ERR_CONFIGURED, which fails the group everywhere).",
    }
    OCF_PARAM_UNKNOWN = {
        id: "AS0317",
        name: "ocf-param-unknown",
        severity: Warning,
        title: "a parameter is not one the OCF agent declares",
        origin: Asctl,
        scope: Structural,
        fix: "correct the parameter's name (see the agent's `meta-data`), or remove it",
        explanation: "Checked where the agent is installed on the machine that runs `asctl validate`. Agents ignore environment variables they do not know, so a misspelt parameter (`fs_type` for `fstype`) silently leaves the agent with its default; asctl flags it and suggests the closest declared name.",
    }
    OCF_AGENT_NOT_INSTALLED = {
        id: "AS0318",
        name: "ocf-agent-not-installed",
        severity: Note,
        title: "an OCF agent is not installed where validate runs, so its parameters are not checked",
        origin: Asctl,
        scope: Structural,
        fix: "run `asctl validate` where the agent is installed (e.g. a node, or a machine with the `resource-agents` package), or ignore this note",
        explanation: "asctl checks an agent's parameters against the agent's own `meta-data`, which it can only read where the agent is installed. Elsewhere it says so rather than pass the parameters silently; the nodes still check them when they run the agent.",
    }
}
