//! Redirects, followed here rather than by ureq: ureq 2 keeps
//! `Authorization` on a redirect to the same host name whatever the port
//! (and from http to https), and a registry's credentials must reach only
//! the origin they were sent to. Registries redirect blob GETs to a CDN or
//! an object store, so only GET and HEAD are followed; a redirected POST
//! (a token exchange) comes back as the answer it is.

use super::origin::same_origin;
use super::retry::Deadline;
use super::transport::url_host;
use url::Url;

/// Redirects followed for one request (a registry, then a CDN, maybe a
/// signed-URL hop).
pub(super) const MAX_REDIRECTS: u32 = 5;

/// Headers never carried to the next hop: a body's length, and cookies.
const DROPPED: [&str; 2] = ["content-length", "cookie"];

/// Sends `request` (with `form` as its body, if any), following the
/// redirects of a GET or HEAD; each hop gets the time `deadline` allows
/// an attempt. Returns ureq's answer to the last hop, or why the chain was
/// abandoned (too many hops, an unusable `Location`, no time left).
pub(super) fn follow(
    agent: &ureq::Agent,
    mut request: ureq::Request,
    form: Option<&[(&str, &str)]>,
    deadline: Option<&Deadline>,
) -> Result<Result<ureq::Response, ureq::Error>, String> {
    for _hop in 0..=MAX_REDIRECTS {
        let timed = match deadline.map(Deadline::attempt) {
            None => request.clone(),
            Some(Some(left)) => request.clone().timeout(left),
            Some(None) => return Err("no time left".to_owned()),
        };
        let sent = match form {
            Some(form) => timed.send_form(form),
            None => timed.call(),
        };
        let response = match sent {
            Ok(response) if is_followed(response.status(), request.method()) => response,
            answer => return Ok(answer),
        };
        request = next_hop(agent, &request, &response)?;
    }
    Err(format!(
        "more than {MAX_REDIRECTS} redirects from {}",
        url_host(request.url())
    ))
}

/// A redirect this client follows: 301, 302, 303, 307, 308 to a GET or a
/// HEAD (which stay what they are).
fn is_followed(status: u16, method: &str) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308) && matches!(method, "GET" | "HEAD")
}

/// The request for the `Location` of `response`: the same method and
/// headers, without `Authorization` unless the origin is the same.
fn next_hop(
    agent: &ureq::Agent,
    request: &ureq::Request,
    response: &ureq::Response,
) -> Result<ureq::Request, String> {
    let from_host = url_host(response.get_url());
    let unusable = || format!("a redirect from {from_host} to an unusable location");
    let from = Url::parse(request.url()).map_err(|_| unusable())?;
    let location = response
        .header("location")
        .ok_or_else(|| format!("a redirect from {from_host} without a Location"))?;
    let to = from.join(location.trim()).map_err(|_| unusable())?;
    if !matches!(to.scheme(), "http" | "https") {
        return Err(unusable());
    }
    let keep_authorization = same_origin(&from, &to);
    let mut next = agent.request_url(request.method(), &to);
    for name in request.header_names() {
        let authorization = name == "authorization";
        if DROPPED.contains(&name.as_str()) || (authorization && !keep_authorization) {
            continue;
        }
        for value in request.all(&name) {
            next = next.set(&name, value);
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_redirects() {
        let cases = [
            (301, "GET", true),
            (302, "GET", true),
            (303, "HEAD", true),
            (307, "GET", true),
            (308, "GET", true),
            (307, "POST", false),
            (302, "POST", false),
            (300, "GET", false),
            (304, "GET", false),
            (200, "GET", false),
        ];
        for (status, method, followed) in cases {
            assert_eq!(is_followed(status, method), followed, "{status} {method}");
        }
    }

    /// The next hop keeps every header, `Authorization` only to the same
    /// origin, and resolves a relative `Location`.
    #[test]
    fn the_next_hop_keeps_authorization_only_to_the_same_origin() {
        let agent = ureq::AgentBuilder::new().build();
        let cases = [
            (
                "http://127.0.0.1:5000/v2/a/blobs/x",
                "/other",
                "http://127.0.0.1:5000/other",
                true,
            ),
            (
                "http://127.0.0.1:5000/v2/a/blobs/x",
                "http://127.0.0.1:5001/x",
                "http://127.0.0.1:5001/x",
                false,
            ),
            (
                "http://127.0.0.1:5000/x",
                "http://localhost:5000/x",
                "http://localhost:5000/x",
                false,
            ),
            (
                "http://r.example/x",
                "https://r.example/x",
                "https://r.example/x",
                false,
            ),
            (
                "https://r.example/x",
                "https://cdn.example/s?sig=1",
                "https://cdn.example/s?sig=1",
                false,
            ),
        ];
        for (from, location, to, kept) in cases {
            let request = agent
                .get(from)
                .set("Authorization", "Basic c2VjcmV0")
                .set("Range", "bytes=10-")
                .set("Cookie", "a=b");
            let next = next_hop(&agent, &request, &redirect_to(location)).unwrap();
            assert_eq!(next.url(), to, "{from} -> {location}");
            assert_eq!(next.method(), "GET");
            assert_eq!(next.all("range"), ["bytes=10-"]);
            assert!(next.all("cookie").is_empty());
            let authorization = next.all("authorization");
            assert_eq!(!authorization.is_empty(), kept, "{from} -> {location}");
        }
    }

    #[test]
    fn an_unusable_location_is_an_error() {
        let agent = ureq::AgentBuilder::new().build();
        let request = agent.get("http://127.0.0.1:5000/x");
        for location in ["file:///etc/passwd", "http://[::1", "ftp://h/x"] {
            let e = next_hop(&agent, &request, &redirect_to(location)).unwrap_err();
            assert!(e.contains("unusable location"), "{location}: {e}");
        }
        let response = ureq::Response::new(302, "Found", "").unwrap();
        let e = next_hop(&agent, &request, &response).unwrap_err();
        assert!(e.contains("without a Location"), "{e}");
    }

    /// A 307 to `location` (ureq parses test responses from their text).
    fn redirect_to(location: &str) -> ureq::Response {
        format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n\r\n")
            .parse()
            .unwrap()
    }
}
