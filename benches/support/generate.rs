//! The generated domain both benches validate.

use std::fmt::Write;

/// A valid, warning-free domain of `docs` (+1) documents: per cell of 10
/// documents, one ESX host, two VMs, a physical node, two domain lines and a
/// verification line, a shared disk and two groups.
pub fn generate(docs: usize, per_file: usize) -> Vec<(String, String)> {
    let cells = docs.div_ceil(10);
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut in_file = 0;
    let mut push = |buf: &mut String, doc: String, out: &mut Vec<(String, String)>| {
        if !buf.is_empty() {
            buf.push_str("---\n");
        }
        buf.push_str(&doc);
        in_file += 1;
        if in_file == per_file {
            out.push((format!("gen/{:06}.yaml", out.len()), std::mem::take(buf)));
            in_file = 0;
        }
    };
    push(
        &mut buf,
        "apiVersion: asctl/v1\nkind: Domain\nmetadata:\n  name: bench\nspec:\n  heartbeat: {interval: 250ms, timeout: 1s, multicast: 239.192.0.1}\n  isolation: {addresses: [10.0.0.1], response: offline}\n".into(),
        &mut out,
    );
    for c in 0..cells {
        let (a, b) = (c / 250, c % 250);
        let mut d = String::new();
        let _ = write!(
            d,
            "apiVersion: asctl/v1\nkind: Host\nmetadata:\n  name: esx{c}\nspec:\n  hypervisor: {{product: esx, version: \"4.0\"}}\n  datacenter: dc{}\n  nics: 4\n",
            c % 4
        );
        push(&mut buf, d, &mut out);
        for n in 0..3 {
            let placement = if n < 2 {
                format!("host: esx{c}")
            } else {
                "physical: true".into()
            };
            let d = format!(
                "apiVersion: asctl/v1\nkind: Node\nmetadata:\n  name: n{c}-{n}\n  labels: {{cell: \"{c}\"}}\nspec:\n  {placement}\n  os: {{name: windows-2008, bits: 64}}\n  platform: x64\n  nics: 3\n  scsiControllers: 2\n  agent: {{address: \"10.{a}.{b}.{n}:7400\"}}\n"
            );
            push(&mut buf, d, &mut out);
        }
        for (l, role) in [(0, "domain"), (1, "domain"), (2, "verification")] {
            // Second octet: one range of 30 per line, `a` below 30 up to 75k cells.
            let o = l * 30 + a;
            let d = format!(
                "apiVersion: asctl/v1\nkind: NetworkLine\nmetadata:\n  name: line{c}-{l}\nspec:\n  role: {role}\n  subnet: 10.{o}.{b}.0/24\n  members:\n    n{c}-0: 10.{o}.{b}.10\n    n{c}-1: 10.{o}.{b}.11\n    n{c}-2: 10.{o}.{b}.12\n"
            );
            push(&mut buf, d, &mut out);
        }
        let d = format!(
            "apiVersion: asctl/v1\nkind: DataSource\nmetadata:\n  name: disk{c}\nspec:\n  type: sharedDisk\n  device: {{backing: rdm-physical, scsiBusSharing: physical, path: /dev/sdb}}\n"
        );
        push(&mut buf, d, &mut out);
        let d = format!(
            "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: sql{c}\nspec:\n  preferredNodes: [n{c}-0, n{c}-2]\n  dataSources: [disk{c}]\n  ipAddresses:\n    - {{address: 10.{a}.{b}.100/24, line: line{c}-0}}\n  module: {{type: sql-server-2008}}\n  restart: {{limit: 3, window: 15m}}\n"
        );
        push(&mut buf, d, &mut out);
        let d = format!(
            "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: web{c}\nspec:\n  preferredNodes: [n{c}-2, n{c}-1]\n  failback: auto\n  processes:\n    - name: server\n      command: [/usr/bin/web, --port, \"8080\"]\n      env: {{MODE: prod}}\n      monitor: {{interval: 5s, timeout: 1s, probe: {{tcp: \"127.0.0.1:8080\"}}}}\n"
        );
        push(&mut buf, d, &mut out);
    }
    if !buf.is_empty() {
        out.push((format!("gen/{:06}.yaml", out.len()), buf));
    }
    out
}
