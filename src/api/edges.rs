//! HTTP at the edges: answers for requests no handler takes (a known path with another method: 405
//! with `Allow`; an unknown path: 404), a query string that does not parse (400), all with the CSC
//! error body; `/docs` without its slash; and the 401/413 answers every route may give, written
//! into the OpenAPI document.

use actix_web::dev::ResourceDef;
use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};

use super::error::ApiError;

/// The methods each documented path takes, read from the OpenAPI document: every route is
/// registered through it (tests/api/platform.rs checks that the document is complete), so the two
/// cannot disagree.
pub struct AllowedMethods {
    paths: Vec<(ResourceDef, Vec<&'static str>)>,
}

impl AllowedMethods {
    pub fn from_openapi(api: &utoipa::openapi::OpenApi) -> AllowedMethods {
        let paths = api
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    // Every GET route answers HEAD too (see `ops::observe`).
                    ("HEAD", item.head.is_some() || item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("OPTIONS", item.options.is_some()),
                ];
                let methods = methods.into_iter().filter(|(_, present)| *present).map(|(m, _)| m).collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        AllowedMethods { paths }
    }

    /// The table without `path`: for a documented route this listener does not serve (`/metrics`
    /// apart from the public listener), which must answer 404 to every method, not 405.
    pub fn without(mut self, path: &str) -> AllowedMethods {
        self.paths.retain(|(def, _)| def.pattern() != Some(path));
        self
    }

    /// The methods `path` takes (sorted, without repeats); empty for a path nothing serves.
    pub fn allowed(&self, path: &str) -> Vec<&'static str> {
        let mut methods: Vec<&'static str> = self
            .paths
            .iter()
            .filter(|(def, _)| def.is_match(path))
            .flat_map(|(_, methods)| methods.iter().copied())
            .collect();
        methods.sort_unstable();
        methods.dedup();
        methods
    }
}

/// The default service: 405 with `Allow` for a known path, else 404.
pub async fn no_route(req: HttpRequest, table: Data<AllowedMethods>) -> Result<HttpResponse, ApiError> {
    let allowed = table.allowed(req.path());
    if allowed.is_empty() || allowed.iter().any(|m| *m == req.method().as_str()) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "invalid_request", "Unknown method or path"));
    }
    Err(ApiError::method_not_allowed(&allowed.join(", ")))
}

/// `/docs` → `docs/`: relative, so that it also works behind a reverse proxy that adds a path prefix.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "docs/")).finish()
}

/// Query strings that do not parse get the CSC error body, like every other bad input.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _req| ApiError::invalid_request(format!("Invalid query string: {err}")).into())
}

/// Path segments that do not parse (a number that is not one) likewise.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _req| ApiError::invalid_request(format!("Invalid path parameter: {err}")).into())
}

/// Adds the answers the extractors give on every route to the OpenAPI document: 401 with its
/// `WWW-Authenticate` challenge where credentials are needed; 408, 413 and 415 where a body is read.
pub fn document_edge_responses(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};
    let json_limit = super::extract::json_body_limit(None);
    for (path, item) in api.paths.paths.iter_mut() {
        let operations =
            [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten();
        for operation in operations {
            let error_body = || ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                // CSC auth/login and the OAuth2 endpoints (client authentication) take HTTP Basic.
                let takes_basic = path.ends_with("/auth/login") || path.starts_with("/oauth2/") || path == "/revoke";
                let challenge = if takes_basic {
                    "`Basic realm=\"rssp\", charset=\"UTF-8\"`"
                } else {
                    "`Bearer realm=\"rssp\"`, with `error=\"invalid_token\"` when a token was sent"
                };
                let header = HeaderBuilder::new()
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String),
                    ))
                    .description(Some(format!("How to authenticate (RFC 9110 §11.6.1): {challenge}.")))
                    .build();
                let responses = &mut operation.responses.responses;
                let response = responses.entry("401".to_string()).or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("No credentials, or credentials that are not valid.")
                            .content("application/json", error_body())
                            .build(),
                    )
                });
                if let RefOr::T(response) = response {
                    if response.description.is_empty() {
                        response.description = "No credentials, or credentials that are not valid.".to_string();
                    }
                    response.headers.insert("WWW-Authenticate".to_string(), RefOr::T(header));
                }
            }
            if operation.request_body.is_some() {
                let limit = if path.ends_with("/identity-document") {
                    format!(
                        "{} bytes (a 5 MiB document in base64, with room for the other fields)",
                        super::extract::UPLOAD_BODY_LIMIT
                    )
                } else if path.starts_with("/oauth2/") || path == "/revoke" {
                    "16 KiB (a form of client authentication and a few parameters)".to_string()
                } else if path.ends_with("/signatures/signDoc") {
                    format!(
                        "the documents in base64 (at most `security.max_signdoc_document_bytes` of documents, 20 MiB \
                         by default) plus the JSON limit of the other methods ({} bytes with the defaults)",
                        super::extract::signdoc_body_limit(None)
                    )
                } else {
                    format!(
                        "64 KiB plus 256 bytes per hash the server accepts in one request \
                         (`security.max_hashes_per_request`; {json_limit} bytes with the default 1000)"
                    )
                };
                let response = ResponseBuilder::new()
                    .description(format!("The request body is larger than this method accepts: {limit}."))
                    .content("application/json", error_body())
                    .build();
                operation.responses.responses.entry("413".to_string()).or_insert(RefOr::T(response));
                let answers = [
                    ("408", "The request body did not arrive within `http.request_timeout_secs` of its headers."),
                    ("415", "The request body is compressed (`Content-Encoding` other than `identity`)."),
                ];
                for (status, description) in answers {
                    let response = ResponseBuilder::new()
                        .description(description)
                        .content("application/json", error_body())
                        .build();
                    operation.responses.responses.entry(status.to_string()).or_insert(RefOr::T(response));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_path_lists_its_methods_and_an_unknown_one_none() {
        let (_, api) = crate::api::routes();
        let table = AllowedMethods::from_openapi(&api);
        assert_eq!(table.allowed("/csc/v1/signatures/signHash"), vec!["POST"]);
        assert_eq!(table.allowed("/api/v1/orders/abc/invoice"), vec!["PUT"]);
        assert_eq!(table.allowed("/api/v1/orders"), vec!["GET", "HEAD", "POST"]);
        assert!(table.allowed("/metrics").contains(&"GET"));
        assert!(table.allowed("/api/v1/orders/abc/nothing").is_empty());
        assert!(table.allowed("/csc/v1/signatures/signHash/extra").is_empty());
        assert!(table.without("/metrics").allowed("/metrics").is_empty());
    }
}
