//! Managed IP addresses: added to and removed from an interface with netlink
//! (`rtnetlink`), announced with gratuitous ARP, and checked to still be
//! there.
//!
//! **Which interface.** The address goes on the interface that already holds
//! an address inside the managed address's own network (`10.1.0.100/24` goes
//! where some `10.1.0.x/24` is), i.e. the interface of the line the group
//! names. The managed address must therefore carry the line's prefix length,
//! not `/32`: with `/32` there is no subnet to find the interface by, and the
//! driver says so. When several interfaces qualify, the lowest index wins and
//! a warning names them.
//!
//! **Announcement.** After adding an IPv4 address (and again on a start that
//! finds it present: a failover back may leave stale ARP caches behind) the
//! driver sends two gratuitous ARP frames on the interface from an
//! `AF_PACKET` datagram socket, the kernel adding the Ethernet header: an
//! ARP request and an ARP reply, both with sender = target = the managed
//! address and our MAC (RFC 5227 announcement; the reply form is what some
//! older switches and hosts only honour). No `arping` binary is needed. IPv6
//! addresses get no unsolicited neighbour advertisement from asctl; set
//! `net.ipv6.conf.<if>.ndisc_notify=1` to have the kernel send one.
//!
//! **Monitor.** `check` looks the address up in the kernel's table (one
//! netlink dump) and reports it unhealthy when it is gone (someone ran
//! `ip addr del`, DAD failed) or when its interface is down: on a node whose
//! line interface is down the address is unreachable, so the group should
//! move.
//!
//! **Records for the lease guard.** Before adding an address the driver
//! writes it to `<data_dir>/ips/` (and deletes the record after removing
//! the address), so that the node's lease guard (`crate::agent::failover::guard`) can
//! remove every managed address of a node whose agent was killed or frozen
//! without asking the agent ([`remove_recorded`]).
//!
//! All of it needs `CAP_NET_ADMIN` (and `CAP_NET_RAW` for ARP); without it
//! the driver fails permanently so the group moves to a node that can.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType};
use tracing::{info, warn};

use crate::model::ManagedIp;

use super::{DriverError, ResourceHealth};

#[derive(Debug)]
pub struct IpDriver {
    ip: ManagedIp,
    /// The agent's data directory, where the address is recorded for the
    /// lease guard before it is added; `None` records nothing.
    record_in: Option<PathBuf>,
}

impl IpDriver {
    pub fn new(ip: ManagedIp) -> Self {
        IpDriver {
            ip,
            record_in: None,
        }
    }

    /// Records the address under `<data_dir>/ips/` while it may be present,
    /// for the lease guard.
    pub fn recorded_in(mut self, data_dir: PathBuf) -> Self {
        self.record_in = Some(data_dir);
        self
    }

    pub fn label(&self) -> String {
        format!("ip {}", self.ip.address)
    }

    /// Adds the address (if absent) and announces it.
    pub async fn start(&mut self) -> Result<(), DriverError> {
        let nl = Netlink::open()?;
        let addr = self.ip.address.addr();
        let prefix = self.ip.address.0.prefix_len();
        let table = nl.addresses().await?;
        let index = match table.iter().find(|a| a.ip == addr) {
            Some(present) => present.index,
            None => {
                let index = self.interface(&table)?;
                // Recorded first: if the agent dies right after the add, the
                // guard must still know the address is ours to remove.
                if let Some(dir) = &self.record_in {
                    write_record(dir, &self.ip.address.to_string())?;
                }
                match nl.handle.address().add(index, addr, prefix).execute().await {
                    Ok(()) => {}
                    // Added meanwhile (another reconcile pass): that is the goal.
                    Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                    Err(e) => return Err(netlink_error(&format!("cannot add {addr}"), e)),
                }
                index
            }
        };
        let link = nl.link(index).await?;
        info!(address = %self.ip.address, interface = %link.name, line = %self.ip.line, "managed address present");
        if let (IpAddr::V4(v4), Some(mac)) = (addr, link.mac) {
            if let Err(e) = announce(index, mac, v4) {
                // The address is in place; a missed announcement only delays
                // clients whose ARP cache still points at the old holder.
                warn!(address = %addr, interface = %link.name, "gratuitous ARP not sent: {e}");
            }
        }
        Ok(())
    }

