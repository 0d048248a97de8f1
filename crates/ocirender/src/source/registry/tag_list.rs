//! A repository's tags, as `GET /v2/<name>/tags/list` pages them
//! (distribution-spec "Listing Tags").
//!
//! The first page is asked for with `n` ([`PAGE_SIZE`]), so a registry
//! that pages (distribution 3, Docker Hub, ghcr.io) answers in bounded
//! pieces, while one that does not (distribution 2.8) sends every tag at
//! once, as it would without `n`. The registry's `Link: <...>; rel="next"`
//! is followed as skopeo follows it: only its path and query count (a
//! link to another host still asks this registry), and they must name
//! this repository's tag list. No page count is guessed from `n`: a page
//! shorter or longer than asked is the registry's choice, and only a
//! `Link` means more. Tags are kept in the registry's order; `null` and
//! digest-shaped entries (some registries list untagged manifests) are
//! skipped, as containers/image skips them; any other invalid tag is an
//! error. Bounds: each page at most [`super::MAX_DOCUMENT`], at most
//! [`MAX_PAGES`] pages and [`MAX_TAGS`] tags, no page asked twice.

use crate::error::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashSet;

/// The page size asked for: a registry may send fewer (with a `Link`).
pub const PAGE_SIZE: usize = 1000;
/// The most pages read before giving up.
pub const MAX_PAGES: usize = 1000;
/// The most tags listed before giving up.
pub const MAX_TAGS: usize = 100_000;

/// The pages of one repository's tag list, read one after another.
pub(super) struct Pages {
    repository: String,
    next: Option<String>,
    asked: HashSet<String>,
    tags: Vec<String>,
}

/// One page as the registry sends it.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    tags: Option<Vec<Option<String>>>,
}

impl Pages {
    /// The tag list of `repository`, from its first page.
    pub(super) fn new(repository: &str) -> Pages {
        Pages {
            repository: repository.to_owned(),
            next: Some(format!("tags/list?n={PAGE_SIZE}")),
            asked: HashSet::new(),
            tags: Vec::new(),
        }
    }

    /// The path (under `/v2/<name>/`) of the next page, if there is one.
    pub(super) fn next_path(&mut self, what: &str) -> Result<Option<String>> {
        let Some(path) = self.next.take() else {
            return Ok(None);
        };
        if !self.asked.insert(path.clone()) {
            bail!("{what}: the registry's Link header leads back to a page already read ({path})");
        }
        if self.asked.len() > MAX_PAGES {
            bail!("{what}: more than {MAX_PAGES} pages of tags");
        }
        Ok(Some(path))
    }

    /// Adds the page `body`, whose answer had the `Link` header `link`.
    pub(super) fn add(&mut self, what: &str, body: &[u8], link: Option<&str>) -> Result<()> {
        let page: Page = serde_json::from_slice(body)
            .map_err(|e| crate::error::err!("{what}: malformed tag list: {e}"))?;
        for tag in page.tags.unwrap_or_default().into_iter().flatten() {
            if tag.is_empty() || looks_like_digest(&tag) {
                continue;
            }
            crate::source::reference::check_tag(&tag)
                .with_context(|| format!("{what}: the registry returned an invalid tag"))?;
            if self.tags.len() == MAX_TAGS {
                bail!("{what}: more than {MAX_TAGS} tags");
            }
            self.tags.push(tag);
        }
        self.next = link
            .map(|link| next_page(&self.repository, link))
            .transpose()
            .with_context(|| format!("{what}: the registry's Link header"))?;
        Ok(())
    }

    /// Every tag read.
    pub(super) fn into_tags(self) -> Vec<String> {
        self.tags
    }
}

/// `sha256:…`: an untagged manifest some registries list.
fn looks_like_digest(tag: &str) -> bool {
    tag.parse::<crate::blob::digest::Digest>().is_ok()
}

/// The path under `/v2/<repository>/` of the page a `Link` header names:
/// the target of its `rel="next"` value (or of its only value), of which
/// only the path and query count; the path must be the repository's tag
/// list.
fn next_page(repository: &str, link: &str) -> Result<String> {
    let values: Vec<&str> = link.split(',').collect();
    let value = match values.iter().find(|v| is_next(v)) {
        Some(value) => *value,
        None if values.len() == 1 => values[0],
        None => bail!("no rel=\"next\" in {link:?}"),
    };
    let target = value.split(';').next().unwrap_or_default().trim();
    let target = target
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .with_context(|| format!("no <URL> in {link:?}"))?;
    // Any registry URL: an absolute link's host is ignored.
    let base = url::Url::parse("http://registry.invalid/").expect("a valid base");
    let url = base
        .join(target)
        .with_context(|| format!("bad URL in {link:?}"))?;
    if url.path() != format!("/v2/{repository}/tags/list") {
        bail!("{target:?} is not this repository's tag list");
    }
    Ok(match url.query() {
        Some(query) => format!("tags/list?{query}"),
        None => "tags/list".to_owned(),
    })
}

