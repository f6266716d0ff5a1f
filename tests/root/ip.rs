//! The managed IP driver in network namespaces: `a` holds the address, `b`
//! listens for the gratuitous ARP with a raw packet socket. Root only.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::support::agent::n;
use crate::support::{Netns, veth};
use asctl::drivers::ip::IpDriver;
use asctl::drivers::{DriverError, ResourceHealth};
use asctl::model::ManagedIp;

fn managed(addr: &str) -> ManagedIp {
    ManagedIp {
        address: addr.parse().expect("cidr"),
        line: n("lan"),
    }
}

/// One ARP frame: operation, sender MAC, sender IP, target IP.
type Arp = (u16, [u8; 6], Ipv4Addr, Ipv4Addr);

/// ARP frames seen on `ifname`
/// for `ip` until `limit`, or until both a request and a reply were seen.
fn listen_arp(
    ns: &Netns,
    ifname: &str,
    ip: Ipv4Addr,
    limit: Duration,
) -> std::thread::JoinHandle<Vec<Arp>> {
    let ifname = ifname.to_owned();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = ns.spawn(move || async move {
        const ETH_P_ARP: u16 = 0x0806;
        // SAFETY: plain socket(2), checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM,
                i32::from(ETH_P_ARP.to_be()),
            )
        };
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh descriptor owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(ifname).expect("ifname");
        // SAFETY: a valid C string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(index > 0, "no such interface");
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ARP.to_be();
        sll.sll_ifindex = index as i32;
        // SAFETY: sll outlives the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: tv outlives the call.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        ready_tx.send(()).expect("ready");
        let mut seen = Vec::new();
        let end = Instant::now() + limit;
        let mut buf = [0u8; 128];
        while Instant::now() < end {
            // SAFETY: buf is writable for its length.
            let len = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if len < 28 {
                continue;
            }
            let f = &buf[..len as usize];
            let spa = Ipv4Addr::new(f[14], f[15], f[16], f[17]);
            let tpa = Ipv4Addr::new(f[24], f[25], f[26], f[27]);
            if spa != ip {
                continue;
            }
            let mut sha = [0u8; 6];
            sha.copy_from_slice(&f[8..14]);
            seen.push((u16::from_be_bytes([f[6], f[7]]), sha, spa, tpa));
            if seen.iter().any(|s| s.0 == 1) && seen.iter().any(|s| s.0 == 2) {
                break;
            }
        }
        seen
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener ready");
    h
}

fn mac_of(ns: &Netns, ifname: &str) -> [u8; 6] {
    let out = ns.ip_out(&format!("-o link show {ifname}"));
    let hex = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("a MAC address");
    let mut mac = [0u8; 6];
    for (i, b) in hex.split(':').enumerate() {
        mac[i] = u8::from_str_radix(b, 16).expect("hex");
    }
    mac
}

/// How many times `addr` is on `ifname`.
fn count(ns: &Netns, ifname: &str, addr: &str) -> usize {
    ns.ip_out(&format!("-o addr show dev {ifname}"))
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == addr))
        .count()
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn add_announce_monitor_and_remove_a_managed_address() {
    crate::support::require_root();
    let a = Netns::new("ipa");
    let b = Netns::new("ipb");
    veth(&a, "lan", "10.207.1.1/24", &b, "lan", "10.207.1.2/24");
    let vip = Ipv4Addr::new(10, 207, 1, 100);
    let listener = listen_arp(&b, "lan", vip, Duration::from_secs(10));

    let a_ns = a.name.clone();
    let steps = a.spawn(move || async move {
        let ip = |args: &str| crate::support::ip(&format!("-n {a_ns} {args}"));
        let ns = Netns { name: a_ns.clone() };
        let mut d = IpDriver::new(managed("10.207.1.100/24"));
        d.start().await.expect("start");
        assert_eq!(count(&ns, "lan", "10.207.1.100/24"), 1);
        // Idempotent: a second start changes nothing.
        d.start().await.expect("start again");
        assert_eq!(count(&ns, "lan", "10.207.1.100/24"), 1);
        assert_eq!(d.check().await, ResourceHealth::Healthy);

        // Someone removes it behind our back: the monitor notices.
        ip("addr del 10.207.1.100/24 dev lan");
        match d.check().await {
            ResourceHealth::Unhealthy(m) => {
                assert!(m.contains("no longer on any interface"), "{m}")
            }
            h => panic!("expected unhealthy, got {h:?}"),
        }
        d.start().await.expect("start re-adds");
        assert_eq!(d.check().await, ResourceHealth::Healthy);

        // Its interface goes down: unhealthy, the group should move.
        ip("link set lan down");
        match d.check().await {
            ResourceHealth::Unhealthy(m) => {
                assert!(m.contains("interface lan of 10.207.1.100 is down"), "{m}")
            }
            h => panic!("expected unhealthy, got {h:?}"),
        }
        ip("link set lan up");

        d.stop().await.expect("stop");
        assert_eq!(count(&ns, "lan", "10.207.1.100/24"), 0);
        d.stop().await.expect("stop again");
        assert!(!d.check().await.is_healthy());

        // Without the line's prefix there is no subnet to find the interface.
        let err = IpDriver::new(managed("10.207.1.101/32"))
            .start()
            .await
            .expect_err("/32");
        assert!(
            err.is_permanent() && err.to_string().contains("host-length prefix"),
            "{err}"
        );
        // A subnet this node has no interface in.
        let err = IpDriver::new(managed("10.208.9.1/24"))
            .start()
            .await
            .expect_err("no subnet");
        assert!(matches!(err, DriverError::Unavailable(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("no interface on this node has an address in 10.208.9.0/24"),
            "{err}"
        );
        // The namespace guard belongs to the test thread.
        std::mem::forget(ns);
    });
    steps.join().expect("driver steps");

    let seen = listener.join().expect("listener");
    let mac = mac_of(&a, "lan");
    assert!(
        seen.contains(&(1, mac, vip, vip)),
        "no ARP announcement (request) seen: {seen:?}"
    );
    assert!(
        seen.contains(&(2, mac, vip, vip)),
        "no gratuitous ARP reply seen: {seen:?}"
    );
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn addresses_left_by_an_earlier_run_go_unless_their_group_is_placed_here() {
    crate::support::require_root();
    let a = Netns::new("ipc");
    let b = Netns::new("ipd");
    veth(&a, "lan", "10.206.1.1/24", &b, "lan", "10.206.1.2/24");
    let data = tempfile::tempdir().expect("data dir");
    let dir = data.path().to_owned();
    let a_ns = a.name.clone();
    a.spawn(move || async move {
        let ns = Netns { name: a_ns };
        // An earlier agent run added both and left them (--leave-running).
        for addr in ["10.206.1.100/24", "10.206.1.101/24"] {
            IpDriver::new(managed(addr))
                .recorded_in(dir.clone())
                .start()
                .await
                .expect("start");
            assert_eq!(count(&ns, "lan", addr), 1);
        }
        // Only .101's group is placed here now.
        let keep = ["10.206.1.101".parse().expect("ip")].into_iter().collect();
        let removed = asctl::drivers::ip::remove_recorded_except(&dir, &keep).await;
        assert_eq!(removed, vec!["10.206.1.100/24".to_owned()]);
        assert_eq!(count(&ns, "lan", "10.206.1.100/24"), 0);
        assert_eq!(count(&ns, "lan", "10.206.1.101/24"), 1);
        assert!(!dir.join("ips/10.206.1.100_24").exists());
        assert!(dir.join("ips/10.206.1.101_24").exists());
        std::mem::forget(ns);
    })
    .join()
    .expect("driver steps");
}