    /// Removes the address wherever it is. Absent is success.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        let nl = Netlink::open()?;
        let addr = self.ip.address.addr();
        for a in nl.addresses().await?.into_iter().filter(|a| a.ip == addr) {
            match nl.handle.address().del(a.message).execute().await {
                Ok(()) => info!(address = %addr, "managed address removed"),
                Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => {}
                Err(e) => return Err(netlink_error(&format!("cannot remove {addr}"), e)),
            }
        }
        if let Some(dir) = &self.record_in {
            remove_record(dir, &self.ip.address.to_string())?;
        }
        Ok(())
    }

    pub async fn check(&mut self) -> ResourceHealth {
        let addr = self.ip.address.addr();
        let probe = async {
            let nl = Netlink::open()?;
            let table = nl.addresses().await?;
            let Some(a) = table.iter().find(|a| a.ip == addr) else {
                return Ok(ResourceHealth::Unhealthy(format!(
                    "{addr} is no longer on any interface"
                )));
            };
            let link = nl.link(a.index).await?;
            Ok::<_, DriverError>(if link.up {
                ResourceHealth::Healthy
            } else {
                ResourceHealth::Unhealthy(format!("interface {} of {addr} is down", link.name))
            })
        };
        probe
            .await
            .unwrap_or_else(|e| ResourceHealth::Unhealthy(format!("cannot check {addr}: {e}")))
    }

    /// The interface whose addresses share the managed address's network.
    fn interface(&self, table: &[Addr]) -> Result<u32, DriverError> {
        let net = self.ip.address.0;
        let mut candidates: Vec<u32> = table
            .iter()
            .filter(|a| a.ip != net.addr() && net.contains(&a.ip))
            .map(|a| a.index)
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        match candidates.as_slice() {
            [] if net.prefix_len() == net.max_prefix_len() => {
                Err(DriverError::Unavailable(format!(
                    "cannot place {}: a host-length prefix names no subnet; write the address with line `{}`'s prefix length (e.g. /24)",
                    self.ip.address, self.ip.line
                )))
            }
            [] => Err(DriverError::Unavailable(format!(
                "no interface on this node has an address in {} (line `{}`)",
                net.trunc(),
                self.ip.line
            ))),
            [one] => Ok(*one),
            [first, ..] => {
                warn!(address = %self.ip.address, interfaces = ?candidates, "several interfaces hold the subnet; using the first");
                Ok(*first)
            }
        }
    }
}

fn records_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ips")
}

/// `10.1.0.100/24` is recorded as the file `10.1.0.100_24`.
fn record_path(data_dir: &Path, address: &str) -> PathBuf {
    records_dir(data_dir).join(address.replace('/', "_"))
}

fn write_record(data_dir: &Path, address: &str) -> Result<(), DriverError> {
    let path = record_path(data_dir, address);
    let what = || format!("address record {}", path.display());
    crate::private::create_dir(&records_dir(data_dir)).map_err(|e| DriverError::io(what(), e))?;
    crate::private::create_file(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, address.as_bytes()))
        .map_err(|e| DriverError::io(what(), e))
}