fn is_next(value: &str) -> bool {
    value.split(';').skip(1).any(|param| {
        let param = param.trim().to_ascii_lowercase();
        param == "rel=\"next\"" || param == "rel=next"
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{response, Reply, Server};
    use super::super::{ClientOptions, Registry};
    use super::*;
    use std::time::Duration;

    #[test]
    fn links_lead_to_pages_of_the_same_tag_list() {
        for (link, expected) in [
            (
                r#"</v2/ns/img/tags/list?n=2&last=b>; rel="next""#,
                Ok("tags/list?n=2&last=b"),
            ),
            (
                r#"<http://elsewhere.example:9/v2/ns/img/tags/list?last=b>; rel="next""#,
                Ok("tags/list?last=b"),
            ),
            ("</v2/ns/img/tags/list?last=c>", Ok("tags/list?last=c")),
            (
                r#"</v2/ns/img/tags/list?last=a>; rel="prev", </v2/ns/img/tags/list?last=z>; rel=next"#,
                Ok("tags/list?last=z"),
            ),
            (
                r#"</v2/other/tags/list?last=b>; rel="next""#,
                Err("not this repository's tag list"),
            ),
            (
                r#"</v2/ns/img/manifests/latest>; rel="next""#,
                Err("not this repository's tag list"),
            ),
            ("/v2/ns/img/tags/list", Err("no <URL>")),
            (
                r#"</a>; rel="prev", </b>; rel="first""#,
                Err("no rel=\"next\""),
            ),
        ] {
            let got = next_page("ns/img", link).map_err(|e| e.to_string());
            match expected {
                Ok(path) => assert_eq!(got.as_deref(), Ok(path), "{link}"),
                Err(words) => assert!(got.as_ref().unwrap_err().contains(words), "{link}: {got:?}"),
            }
        }
    }

    #[test]
    fn pages_skip_nulls_and_digests_and_refuse_bad_tags() {
        let mut pages = Pages::new("ns/img");
        assert_eq!(
            pages.next_path("x").unwrap().as_deref(),
            Some("tags/list?n=1000")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let body = serde_json::json!({"name": "ns/img", "tags": ["b", null, "", digest, "a"]});
        pages.add("x", body.to_string().as_bytes(), None).unwrap();
        assert_eq!(pages.next_path("x").unwrap(), None);
        assert_eq!(pages.into_tags(), ["b", "a"]);

        let mut pages = Pages::new("ns/img");
        pages
            .add("x", br#"{"name":"ns/img","tags":null}"#, None)
            .unwrap();
        assert!(pages.into_tags().is_empty());

        let mut pages = Pages::new("ns/img");
        let err = pages
            .add("x", br#"{"tags":["ok","-bad"]}"#, None)
            .unwrap_err();
        assert!(format!("{err:#}").contains("invalid tag"), "{err:#}");
        let err = Pages::new("ns/img").add("x", b"<html>", None).unwrap_err();
        assert!(err.to_string().contains("malformed tag list"), "{err}");
    }

    /// Against a registry that pages with relative and absolute links,
    /// then loops back: every page is read once, in order, then the loop
    /// is an error.
    #[test]
    fn the_client_follows_links_and_stops_at_a_loop() {
        let page = |tags: &[&str], link: Option<&str>| {
            let body = serde_json::json!({"name": "test/repo", "tags": tags}).to_string();
            let headers: Vec<(&str, &str)> = link.map(|l| ("Link", l)).into_iter().collect();
            response("200 OK", &headers, body.as_bytes())
        };
        let server = Server::start(move |request| {
            let target = request.target.as_str();
            Reply::Send(match target {
                "/v2/test/repo/tags/list?n=1000" => page(
                    &["a", "b"],
                    Some(r#"</v2/test/repo/tags/list?n=2&last=b>; rel="next""#),
                ),
                "/v2/test/repo/tags/list?n=2&last=b" => page(
                    &["c"],
                    Some(r#"<https://cdn.example/v2/test/repo/tags/list?last=c>; rel="next""#),
                ),
                "/v2/test/repo/tags/list?last=c" => page(&["d"], None),
                _ => response("404 Not Found", &[], b""),
            })
        });
        let options = ClientOptions {
            backoff: Duration::from_millis(1),
            ..ClientOptions::default()
        };
        let reference = format!("{}/test/repo", server.authority()).parse().unwrap();
        let transport =
            super::super::transport::Transport::with_env(&reference, &options, &|_| None).unwrap();
        let registry = Registry::with_transport(&reference, &options, transport);
        assert_eq!(registry.tags().unwrap(), ["a", "b", "c", "d"]);
        let asked: Vec<String> = server
            .requests()
            .iter()
            .map(|r| r.target.clone())
            .filter(|t| t.contains("tags/list"))
            .collect();
        assert_eq!(
            asked,
            [
                "/v2/test/repo/tags/list?n=1000",
                "/v2/test/repo/tags/list?n=2&last=b",
                "/v2/test/repo/tags/list?last=c"
            ]
        );

        let looping = Server::start(move |_| {
            Reply::Send(page(
                &["a"],
                Some(r#"</v2/test/repo/tags/list?n=1000>; rel="next""#),
            ))
        });
        let reference = format!("{}/test/repo", looping.authority())
            .parse()
            .unwrap();
        let transport =
            super::super::transport::Transport::with_env(&reference, &options, &|_| None).unwrap();
        let registry = Registry::with_transport(&reference, &options, transport);
        let err = registry.tags().unwrap_err().to_string();
        assert!(err.contains("leads back to a page already read"), "{err}");
    }
}
