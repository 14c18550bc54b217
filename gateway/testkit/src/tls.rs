//! A throw-away PKI for TLS tests: a CA, a server certificate for `localhost`
//! and `127.0.0.1`, and a client certificate, all generated at test time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM material of a test PKI.
pub struct TestPki {
    /// The CA certificate (trust anchor for both sides).
    pub ca_cert_pem: String,
    /// Server certificate (SANs `localhost`, `127.0.0.1`).
    pub server_cert_pem: String,
    /// Server private key.
    pub server_key_pem: String,
    /// Client certificate (CN `ehr-gateway-test`).
    pub client_cert_pem: String,
    /// Client private key.
    pub client_key_pem: String,
}

/// File paths written by [`TestPki::write_to`].
pub struct PkiFiles {
    /// CA certificate.
    pub ca_cert: PathBuf,
    /// Client certificate.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
}

impl TestPki {
    /// Generates a fresh CA, server and client certificate.
    pub fn generate() -> TestPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ehr-gateway test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server cert");

        let client_key = KeyPair::generate().expect("client key");
        let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "ehr-gateway-test");
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .expect("client cert");
        TestPki {
            ca_cert_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// Writes the CA and the client material to files in `dir`.
    pub fn write_to(&self, dir: &Path) -> PkiFiles {
        let files = PkiFiles {
            ca_cert: dir.join("ca.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        };
        std::fs::write(&files.ca_cert, &self.ca_cert_pem).expect("write CA");
        std::fs::write(&files.client_cert, &self.client_cert_pem).expect("write cert");
        std::fs::write(&files.client_key, &self.client_key_pem).expect("write key");
        files
    }

    /// A rustls server configuration; with `require_client_cert`, clients must
    /// present a certificate issued by the CA.
    pub fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = rustls_pemfile::certs(&mut self.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("server cert pem");
        let key = rustls_pemfile::private_key(&mut self.server_key_pem.as_bytes())
            .expect("server key pem")
            .expect("a server key");
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for ca in rustls_pemfile::certs(&mut self.ca_cert_pem.as_bytes()) {
                roots.add(ca.expect("CA pem")).expect("add CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
