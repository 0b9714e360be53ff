//! The control plane's browser assets, embedded in the binary so a user needs no npm or
//! separate server: `/` is the app, `/ui/{file}` its modules, styles and vendored libraries.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `(name, content type, bytes)` of every asset. The app is one ES module per page, which
/// import each other by relative name (`./lib.js`), so each module is served under its own
/// file name; a test checks that every import names an asset here.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.js", JS, include_bytes!("../ui/app.js")),
    ("lib.js", JS, include_bytes!("../ui/lib.js")),
    ("overview.js", JS, include_bytes!("../ui/overview.js")),
    ("jobs.js", JS, include_bytes!("../ui/jobs.js")),
    ("job.js", JS, include_bytes!("../ui/job.js")),
    ("joblogs.js", JS, include_bytes!("../ui/joblogs.js")),
    ("jobactions.js", JS, include_bytes!("../ui/jobactions.js")),
    ("dag.js", JS, include_bytes!("../ui/dag.js")),
    ("when.js", JS, include_bytes!("../ui/when.js")),
    ("artifacts.js", JS, include_bytes!("../ui/artifacts.js")),
    ("waiting.js", JS, include_bytes!("../ui/waiting.js")),
    ("item.js", JS, include_bytes!("../ui/item.js")),
    ("factories.js", JS, include_bytes!("../ui/factories.js")),
    ("weights.js", JS, include_bytes!("../ui/weights.js")),
    ("tokens.js", JS, include_bytes!("../ui/tokens.js")),
    ("secrets.js", JS, include_bytes!("../ui/secrets.js")),
    ("budgets.js", JS, include_bytes!("../ui/budgets.js")),
    ("budget.js", JS, include_bytes!("../ui/budget.js")),
    ("schedules.js", JS, include_bytes!("../ui/schedules.js")),
    ("schedule.js", JS, include_bytes!("../ui/schedule.js")),
    ("money.js", JS, include_bytes!("../ui/money.js")),
    ("question.js", JS, include_bytes!("../ui/question.js")),
    ("style.css", CSS, include_bytes!("../ui/style.css")),
    (
        "uplot.min.js",
        JS,
        include_bytes!("../ui/vendor/uplot.min.js"),
    ),
    (
        "uplot.min.css",
        CSS,
        include_bytes!("../ui/vendor/uplot.min.css"),
    ),
    (
        "dagre.min.js",
        JS,
        include_bytes!("../ui/vendor/dagre.min.js"),
    ),
];

pub(crate) async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The app loads only its own assets and talks only to this origin; images may also
            // be blob URLs, which is how a job's image artifacts (fetched with the token) show.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; frame-ancestors 'none'",
            ),
        ],
        include_str!("../ui/index.html"),
    )
        .into_response()
}

pub(crate) async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::NotFound(format!("no asset {file:?}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a module imports (`from "./lib.js"`).
    fn imports(source: &str) -> Vec<&str> {
        source
            .split("from \"./")
            .skip(1)
            .filter_map(|rest| rest.split_once('"').map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn every_module_an_asset_imports_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|(name, _, _)| *name).collect();
        for (name, _, bytes) in ASSETS.iter().filter(|(n, _, _)| !n.ends_with(".min.js")) {
            let source = std::str::from_utf8(bytes).expect("assets are UTF-8");
            for imported in imports(source) {
                assert!(
                    served.contains(&imported),
                    "{name} imports ./{imported}, which is not served"
                );
            }
        }
    }

    #[test]
    fn every_module_in_the_ui_directory_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ui");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".js") || name.ends_with(".css") {
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "ui/{name} is not served"
                );
            }
        }
    }
}
