//! A PostgreSQL connection string with libpq's TLS parameters: `sslmode` (`disable`,
//! `prefer` (the default), `require`, `verify-ca`, `verify-full`), `sslrootcert`, `sslcert` and
//! `sslkey`, in a URL's query (`postgres://…?sslmode=verify-full&sslrootcert=ca.pem`) or a
//! key-value string (`host=db sslmode=require`). TLS is rustls.
//!
//! As with libpq, `prefer` and `require` encrypt without checking the server's certificate
//! unless `sslrootcert` is given (then the chain is checked, as `verify-ca` does);
//! `verify-ca` checks the chain, `verify-full` the chain and the host name. Without
//! `sslrootcert` (or with `sslrootcert=system`) the web PKI roots are trusted.

use std::path::PathBuf;

use postgres::config::SslMode;
use postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::redact::redact_url;
use crate::tls::{self, Verify};

use super::StoreError;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A connection string split into what `postgres` parses and the TLS parameters it does not.
#[derive(Debug)]
struct Target {
    /// The connection string without the TLS parameters.
    rest: String,
    mode: Mode,
    root_cert: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

fn bad(why: String) -> StoreError {
    StoreError::Tls(why)
}

fn split(url: &str) -> Result<Target, StoreError> {
    let mut t = Target {
        rest: String::new(),
        mode: Mode::Prefer,
        root_cert: None,
        client_cert: None,
        client_key: None,
    };
    let mut take = |key: &str, value: &str| -> Result<bool, StoreError> {
        match key {
            "sslmode" => {
                t.mode = match value {
                    "disable" => Mode::Disable,
                    // `allow` tries plain text first; here it is `prefer`.
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(bad(format!(
                            "sslmode={other:?} is not one of disable, prefer, require, \
                             verify-ca, verify-full"
                        )))
                    }
                };
            }
            "sslrootcert" if value != "system" => t.root_cert = Some(value.into()),
            "sslrootcert" => {}
            "sslcert" => t.client_cert = Some(value.into()),
            "sslkey" => t.client_key = Some(value.into()),
            _ => return Ok(false),
        }
        Ok(true)
    };
    if url.contains("://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value = crate::percent::decode(v)
                .ok_or_else(|| bad(format!("the value of {k} is not valid URL-encoded text")))?;
            if !take(k, &value)? {
                kept.push(pair);
            }
        }
        t.rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
    } else {
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(k, v.trim_matches('\''))? {
                kept.push(pair);
            }
        }
        t.rest = kept.join(" ");
    }
    Ok(t)
}

/// Connects to `url` as libpq would with its TLS parameters. Errors never show the password.
pub(super) fn connect(url: &str) -> Result<Client, StoreError> {
    let target = split(url)?;
    let mut config: postgres::Config = target
        .rest
        .parse()
        .map_err(|e| bad(format!("cannot parse {}: {e}", redact_url(&target.rest))))?;
    if config.get_application_name().is_none() {
        config.application_name("tracing-llm-usage");
    }
    if target.mode == Mode::Disable {
        config.ssl_mode(SslMode::Disable);
        return Ok(config.connect(postgres::NoTls)?);
    }
    config.ssl_mode(if target.mode == Mode::Prefer {
        SslMode::Prefer
    } else {
        SslMode::Require
    });
    let roots = match &target.root_cert {
        Some(path) => tls::certificates(path, "sslrootcert").map_err(bad)?,
        None => Vec::new(),
    };
    let verify = match target.mode {
        Mode::VerifyFull => Verify::Full,
        Mode::VerifyCa => Verify::ChainOnly,
        _ if target.root_cert.is_some() => Verify::ChainOnly,
        _ => Verify::Nothing,
    };
    let identity = match (&target.client_cert, &target.client_key) {
        (Some(c), Some(k)) => Some((
            tls::certificates(c, "sslcert").map_err(bad)?,
            tls::private_key(k, "sslkey").map_err(bad)?,
        )),
        (None, None) => None,
        _ => {
            return Err(bad(
                "sslcert and sslkey go together: give both or neither".into()
            ))
        }
    };
    let tls_config =
        tls::client_config(&roots, target.root_cert.is_none(), identity, verify).map_err(bad)?;
    Ok(config.connect(MakeRustlsConnect::new(tls_config))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_urls_and_key_value_strings() {
        let t = split(
            "postgres://llm:pw@db:5432/usage?application_name=x&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca.pem&sslcert=c.pem&sslkey=k.pem",
        )
        .unwrap();
        assert_eq!(t.rest, "postgres://llm:pw@db:5432/usage?application_name=x");
        assert_eq!(t.mode, Mode::VerifyFull);
        assert_eq!(t.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(t.client_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(t.client_key, Some(PathBuf::from("k.pem")));

        let t = split("host=db user=llm sslmode=require sslrootcert=system").unwrap();
        assert_eq!(t.rest, "host=db user=llm");
        assert_eq!((t.mode, t.root_cert), (Mode::Require, None));

        let t = split("postgres://db/usage").unwrap();
        assert_eq!(
            (t.rest.as_str(), t.mode),
            ("postgres://db/usage", Mode::Prefer)
        );

        let err = split("postgres://u:secret@db/x?sslmode=paranoid").unwrap_err();
        assert!(err.to_string().contains("paranoid") && !err.to_string().contains("secret"));
    }
}
