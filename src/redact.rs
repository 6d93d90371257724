//! Secrets kept out of what the crate prints: passwords in URLs.

/// A URL with any password replaced (`https://user:***@host`).
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("postgres://llm:s3cret@db.example.com:5432/usage?sslmode=verify-full"),
            "postgres://llm:***@db.example.com:5432/usage?sslmode=verify-full"
        );
        assert_eq!(redact_url("https://host/path@x"), "https://host/path@x");
        assert_eq!(redact_url("no scheme"), "no scheme");
    }
}
