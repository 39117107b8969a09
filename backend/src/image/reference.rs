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

impl ImageRef {
    /// Parses "alpine", "nginx:alpine", "localhost:5000/x/y:1", "a@sha256:…".
    pub fn parse(s: &str) -> Result<Self, BadReference> {
        let bad = || BadReference(s.to_string());
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(bad());
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) if d.starts_with("sha256:") && d.len() == 71 => (n, Some(d.to_string())),
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (path, tag) = match name[slash..].rfind(':') {
            Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_string())),
            None => (name, None),
        };
        if path.is_empty() || tag.as_deref() == Some("") {
            return Err(bad());
        }
        let (registry, repository) = match path.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), path.to_string()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if !repository.chars().all(valid) || repository.starts_with('/') || repository.ends_with('/') {
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
}
