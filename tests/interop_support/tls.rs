//! Certificates made at test time with the openssl CLI: a CA, a server certificate it
//! signed for `localhost` and 127.0.0.1, and an unrelated CA for the wrong-CA test.
//! EC P-256 keys: made in milliseconds, accepted by all three servers and by rustls.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The files of one test's PKI, in its temporary directory.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA that signed the server certificate (`--ca-file`).
    pub ca: PathBuf,
    /// The server certificate (leaf), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// A CA that signed nothing the server presents.
    pub wrong_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (tests/interop/setup.sh installs it): {e}"));
    assert!(out.status.success(), "openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn make_ca(dir: &Path, name: &str, cn: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

impl Pki {
    /// Makes a CA, a server certificate for `localhost`/127.0.0.1 and a second CA in `dir`.
    pub fn create(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("create the PKI dir");
        make_ca(dir, "ca", "ftpmonitor interop test CA");
        make_ca(dir, "wrong-ca", "some other CA");
        openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"]);
        // the servers read the key as root, but PKCS#8 is what all of them parse
        openssl(dir, &["pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "server.pkcs8.key"]);
        openssl(dir, &["req", "-new", "-key", "server.pkcs8.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the extension file");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.pkcs8.key"),
            wrong_ca: dir.join("wrong-ca.pem"),
        }
    }
}
