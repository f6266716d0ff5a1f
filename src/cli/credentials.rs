//! `asctl credentials CONFIG --out DIR`: the API token, a CA and one
//! certificate per member of a domain, and the `domain.json` the CLI reads.
//!
//! `asctl up` writes the same files for its loopback domains (it calls
//! [`write`]); this command is for domains whose agents run elsewhere —
//! machines, or the network namespaces of `scripts/netns-domain.sh` — so
//! that nobody has to get `openssl` options right for rustls. The output
//! directory is also a state directory for the CLI (`--state-dir DIR` or
//! `ASCTL_STATE_DIR=DIR`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use asctl::agent::server::auth::generate_token;
use asctl::agent::server::tls::{generate_local_ca, write_file};
use asctl::domain::WITNESS;
use asctl::model::Config;
use clap::Args;

use super::plan::load_desired;
use super::remote::{STATE_FILE, StateFile};
use super::{EXIT_FINDINGS, EXIT_OK};

#[derive(Debug, Args)]
#[command(
    after_help = "Writes DIR/token, DIR/tls/ca.crt, DIR/tls/<member>.{crt,key} and \
DIR/domain.json. Copy the token, ca.crt and each member's certificate and key to its machine \
(see docs/runtime.md). Existing files are kept unless --force, so that running it again \
does not lock out running agents."
)]
pub struct CredentialsArgs {
    /// The domain's configuration (a file or directory): its nodes' agent
    /// addresses and its witness are the members.
    #[arg(value_name = "CONFIG")]
    pub config: String,
    /// Where to write the credentials.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace an existing token and certificates.
    #[arg(long)]
    pub force: bool,
}

/// One member of the domain: its name and agent address (`host:port`).
pub struct Member {
    pub name: String,
    pub addr: String,
    pub host: String,
}

/// The members of `config`: every node with an agent address, and the
/// witness. A node without an agent address is an error: nothing could
/// reach it.
pub fn members(config: &Config) -> anyhow::Result<Vec<Member>> {
    let mut out = Vec::new();
    for n in &config.nodes {
        let Some(a) = &n.spec.agent else {
            bail!(
                "node {} has no agent address (spec.agent.address); every node needs one",
                n.name()
            );
        };
        out.push(Member {
            name: n.name().to_string(),
            addr: a.address.to_string(),
            host: a.address.host.clone(),
        });
    }
    if let Some(w) = config.domain.as_ref().and_then(|d| d.spec.witness.as_ref()) {
        out.push(Member {
            name: WITNESS.into(),
            addr: w.to_string(),
            host: w.host.clone(),
        });
    }
    Ok(out)
}

/// Token, CA and member certificates (valid for loopback and every member's
/// host), and `domain.json`, in `dir`. Unless `force`, an existing token is
/// kept, and so are certificates when every member has one.
pub fn write(dir: &Path, domain: &str, members: &[Member], force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let token_file = dir.join("token");
    if force || !token_file.exists() {
        let token = generate_token().context("generating a token")?;
        write_file(&token_file, format!("{token}\n").as_bytes(), true)?;
    }
    let tls_dir = dir.join("tls");
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let have_all = tls_dir.join("ca.crt").exists()
        && names
            .iter()
            .all(|n| tls_dir.join(format!("{n}.crt")).exists());
    if force || !have_all {
        let mut hosts: Vec<String> = Vec::new();
        for m in members {
            if !hosts.contains(&m.host) {
                hosts.push(m.host.clone());
            }
        }
        generate_local_ca(&tls_dir, &names, &hosts)?;
    }
    let file = StateFile {
        domain: domain.to_owned(),
        endpoints: members.iter().map(|m| m.addr.clone()).collect(),
        ca: PathBuf::from("tls/ca.crt"),
        token_file: PathBuf::from("token"),
    };
    std::fs::write(dir.join(STATE_FILE), serde_json::to_string_pretty(&file)?)?;
    Ok(())
}

pub fn run(args: CredentialsArgs) -> anyhow::Result<ExitCode> {
    let Some(config) = load_desired(&args.config)? else {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    };
    let domain = config
        .domain
        .as_ref()
        .map(|d| d.name().to_string())
        .context("the configuration has no Domain")?;
    let members = members(&config)?;
    write(&args.out, &domain, &members, args.force)?;
    println!("Credentials for domain {domain} in {}:", args.out.display());
    println!("  token            the API token (every member and the CLI)");
    println!("  tls/ca.crt       the CA every member's certificate chains to");
    for m in &members {
        println!(
            "  tls/{n}.crt/.key  {n}'s certificate and key (agent at {a})",
            n = m.name,
            a = m.addr
        );
    }
    println!(
        "  domain.json      for the CLI: asctl status --state-dir {}",
        args.out.display()
    );
    Ok(ExitCode::from(EXIT_OK))
}
