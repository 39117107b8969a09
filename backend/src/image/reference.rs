//! Image references as the docker CLI writes them, and their familiar form.

/// A parsed reference: registry host, repository path, tag or digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, thiserror::Error)]
#[error("invalid reference format: {0}")]
pub struct BadReference(pub String);

/// The longest name Docker accepts (its reference grammar's NameTotalLengthMax).
const MAX_NAME: usize = 255;

/// A path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or dashes.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// A registry host: dot-separated labels of letters, digits and inner
/// dashes (or a bracketed IPv6 address), then an optional `:port`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !d.ends_with(']') => (h, Some(p)),
        _ => (d, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit())) {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|x| x.is_ascii_alphanumeric() || b"_.-".contains(x))
}

impl ImageRef {
    /// Parses "alpine", "nginx:alpine", "localhost:5000/x/y:1", "a@sha256:…".
    pub fn parse(s: &str) -> Result<Self, BadReference> {
        let bad = || BadReference(s.to_string());
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(bad());
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d))
                if d.len() == 71
                    && d.strip_prefix("sha256:").is_some_and(|h| h.bytes().all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))) =>
            {
                (n, Some(d.to_string()))
            }
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (path, tag) = match name[slash..].rfind(':') {
            Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_string())),
            None => (name, None),
        };
        if path.is_empty() || path.len() > MAX_NAME || tag.as_deref().is_some_and(|t| !valid_tag(t)) {
            return Err(bad());
        }
        let (registry, repository) = match path.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), path.to_string()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') { format!("library/{repository}") } else { repository };
        if !valid_domain(&registry) || !repository.split('/').all(valid_component) {
            return Err(bad());
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(ImageRef { registry, repository, tag, digest })
    }

    /// "alpine" for docker.io/library/alpine, "localhost:5000/x" otherwise.
    pub fn familiar_repo(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository.strip_prefix("library/").unwrap_or(&self.repository).to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// "alpine:latest" (tag form) — what `docker images` lists.
    pub fn familiar_tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.familiar_repo()))
    }
}

/// The familiar form of any reference string, for lookups; unparsable input
/// is returned as it is.
pub fn familiar(s: &str) -> String {
    match ImageRef::parse(s) {
        Ok(r) => match (&r.digest, r.familiar_tagged()) {
            (Some(d), _) => format!("{}@{d}", r.familiar_repo()),
            (None, Some(t)) => t,
            (None, None) => r.familiar_repo(),
        },
        Err(_) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_docker_hub_library_images_with_latest() {
        let r = ImageRef::parse("alpine").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("docker.io", "library/alpine", Some("latest")));
        assert_eq!(familiar("docker.io/library/nginx:alpine"), "nginx:alpine");
        assert_eq!(familiar("nginx:alpine"), "nginx:alpine");
    }

    #[test]
    fn registries_with_ports_are_not_mistaken_for_tags() {
        let r = ImageRef::parse("localhost:5000/library/alpine").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("localhost:5000", "library/alpine", Some("latest")));
        assert_eq!(familiar("localhost:5000/x:1"), "localhost:5000/x:1");
    }

    #[test]
    fn digests_and_bad_references() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("alpine@{d}")).unwrap();
        assert_eq!((r.tag, r.digest), (None, Some(d)));
        for bad in ["", "Alpine", "alpine:", "a b", "alpine@sha256:12"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_grammar_refuses_what_docker_refuses() {
        let upper_digest = format!("alpine@sha256:{}", "A".repeat(64));
        let long = "a".repeat(256);
        for bad in [
            "a//b",
            "a/",
            "/a",
            "a..b",
            "a-",
            "-a",
            "a:-tag",
            "a:t@g",
            "local host/x",
            "reg.io:/x",
            "reg.io:5x/x",
            "-reg.io/x",
            &upper_digest,
            &long,
            "a:é",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
        for good in ["a__b", "a---b", "a.b_c-d", "my-reg.io:5000/team/app:v1.0_rc-2", "[::1]:5000/x", "localhost/x"] {
            assert!(ImageRef::parse(good).is_ok(), "{good}");
        }
    }

    use proptest::prelude::*;

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}"
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary strings never panic the parser, and an accepted one
        /// parses again, the same, from its familiar form.
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,80}|[a-z0-9:/@._-]{0,40}") {
            if let Ok(r) = ImageRef::parse(&s) {
                prop_assert_eq!(ImageRef::parse(&familiar(&s)).ok(), Some(familiar_of(r)));
            }
        }

        /// Valid references round-trip: their parts come back, and the
        /// familiar form parses to the same reference.
        #[test]
        fn valid_references_round_trip(
            domain in proptest::option::of(prop_oneof![Just("localhost:5000".to_string()), Just("reg.example.com".to_string()), "[a-z]{1,5}\\.[a-z]{2,3}(:[0-9]{1,5})?"]),
            path in proptest::collection::vec(component(), 1..4),
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in proptest::option::of("[a-f0-9]{64}"),
        ) {
            // A first component with a dot would be read as a registry host.
            prop_assume!(domain.is_some() || !path[0].contains('.'));
            let path = path.join("/");
            let mut s = match &domain { Some(d) => format!("{d}/{path}"), None => path.clone() };
            if let Some(t) = &tag { s = format!("{s}:{t}"); }
            if let Some(d) = &digest { s = format!("{s}@sha256:{d}"); }
            let r = ImageRef::parse(&s).unwrap();
            let want_repo = if domain.is_none() && !path.contains('/') { format!("library/{path}") } else { path.clone() };
            prop_assert_eq!(&r.registry, domain.as_deref().unwrap_or(DOCKER_HUB));
            prop_assert_eq!(&r.repository, &want_repo);
            prop_assert_eq!(r.digest.clone(), digest.map(|d| format!("sha256:{d}")));
            let want_tag = tag.or_else(|| r.digest.is_none().then(|| "latest".to_string()));
            prop_assert_eq!(&r.tag, &want_tag);
            prop_assert_eq!(ImageRef::parse(&familiar(&s)).unwrap(), familiar_of(r));
        }
    }

    /// What the familiar form keeps: a digest wins over a tag.
    fn familiar_of(mut r: ImageRef) -> ImageRef {
        if r.digest.is_some() {
            r.tag = None;
        }
        r
    }
}
