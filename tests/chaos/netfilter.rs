//! The packet filtering that cuts a node from its peers (`CutFromPeers`)
//! or mutes it (`Mute`): nftables inside the node's namespace, iptables
//! when `nft` is missing.

use super::*;

/// The table `CutFromPeers` adds inside the cut node's namespace.
pub(crate) const CUT_TABLE: &str = "chaos_cut";

/// Whether `cmd` is on the PATH.
pub(crate) fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Drops, inside namespace `ns`, every packet to or from `peers` (nftables
/// when `nft` is there, else iptables); other traffic (the isolation
/// router, the client) passes. Panics if neither tool works: the fault
/// must not silently do nothing.
pub(crate) fn cut_from(ns: &str, peers: &[String]) {
    filter_peers(ns, peers, true);
}

/// `Mute`: only what the node sends to `peers` is dropped.
pub(crate) fn mute(ns: &str, peers: &[String]) {
    filter_peers(ns, peers, false);
}

/// Drops, in namespace `ns`, what goes to `peers` and, with `inbound`,
/// what comes from them.
pub(crate) fn filter_peers(ns: &str, peers: &[String], inbound: bool) {
    let set = peers.join(", ");
    let out = if have("nft") {
        let input = if inbound {
            "\tchain input { type filter hook input priority 0; policy accept; ip saddr @peers drop; }\n"
        } else {
            ""
        };
        let script = format!(
            "table inet {CUT_TABLE} {{\n\
             \tset peers {{ type ipv4_addr; elements = {{ {set} }}; }}\n\
             {input}\
             \tchain output {{ type filter hook output priority 0; policy accept; ip daddr @peers drop; }}\n\
             }}\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft");
        child
            .stdin
            .take()
            .expect("nft stdin")
            .write_all(script.as_bytes())
            .expect("write nft script");
        child.wait_with_output().expect("nft")
    } else if have("iptables") {
        let mut out = None;
        let chains: &[(&str, &str)] = if inbound {
            &[("INPUT", "-s"), ("OUTPUT", "-d")]
        } else {
            &[("OUTPUT", "-d")]
        };
        for p in peers {
            for &(chain, dir) in chains {
                let o = run(Command::new("ip").args([
                    "netns", "exec", ns, "iptables", "-A", chain, dir, p, "-j", "DROP",
                ]));
                assert!(o.status.success(), "cutting {ns} from {p}: {}", text(&o));
                out = Some(o);
            }
        }
        out.expect("at least one peer")
    } else {
        panic!(
            "CutFromPeers needs `nft` (package nftables) or `iptables` in the PATH; \
             .ci/run installs nftables"
        )
    };
    assert!(
        out.status.success(),
        "cutting {ns} from {peers:?}: {}",
        text(&out)
    );
}

/// Removes what `cut_from` added in `ns`.
pub(crate) fn uncut(ns: &str) {
    let out = if have("nft") {
        run(Command::new("ip").args([
            "netns", "exec", ns, "nft", "delete", "table", "inet", CUT_TABLE,
        ]))
    } else {
        let o = run(Command::new("ip").args(["netns", "exec", ns, "iptables", "-F", "INPUT"]));
        if o.status.success() {
            run(Command::new("ip").args(["netns", "exec", ns, "iptables", "-F", "OUTPUT"]))
        } else {
            o
        }
    };
    assert!(out.status.success(), "uncutting {ns}: {}", text(&out));
}