fn remove_record(data_dir: &Path, address: &str) -> Result<(), DriverError> {
    let path = record_path(data_dir, address);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(DriverError::io(
            format!("removing address record {}", path.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// Removes every managed address recorded under `<data_dir>/ips/` from
/// this node's interfaces, and the records: the lease guard's fence.
/// Returns the addresses removed or already absent; errors are logged.
pub async fn remove_recorded(data_dir: &Path) -> Vec<String> {
    remove_recorded_except(data_dir, &BTreeSet::new()).await
}

/// [`remove_recorded`], but for the addresses in `keep`: at agent start, an
/// address an earlier run added (and left, `--leave-running`) for a group
/// that is no longer placed here.
pub async fn remove_recorded_except(data_dir: &Path, keep: &BTreeSet<IpAddr>) -> Vec<String> {
    let addresses: Vec<String> = recorded_addresses(data_dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| {
            a.parse::<ipnet::IpNet>()
                .is_ok_and(|net| !keep.contains(&net.addr()))
        })
        .collect();
    remove_addresses(data_dir, &addresses).await
}

/// The managed addresses on record (`10.1.0.100/24`). An error when the
/// records cannot be read (the data directory's file system failed), as
/// opposed to there being none: the guard then keeps what it read last.
pub fn recorded_addresses(data_dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(records_dir(data_dir)) {
        Ok(d) => d.collect::<io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries {
        let text = match std::fs::read_to_string(e.path()) {
            Ok(t) => t,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        let address = text.trim().to_owned();
        if address.parse::<ipnet::IpNet>().is_err() {
            warn!(record = %e.path().display(), "ignoring an unreadable address record");
            continue;
        }
        out.push(address);
    }
    Ok(out)
}

/// Removes `addresses` (as recorded) from this node's interfaces, and their
/// records. Returns the addresses removed or already absent; errors are
/// logged.
pub async fn remove_addresses(data_dir: &Path, addresses: &[String]) -> Vec<String> {
    let mut done = Vec::new();
    for address in addresses {
        let Ok(net) = address.parse::<ipnet::IpNet>() else {
            continue;
        };
        match remove_address(net.addr()).await {
            Ok(()) => {
                let _ = std::fs::remove_file(record_path(data_dir, address));
                done.push(address.clone());
            }
            Err(err) => warn!(%address, "cannot remove: {err}"),
        }
    }
    done
}

async fn remove_address(addr: IpAddr) -> Result<(), DriverError> {
    let nl = Netlink::open()?;
    for a in nl.addresses().await?.into_iter().filter(|a| a.ip == addr) {
        match nl.handle.address().del(a.message).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => {}
            Err(e) => return Err(netlink_error(&format!("cannot remove {addr}"), e)),
        }
    }
    Ok(())
}

/// One address of the kernel's table.
struct Addr {
    index: u32,
    ip: IpAddr,
    message: AddressMessage,
}

struct Link {
    name: String,
    mac: Option<[u8; 6]>,
    up: bool,
}

/// A netlink connection for one operation; its task ends with it.
struct Netlink {
    handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Netlink {
    fn open() -> Result<Self, DriverError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| DriverError::io("netlink socket", e))?;
        Ok(Netlink {
            handle,
            task: tokio::spawn(conn),
        })
    }

    async fn addresses(&self) -> Result<Vec<Addr>, DriverError> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| netlink_error("cannot list addresses", e))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| {
                // IPv4 reports the interface's own address as Local (Address
                // is the peer on point-to-point links); IPv6 only as Address.
                let local = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let ip = local.or_else(|| {
                    m.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                })?;
                Some(Addr {
                    index: m.header.index,
                    ip,
                    message: m,
                })
            })
            .collect())
    }

    async fn link(&self, index: u32) -> Result<Link, DriverError> {
        let messages: Vec<_> = self
            .handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| netlink_error(&format!("cannot read interface {index}"), e))?;
        let m = messages
            .into_iter()
            .next()
            .ok_or_else(|| DriverError::Failed(format!("interface {index} vanished")))?;
        let mut link = Link {
            name: index.to_string(),
            mac: None,
            up: m.header.flags.contains(LinkFlags::Up)
                && m.header.flags.contains(LinkFlags::Running),
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(b) if m.header.link_layer_type == LinkLayerType::Ether => {
                    link.mac = <[u8; 6]>::try_from(b.as_slice()).ok();
                }
                _ => {}
            }
        }
        Ok(link)
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

fn netlink_error(what: &str, e: rtnetlink::Error) -> DriverError {
    if errno(&e) == Some(libc::EPERM) {
        DriverError::Unavailable(format!(
            "{what}: not permitted (managed addresses need CAP_NET_ADMIN)"
        ))
    } else {
        DriverError::Failed(format!("{what}: {e}"))
    }
}

const ETH_P_ARP: u16 = 0x0806;

/// An ARP packet announcing `ip` at `mac`: `oper` 1 (request) or 2 (reply).
pub fn arp_announcement(oper: u16, mac: [u8; 6], ip: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&oper.to_be_bytes());
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip.octets());
    if oper == 2 {
        p[18..24].copy_from_slice(&mac);
    }
    p[24..28].copy_from_slice(&ip.octets());
    p
}

/// Sends the gratuitous ARP request and reply, broadcast on `ifindex`.
fn announce(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    // SAFETY: plain socket(2); the result is checked before use and owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ARP.to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ARP.to_be();
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    for oper in [1u16, 2] {
        let frame = arp_announcement(oper, mac, ip);
        // SAFETY: frame and sll outlive the call; lengths are their sizes.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_records_are_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().unwrap();
        write_record(data.path(), "10.1.0.100/24").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&records_dir(data.path())), 0o700);
        assert_eq!(mode(&record_path(data.path(), "10.1.0.100/24")), 0o600);
    }

    #[test]
    fn announcement_layout() {
        let mac = [2, 0, 0, 0, 0, 1];
        let ip = Ipv4Addr::new(10, 1, 0, 100);
        let req = arp_announcement(1, mac, ip);
        assert_eq!(&req[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&req[8..14], &mac);
        assert_eq!(&req[14..18], &[10, 1, 0, 100]);
        assert_eq!(&req[18..24], &[0; 6]);
        assert_eq!(&req[24..28], &[10, 1, 0, 100]);
        let rep = arp_announcement(2, mac, ip);
        assert_eq!(&rep[6..8], &[0, 2]);
        assert_eq!(&rep[18..24], &mac);
    }
}
