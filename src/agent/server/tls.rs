//! TLS for the control API: rustls with the ring provider, certificates
//! from PEM files, and a small CA for local domains (`asctl up`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}: no certificate in this PEM file")]
    NoCertificate { path: String },
    #[error("TLS setup: {0}")]
    Rustls(rustls::Error),
    #[error("generating certificates: {0}")]
    Generate(rcgen::Error),
}

// Not `#[from]`: the message already holds the cause's text, and a `source`
// would make a printed chain (`{:#}`) say it again.
impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        TlsError::Rustls(e)
    }
}

impl From<rcgen::Error> for TlsError {
    fn from(e: rcgen::Error) -> TlsError {
        TlsError::Generate(e)
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Makes ring the process's crypto provider. The build carries only ring
/// (not aws-lc), so this must run before any TLS configuration is built;
/// calling it twice is harmless.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client configuration trusting only the CA in `ca_pem`.
pub fn client_config(ca: &Path) -> Result<rustls::ClientConfig, TlsError> {
    install_provider();
    let mut roots = rustls::RootCertStore::empty();
    let mut any = false;
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| file_err(ca, e))? {
        let cert = cert.map_err(|e| file_err(ca, e))?;
        roots.add(cert)?;
        any = true;
    }
    if !any {
        return Err(TlsError::NoCertificate {
            path: ca.display().to_string(),
        });
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The server configuration of an agent.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    install_provider();
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.display().to_string(),
        });
    }
    let key_der =
        rustls::pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Files written by [`generate_local_ca`].
#[derive(Debug, Clone)]
pub struct LocalCerts {
    pub ca: PathBuf,
    /// Per member name: (certificate, key).
    pub members: Vec<(String, PathBuf, PathBuf)>,
}

/// A CA and one certificate per member, valid for loopback (`127.0.0.1`,
/// `::1`, `localhost`) and `hosts`, written to `dir` (keys mode 0600). For
/// local domains only: the CA key stays next to the certificates.
pub fn generate_local_ca(
    dir: &Path,
    members: &[String],
    hosts: &[String],
) -> Result<LocalCerts, TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "asctl local domain CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let ca_path = dir.join("ca.crt");
    write_file(&ca_path, ca.pem().as_bytes(), false)?;
    let mut sans: Vec<String> = vec!["127.0.0.1".into(), "::1".into(), "localhost".into()];
    for h in hosts {
        if !sans.contains(h) {
            sans.push(h.clone());
        }
    }
    let mut out = Vec::new();
    for name in members {
        let mut p = CertificateParams::new(sans.clone())?;
        p.distinguished_name.push(DnType::CommonName, name.as_str());
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &ca)?;
        let crt = dir.join(format!("{name}.crt"));
        let keyp = dir.join(format!("{name}.key"));
        write_file(&crt, cert.pem().as_bytes(), false)?;
        write_file(&keyp, key.serialize_pem().as_bytes(), true)?;
        out.push((name.clone(), crt, keyp));
    }
    Ok(LocalCerts {
        ca: ca_path,
        members: out,
    })
}

/// Writes `bytes`, private to the user when `secret`.
pub fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if secret {
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| file_err(path, e))?;
    f.write_all(bytes).map_err(|e| file_err(path, e))
}
