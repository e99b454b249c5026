//! Plumb's web UI: the static files of the page, embedded in the binary so a
//! single `plumb serve` serves them with no files on disk.
//!
//! Not here: routing and headers, which `plumb-api` owns. The page itself is
//! dependency-free HTML, CSS and JavaScript in `static/`; it talks to the API
//! with relative URLs, so it also works behind a proxy under a path prefix.

/// Every embedded file: name (relative to `static/`), content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../static/index.html"),
    ),
    (
        "util.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/util.js"),
    ),
    (
        "graph.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/graph.js"),
    ),
    (
        "diff.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/diff.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/charts.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../static/favicon.svg"),
    ),
];

/// The content type and contents of the UI file `path` (`index.html`,
/// `app.js`, ...; a leading `/` is ignored and an empty path is
/// `index.html`), or `None` when there is no such file.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's scripts, in the order index.html loads them.
    const SCRIPTS: [&str; 5] = ["util.js", "graph.js", "diff.js", "charts.js", "app.js"];

    #[test]
    fn index_html_is_served_as_html() {
        let (content_type, bytes) = asset("index.html").expect("index.html is embedded");
        assert_eq!(content_type, "text/html; charset=utf-8");
        let html = std::str::from_utf8(bytes).expect("utf-8");
        assert!(html.starts_with("<!doctype html>"));
        assert_eq!(asset("/"), asset("index.html"));
        assert_eq!(asset(""), asset("index.html"));
    }

    #[test]
    fn scripts_and_styles_have_their_types() {
        assert_eq!(
            asset("app.js").map(|a| a.0),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            asset("/style.css").map(|a| a.0),
            Some("text/css; charset=utf-8")
        );
        assert_eq!(asset("favicon.svg").map(|a| a.0), Some("image/svg+xml"));
    }

    #[test]
    fn unknown_files_and_traversal_are_none() {
        assert_eq!(asset("nope.js"), None);
        assert_eq!(asset("../Cargo.toml"), None);
        assert_eq!(asset("static/index.html"), None);
    }

    #[test]
    fn the_page_uses_no_external_resources_or_inline_code() {
        for name in SCRIPTS.iter().chain(&["index.html", "style.css"]) {
            let text = std::str::from_utf8(asset(name).expect("embedded").1).expect("utf-8");
            // SVG's namespace is a name, not a request.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{name} links outside"
            );
        }
        let html = std::str::from_utf8(asset("index.html").expect("embedded").1).expect("utf-8");
        // The content security policy forbids inline scripts, styles and handlers.
        assert!(
            !html.contains("<script>") && !html.contains("<style") && !html.contains(" onclick=")
        );
        for name in SCRIPTS {
            let js = std::str::from_utf8(asset(name).expect("embedded").1).expect("utf-8");
            assert!(
                !js.contains("innerHTML") && !js.contains("insertAdjacentHTML"),
                "{name}: build DOM nodes, not HTML"
            );
            // The content security policy forbids style attributes: styles
            // go through the CSSOM (`node.style`), never setAttribute.
            assert!(!js.contains("'style',"), "{name} sets a style attribute");
            assert!(
                html.contains(&format!("src=\"ui/{name}\"")),
                "index.html loads {name}"
            );
        }
    }
}
