//! The web app: hand-written HTML, CSS and JavaScript modules in `crates/server/web/`, built
//! into the binary, so that `cargo build` alone makes a Weft that serves it. The app is one
//! page that draws every screen from the JSON API, with the session cookie and its CSRF token:
//! it can do nothing the API would not let its user do.
//!
//! Any `GET` that asks for HTML outside the API and the webhooks gets the app's page, which
//! reads the path itself (`/recipes/…`, `/jobs/…`, and the links Weft mails: `/setup`,
//! `/join`, `/reset-password`, `/confirm-email`).
//!
//! `WEFT_WEB_DIR` serves the files from a directory instead, read at each request: for working
//! on the app without rebuilding.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;
use std::sync::LazyLock;

/// One file of the app.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../web/", $name)),
        }),*]
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = assets! {
    "index.html" => HTML,
    "app.css" => CSS,
    "app.js" => JS,
    "lib.js" => JS,
    "pages/account.js" => JS,
    "pages/audit.js" => JS,
    "pages/connections.js" => JS,
    "pages/dashboard.js" => JS,
    "pages/jobs.js" => JS,
    "pages/library.js" => JS,
    "pages/members.js" => JS,
    "pages/privacy.js" => JS,
    "pages/recipes.js" => JS,
    "pages/sign-in.js" => JS,
    "pages/tokens.js" => JS,
    "pages/usage.js" => JS,
    "favicon.svg" => "image/svg+xml",
};

/// Each asset's entity tag: a hash of its bytes, so that a browser revalidates cheaply.
static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = sha2::Sha256::digest(asset.bytes);
            format!("\"{}\"", hex::encode(&digest[..12]))
        })
        .collect()
});

/// The directory to serve the app from instead of the built-in files.
static DEV_DIR: LazyLock<Option<std::path::PathBuf>> =
    LazyLock::new(|| std::env::var_os("WEFT_WEB_DIR").map(std::path::PathBuf::from));

/// `GET /assets/{*file}`: a file of the app.
pub async fn asset(
    axum::extract::Path(file): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&file, &headers).unwrap_or_else(|| {
        crate::ApiError::not_found("file of the web app with this name").into_response()
    })
}

/// The app's page for a browser's `GET` of a path outside the API; `None` for anything else,
/// which gets the API's JSON 404.
pub fn page_for(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let outside_api = !["/api/", "/hooks/", "/w/", "/assets/"]
        .iter()
        .any(|prefix| path.starts_with(prefix));
    let mut page = (matches!(*method, Method::GET | Method::HEAD) && wants_html && outside_api)
        .then(|| serve("index.html", headers))
        .flatten()?;
    // The same path answers JSON to a program: caches must keep the two apart.
    page.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Some(page)
}

fn serve(name: &str, headers: &HeaderMap) -> Option<Response> {
    if let Some(dir) = DEV_DIR.as_ref() {
        return serve_from_dir(dir, name);
    }
    let index = ASSETS.iter().position(|asset| asset.name == name)?;
    let asset = &ASSETS[index];
    let tag = &TAGS[index];
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|given| given.split(',').any(|one| one.trim() == tag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.bytes,
        )
            .into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(tag) {
        response_headers.insert(header::ETAG, value);
    }
    Some(response)
}

/// A file read from the development directory, never from outside it.
fn serve_from_dir(dir: &std::path::Path, name: &str) -> Option<Response> {
    if name.split('/').any(|part| part == ".." || part.is_empty()) {
        return None;
    }
    let content_type = match name.rsplit('.').next() {
        Some("html") => HTML,
        Some("js") => JS,
        Some("css") => CSS,
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    let bytes = std::fs::read(dir.join(name)).ok()?;
    Some(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_app_imports_is_built_in() {
        // A page module missing from the list would load in development and fail in a build.
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap_or_default();
            let imports = imported_modules(text);
            assert!(
                asset.name == "lib.js" || !imports.is_empty(),
                "{} imports nothing: the scan is broken",
                asset.name
            );
            for spec in imports {
                let base = asset.name.rsplit_once('/').map_or("", |(dir, _)| dir);
                let resolved = resolve(base, spec);
                assert!(
                    ASSETS.iter().any(|known| known.name == resolved),
                    "{} imports {spec}, which is not built in",
                    asset.name
                );
            }
        }
    }

    /// The modules a file imports: `from '…'` (an import over several lines ends so) and
    /// `import('…')`.
    fn imported_modules(text: &str) -> Vec<&str> {
        let quoted = |rest: &str| -> Option<usize> {
            rest.starts_with(['\'', '"'])
                .then(|| rest[1..].find(['\'', '"']))
                .flatten()
        };
        let mut found = Vec::new();
        for marker in [" from ", "import("] {
            for (at, _) in text.match_indices(marker) {
                let rest = &text[at + marker.len()..];
                if let Some(end) = quoted(rest)
                    && rest[1..].starts_with('.')
                {
                    found.push(&rest[1..=end]);
                }
            }
        }
        found
    }

    fn resolve(base: &str, spec: &str) -> String {
        let mut parts: Vec<&str> = if spec.starts_with("/assets/") {
            Vec::new()
        } else {
            base.split('/').filter(|part| !part.is_empty()).collect()
        };
        for part in spec.trim_start_matches("/assets/").split('/') {
            match part {
                "." => {}
                ".." => {
                    parts.pop();
                }
                other => parts.push(other),
            }
        }
        parts.join("/")
    }
}
