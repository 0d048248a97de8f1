//! Where credentials may go: the rules that keep a registry's
//! `Authorization` and the user's password from reaching a server that
//! should not see them.
//!
//! * A token service (a Bearer challenge's `realm`) gets the user's
//!   credentials only over HTTPS, or on this machine (loopback), or when it
//!   is the very registry the user chose to speak plain HTTP to (same
//!   scheme, host and port): a registry that names `http://elsewhere/token`
//!   must not collect the password in clear.
//! * A redirect keeps `Authorization` only to the same origin (scheme,
//!   host and port): another port of the same host is another server.
//!
//! "Loopback" is decided from the URL's text alone: `localhost`, an IPv4
//! address in 127.0.0.0/8, or `::1`. A name that happens to resolve to a
//! loopback address is not enough (resolution can change, and can be
//! steered by whoever answers DNS), nor are addresses that merely reach
//! this machine (0.0.0.0, an IPv4-mapped `::ffff:127.0.0.1`, this
//! machine's other addresses): refusing them costs nothing real.

use crate::source::reference::is_loopback_host;
use url::Url;

/// Whether a URL points at this machine by its host's text.
pub(super) fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(is_loopback_host)
}

/// Same scheme, host and port (a port left out counts as its scheme's
/// default). URLs of other schemes are never the same origin.
pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin().is_tuple() && a.origin() == b.origin()
}

/// Whether the user's credentials may be sent to the token service at
/// `realm` for the registry spoken to at `registry` (its base URL).
pub(super) fn credentials_may_go_to(realm: &Url, registry: &Url) -> bool {
    match realm.scheme() {
        "https" => true,
        "http" => is_loopback(realm) || same_origin(realm, registry),
        _ => false,
    }
}

/// `scheme://host[:port]` of a URL, for messages: no path, no query (a
/// signed URL's query is a credential of its own).
pub(super) fn origin_text(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn loopback_hosts() {
        let cases = [
            ("localhost", true),
            ("LocalHost", true),
            ("127.0.0.1", true),
            ("127.9.8.7", true),
            ("::1", true),
            ("[::1]", true),
            ("localhost.", false),
            ("localhost.example.com", false),
            ("foo.localhost", false),
            ("0.0.0.0", false),
            ("::ffff:127.0.0.1", false),
            ("[::ffff:127.0.0.1]", false),
            ("128.0.0.1", false),
            ("10.0.0.1", false),
            ("::2", false),
            // A name that resolves to 127.0.0.1 (Debian maps the host
            // name so) is still just a name.
            ("vm", false),
            ("", false),
        ];
        for (host, loopback) in cases {
            assert_eq!(is_loopback_host(host), loopback, "{host:?}");
        }
    }

    #[test]
    fn loopback_urls() {
        for (text, loopback) in [
            ("http://127.0.0.1:5000/token", true),
            ("http://127.9.8.7/token", true),
            ("http://LOCALHOST:1/token", true),
            ("http://[::1]:1/token", true),
            // The URL parser reads these as 127.0.0.1.
            ("http://127.1/token", true),
            ("http://2130706433/token", true),
            ("http://10.0.0.1/token", false),
            ("https://auth.docker.io/token", false),
            ("http://localhost.example.com/token", false),
            ("http://0.0.0.0:1/token", false),
            ("http://[::ffff:127.0.0.1]:1/token", false),
        ] {
            assert_eq!(is_loopback(&url(text)), loopback, "{text}");
        }
    }

    #[test]
    fn same_origins() {
        for (a, b, same) in [
            (
                "http://127.0.0.1:5000/v2/",
                "http://127.0.0.1:5000/blob?x",
                true,
            ),
            ("http://r.example/a", "http://R.EXAMPLE:80/b", true),
            ("https://r.example/a", "https://r.example:443/b", true),
            ("http://127.0.0.1:5000/", "http://127.0.0.1:5001/", false),
            ("http://127.0.0.1:5000/", "http://localhost:5000/", false),
            ("http://r.example/", "https://r.example/", false),
            ("https://r.example/", "http://r.example/", false),
            ("https://r.example/", "https://cdn.r.example/", false),
            ("https://r.example/", "https://r.example./", false),
            ("http://[::1]:5000/", "http://[0:0::1]:5000/", true),
            ("file:///a", "file:///a", false),
        ] {
            assert_eq!(same_origin(&url(a), &url(b)), same, "{a} {b}");
        }
    }

    /// May the user's credentials go to the token service (realm) of a
    /// registry spoken to at this base URL?
    #[test]
    fn where_credentials_may_go() {
        let cases = [
            // realm, registry, may go
            (
                "https://auth.docker.io/token",
                "https://registry-1.docker.io",
                true,
            ),
            ("https://auth.example/token", "http://127.0.0.1:5000", true),
            ("https://auth.example/token", "http://r.lan:5000", true),
            // Plain HTTP off this machine: never, whatever the registry.
            ("http://elsewhere/token", "http://127.0.0.1:5000", false),
            ("http://elsewhere/token", "http://r.lan:5000", false),
            ("http://elsewhere/token", "https://r.example", false),
            ("http://10.0.0.1:5001/token", "http://10.0.0.1:5000", false),
            ("http://0.0.0.0:5001/token", "http://127.0.0.1:5000", false),
            ("http://vm:5001/token", "http://127.0.0.1:5000", false),
            (
                "http://[::ffff:127.0.0.1]:1/token",
                "http://127.0.0.1:5000",
                false,
            ),
            // Plain HTTP on this machine.
            ("http://127.0.0.1:5001/token", "http://127.0.0.1:5000", true),
            ("http://127.0.0.2:5001/token", "https://r.example", true),
            ("http://localhost:5001/token", "http://r.lan:5000", true),
            ("http://[::1]:5001/token", "http://127.0.0.1:5000", true),
            // The registry itself, spoken to in plain HTTP (--plain-http):
            // it gets the credentials for Basic auth anyway.
            ("http://r.lan:5000/service/token", "http://r.lan:5000", true),
            ("http://r.lan/service/token", "http://r.lan:80", true),
            ("http://r.lan:5001/token", "http://r.lan:5000", false),
            ("http://r.example/token", "https://r.example", false),
            // Nothing but HTTP(S).
            ("ftp://127.0.0.1/token", "http://127.0.0.1:5000", false),
        ];
        for (realm, registry, may) in cases {
            assert_eq!(
                credentials_may_go_to(&url(realm), &url(registry)),
                may,
                "{realm} for {registry}"
            );
        }
    }

    #[test]
    fn origins_in_messages_hide_the_path_and_query() {
        assert_eq!(
            origin_text(&url("http://0.0.0.0:41000/token?sig=secret")),
            "http://0.0.0.0:41000"
        );
        assert_eq!(origin_text(&url("https://[::1]/t")), "https://[::1]");
    }
}
