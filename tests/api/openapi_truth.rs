//! The OpenAPI document tells the truth. Schema names are global in the document, so two Rust types
//! with one name silently overwrite each other (CSC v1 and v2 share many type names): every type
//! deriving `ToSchema` must have a name of its own. And the real answers of every CSC route, in both
//! dialects, successes and errors, validate against the document the server serves at
//! `/openapi.json`; the request fields it documents are the ones the server reads.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use rssp::domain::KeyKind;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Schema names: one Rust type per name.

/// A Rust type that derives or implements `ToSchema`, with the schema name utoipa gives it.
#[derive(Debug)]
struct SchemaType {
    name: String,
    rust: String,
}

/// Every `ToSchema` type in the crate's sources. Read with `syn` rather than asked of utoipa, because
/// utoipa keeps only the last definition of a name and cannot tell which types there were.
fn schema_types_in(dir: &Path, found: &mut Vec<SchemaType>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            schema_types_in(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            schema_types_of(&file.items, &path.display().to_string(), found);
        }
    }
}

fn schema_types_of(items: &[syn::Item], module: &str, found: &mut Vec<SchemaType>) {
    for item in items {
        match item {
            syn::Item::Struct(s) => derived_schema(&s.attrs, &s.ident, module, found),
            syn::Item::Enum(e) => derived_schema(&e.attrs, &e.ident, module, found),
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    schema_types_of(items, &format!("{module}::{}", m.ident), found);
                }
            }
            syn::Item::Impl(i) => {
                let is_to_schema =
                    i.trait_.as_ref().is_some_and(|(_, path, _)| path.segments.last().unwrap().ident == "ToSchema");
                if !is_to_schema {
                    continue;
                }
                let syn::Type::Path(ty) = &*i.self_ty else { panic!("{module}: ToSchema for an unnamed type") };
                let ident = &ty.path.segments.last().unwrap().ident;
                let names_itself =
                    i.items.iter().any(|item| matches!(item, syn::ImplItem::Fn(f) if f.sig.ident == "name"));
                assert!(
                    !names_itself,
                    "{module}: a hand-written ToSchema::name for {ident}: teach this test to read it"
                );
                found.push(SchemaType { name: ident.to_string(), rust: format!("{module}::{ident}") });
            }
            _ => {}
        }
    }
}

fn derived_schema(attrs: &[syn::Attribute], ident: &syn::Ident, module: &str, found: &mut Vec<SchemaType>) {
    let derives = attrs.iter().filter(|a| a.path().is_ident("derive")).any(|a| {
        let mut yes = false;
        let _ = a.parse_nested_meta(|meta| {
            yes |= meta.path.segments.last().is_some_and(|s| s.ident == "ToSchema");
            Ok(())
        });
        yes
    });
    if !derives {
        return;
    }
    // `#[schema(as = a::B)]` names the schema `a.B` (utoipa-gen joins the path with dots).
    let mut name = ident.to_string();
    for attr in attrs.iter().filter(|a| a.path().is_ident("schema")) {
        let Ok(list) = attr.meta.require_list() else { continue };
        let tokens: Vec<proc_macro2::TokenTree> = list.tokens.clone().into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            let is_as = matches!(token, proc_macro2::TokenTree::Ident(id) if id == "as");
            let then_eq = matches!(tokens.get(i + 1), Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == '=');
            if is_as && then_eq {
                let segments: Vec<String> = tokens[i + 2..]
                    .iter()
                    .take_while(|t| !matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ','))
                    .filter_map(|t| match t {
                        proc_macro2::TokenTree::Ident(id) => Some(id.to_string()),
                        _ => None,
                    })
                    .collect();
                name = segments.join(".");
            }
        }
    }
    found.push(SchemaType { name, rust: format!("{module}::{ident}") });
}

/// Schema names carried by more than one Rust type, with those types.
fn shared_names(types: &[SchemaType]) -> BTreeMap<&str, Vec<&str>> {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in types {
        by_name.entry(&t.name).or_default().push(&t.rust);
    }
    by_name.retain(|_, types| types.len() > 1);
    by_name
}

fn types_in_source(source: &str) -> Vec<SchemaType> {
    let mut found = Vec::new();
    schema_types_of(&syn::parse_file(source).unwrap().items, "snippet", &mut found);
    found
}

#[test]
fn the_name_check_sees_a_shared_name_and_a_renamed_type() {
    let source = r#"
        mod v1 { #[derive(Debug, utoipa::ToSchema)] #[serde(rename_all = "camelCase")] pub struct InfoResponse { a: String } }
        mod v2 { #[derive(ToSchema, Serialize)] pub struct InfoResponse { b: String } }
        mod v3 { #[derive(ToSchema)] #[schema(title = "x", as = dialect::InfoResponse, example = json!({}))] pub struct InfoResponse; }
        mod other { pub struct Mine; impl utoipa::ToSchema for Mine {} }
    "#;
    let types = types_in_source(source);
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["InfoResponse", "InfoResponse", "dialect.InfoResponse", "Mine"]);
    let shared = shared_names(&types);
    assert_eq!(shared.len(), 1);
    assert_eq!(shared["InfoResponse"], ["snippet::v1::InfoResponse", "snippet::v2::InfoResponse"]);
}

#[test]
fn every_schema_name_belongs_to_one_rust_type_and_every_operation_id_is_unique() {
    let mut types = Vec::new();
    schema_types_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut types);
    assert!(types.len() > 50, "the scan finds the wire types: {types:?}");
    let shared = shared_names(&types);
    assert!(
        shared.is_empty(),
        "schema names shared by several Rust types (the last one wins in the document): {shared:#?}"
    );

    // The scan covers the document: every schema in it is one of the types found.
    let doc: Value = serde_json::from_str(&rssp::api::openapi_json()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in schemas.keys() {
        assert!(types.iter().any(|t| &t.name == name), "schema {name} comes from no type this test found");
    }
    // Every reference resolves.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling reference to {name}");
    }
    // "The id MUST be unique among all operations" (OpenAPI 3.1 §4.8.10): generators name functions by it.
    let mut ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_default();
            ids.entry(id).or_default().push(format!("{method} {path}"));
        }
    }
    ids.retain(|_, ops| ops.len() > 1);
    assert!(ids.is_empty(), "operation ids used more than once: {ids:#?}");
}

// ---------------------------------------------------------------------------------------------
// Real answers against the served document.

/// The served document, with every object schema closed (`additionalProperties: false`) so that a
/// field the server sends or reads without documenting it fails too.
struct Doc(Value);

fn closed(mut schema: Value) -> Value {
    match &mut schema {
        Value::Object(map) => {
            for value in map.values_mut() {
                *value = closed(value.take());
            }
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
        Value::Array(items) => {
            for value in items.iter_mut() {
                *value = closed(value.take());
            }
        }
        _ => {}
    }
    schema
}

impl Doc {
    async fn served(server: &TestServer) -> Doc {
        let (status, doc) = server.get("/openapi.json", None).await;
        assert_eq!(status, 200);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1: schemas are JSON Schema 2020-12");
        Doc(doc)
    }

    fn operation(&self, path: &str) -> &Value {
        let operation = &self.0["paths"][path]["post"];
        assert!(operation.is_object(), "POST {path} is documented");
        operation
    }

    fn request_schema(&self, path: &str) -> &Value {
        let schema = &self.operation(path)["requestBody"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{path} documents its JSON request body");
        schema
    }

    /// The documented request body's property names (the referenced schema's).
    fn request_fields(&self, path: &str) -> Vec<String> {
        let schema = self.resolve(self.request_schema(path));
        schema["properties"].as_object().unwrap().keys().cloned().collect()
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => self.resolve(&self.0["components"]["schemas"][r.trim_start_matches("#/components/schemas/")]),
            None => schema,
        }
    }

    fn errors(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut root = closed(schema.clone());
        root["components"] = closed(self.0["components"].clone());
        let validator = jsonschema::draft202012::new(&root).expect("the document's schema compiles");
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }

    fn check_request(&self, path: &str, body: &Value) {
        let errors = self.errors(self.request_schema(path), body);
        assert!(errors.is_empty(), "request to {path} does not match the document: {errors:?}\nbody: {body}");
    }

    fn check_response(&self, path: &str, status: u16, body: &Value) {
        let response = &self.operation(path)["responses"][status.to_string()];
        assert!(response.is_object(), "{path} answered {status}, a status the document does not list; body {body}");
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            assert!(body.is_null(), "{path} {status} is documented without a body but answered {body}");
            return;
        }
        let errors = self.errors(schema, body);
        assert!(errors.is_empty(), "{path} {status} does not match the document: {errors:?}\nbody: {body}");
    }
}

enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

/// Sends a documented request and checks the answer against the document; returns status and body.
async fn call(server: &TestServer, doc: &Doc, path: &str, auth: Auth<'_>, body: Value) -> (u16, Value) {
    doc.check_request(path, &body);
    let (status, answer) = send(server, path, auth, &body).await;
    doc.check_response(path, status, &answer);
    (status, answer)
}

/// Sends any body (also one outside the document) and checks only the answer.
async fn send(server: &TestServer, path: &str, auth: Auth<'_>, body: &Value) -> (u16, Value) {
    let mut request = server.http.post(format!("{}{path}", server.url)).json(body);
    request = match auth {
        Auth::None => request,
        Auth::Bearer(token) => request.bearer_auth(token),
        Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} {status}: not JSON: {text}"))
    };
    (status, body)
}

const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";

#[tokio::test]
async fn every_csc_answer_validates_against_the_served_document() {
    let server = TestServer::start().await;
    let doc = Doc::served(&server).await;
    let signer = server.provision("truth", KeyKind::Rsa2048, 5, Some("4711")).await;
    let ec = server.provision("truth-ec", KeyKind::EcP256, 1, None).await;
    let id = signer.credential_id.as_str();

    for v in ["v1", "v2"] {
        let p = |route: &str| format!("/csc/{v}/{route}");
        let v1 = v == "v1";

        // info
        let (status, info) = call(&server, &doc, &p("info"), Auth::None, json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(info["specs"], if v1 { "1.0.4.0" } else { "2.0.0.2" });
        call(&server, &doc, &p("info"), Auth::None, json!({"lang": "en-US"})).await;
        let (status, _) = send(&server, &p("info"), Auth::None, &json!({"lang": 5})).await;
        assert_eq!(status, 400);

        // auth/login: password, remember me, refresh token, and the refusals
        let login = p("auth/login");
        let (status, tokens) = call(&server, &doc, &login, Auth::Basic("truth", PASSWORD), json!({})).await;
        assert_eq!(status, 200);
        assert!(tokens.get("refresh_token").is_none());
        let (status, remembered) =
            call(&server, &doc, &login, Auth::Basic("truth", PASSWORD), json!({"rememberMe": true})).await;
        assert_eq!(status, 200);
        let refresh = remembered["refresh_token"].as_str().expect("rememberMe gives a refresh token").to_string();
        let (status, refreshed) = call(&server, &doc, &login, Auth::None, json!({"refresh_token": refresh})).await;
        assert_eq!(status, 200);
        let token = refreshed["access_token"].as_str().unwrap().to_string();
        let (status, body) = call(&server, &doc, &login, Auth::Basic("truth", "wrong password"), json!({})).await;
        assert_error(status, &body, 400, "authentication_error", "authentication");
        let (status, _) = call(&server, &doc, &login, Auth::None, json!({})).await;
        assert!(status == 400 || status == 401, "login without credentials: {status}");

        // credentials/list
        let list = p("credentials/list");
        let wanted = if v1 {
            json!({"maxResults": 10})
        } else {
            json!({"credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true, "onlyValid": true})
        };
        let (status, listed) = call(&server, &doc, &list, Auth::Bearer(&token), wanted).await;
        assert_eq!(status, 200);
        assert_eq!(listed["credentialIDs"], json!([id]));
        if !v1 {
            assert_eq!(listed["credentialInfos"][0]["credentialID"], id);
        }
        call(&server, &doc, &list, Auth::Bearer(&token), json!({})).await;
        let (status, body) = call(&server, &doc, &list, Auth::Bearer(&token), json!({"userID": "someone"})).await;
        assert_error(status, &body, 400, "invalid_request", "userID");
        let (status, _) = call(&server, &doc, &list, Auth::Bearer("not-a-token"), json!({})).await;
        assert_eq!(status, 401);
        let (status, _) = call(&server, &doc, &list, Auth::None, json!({})).await;
        assert!(status == 400 || status == 401, "list without a token: {status}");

        // credentials/info: every certificates choice, with and without details; a PIN-less EC key
        let info_path = p("credentials/info");
        for (certificates, details) in [("chain", true), ("single", false), ("none", true)] {
            let (status, info) = call(
                &server,
                &doc,
                &info_path,
                Auth::Bearer(&token),
                json!({"credentialID": id, "certificates": certificates, "certInfo": details, "authInfo": true, "lang": "en-US"}),
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(info["key"]["len"], 2048);
        }
        let ec_token = server.login(v, &ec).await;
        let (status, info) =
            call(&server, &doc, &info_path, Auth::Bearer(&ec_token), json!({"credentialID": ec.credential_id})).await;
        assert_eq!(status, 200);
        assert!(info["key"]["curve"].is_string());
        let (status, _) =
            call(&server, &doc, &info_path, Auth::Bearer(&token), json!({"credentialID": ec.credential_id})).await;
        assert!((400..500).contains(&status), "a foreign credential is refused: {status}");
        let (status, body) = call(&server, &doc, &info_path, Auth::Bearer(&token), json!({})).await;
        assert_error(status, &body, 400, "invalid_request", "credentialID");

        // credentials/authorize, extendTransaction and signHash
        let hashes = digests(2, &format!("truth-{v}"));
        let authorize = p("credentials/authorize");
        let otp = server.next_otp(&signer);
        let body = if v1 {
            json!({"credentialID": id, "numSignatures": 2, "hash": b64_all(&hashes), "OTP": otp, "PIN": "4711",
                   "description": "two documents"})
        } else {
            json!({"credentialID": id, "numSignatures": 2, "hashes": b64_all(&hashes), "hashAlgorithmOID": SHA256,
                   "authData": [{"id": "OTP", "value": otp}, {"id": "PIN", "value": "4711"}], "description": "two documents"})
        };
        let (status, authorized) = call(&server, &doc, &authorize, Auth::Bearer(&token), body.clone()).await;
        assert_eq!(status, 200, "{authorized}");
        let (status, body) = call(&server, &doc, &authorize, Auth::Bearer(&token), body).await;
        assert!(status == 400 && body["error"] != "", "a replayed code is refused: {status} {body}");

        let extend = p("credentials/extendTransaction");
        let body = if v1 {
            json!({"credentialID": id, "SAD": authorized["SAD"], "hash": b64_all(&hashes)})
        } else {
            json!({"credentialID": id, "SAD": authorized["SAD"], "hashes": b64_all(&hashes), "hashAlgorithmOID": SHA256})
        };
        let (status, extended) = call(&server, &doc, &extend, Auth::Bearer(&token), body).await;
        assert_eq!(status, 200, "{extended}");
        let (status, body) =
            call(&server, &doc, &extend, Auth::Bearer(&token), json!({"credentialID": id, "SAD": "nonsense"})).await;
        assert!(status == 400 || status == 401, "a made-up SAD is refused: {status} {body}");

        let sign = p("signatures/signHash");
        let body = if v1 {
            json!({"credentialID": id, "SAD": extended["SAD"], "hash": b64_all(&hashes), "signAlgo": SHA256_WITH_RSA,
                   "hashAlgo": SHA256})
        } else {
            json!({"credentialID": id, "SAD": extended["SAD"], "hashes": b64_all(&hashes), "signAlgo": SHA256_WITH_RSA,
                   "hashAlgorithmOID": SHA256, "operationMode": "S"})
        };
        let (status, signed) = call(&server, &doc, &sign, Auth::Bearer(&token), body.clone()).await;
        assert_eq!(status, 200, "{signed}");
        assert_eq!(signed["signatures"].as_array().unwrap().len(), 2);
        let (status, body) = call(&server, &doc, &sign, Auth::Bearer(&token), body).await;
        assert_error(status, &body, 400, "invalid_request", "SAD");
        let hash_field = if v1 { "hash" } else { "hashes" };
        let (status, body) = call(
            &server,
            &doc,
            &sign,
            Auth::Bearer(&token),
            json!({"credentialID": id, "SAD": "x", hash_field: ["not base64!"], "signAlgo": SHA256_WITH_RSA}),
        )
        .await;
        assert_eq!(status, 400, "{body}");

        // auth/revoke: the token stops working
        let revoke = p("auth/revoke");
        let (status, _) = call(
            &server,
            &doc,
            &revoke,
            Auth::Bearer(&token),
            json!({"token": token, "token_type_hint": "access_token"}),
        )
        .await;
        assert_eq!(status, 204);
        let (status, _) = call(&server, &doc, &list, Auth::Bearer(&token), json!({})).await;
        assert_eq!(status, 401);
        let (status, _) = call(&server, &doc, &revoke, Auth::Bearer(&token), json!({"token": token})).await;
        assert_eq!(status, 401);
        let fresh = server.login(v, &signer).await;
        let (status, body) =
            call(&server, &doc, &revoke, Auth::Bearer(&fresh), json!({"token": "x", "token_type_hint": "id_token"}))
                .await;
        assert_error(status, &body, 400, "invalid_request", "token_type_hint");
    }
}

/// Each field the document lists for a CSC request is one the server reads: sent with a value of a
/// type no field has, it is refused by that name. (A documented field the server does not read
/// would be ignored and the request would get past the body.)
#[tokio::test]
async fn documented_request_fields_are_the_ones_the_server_reads() {
    let server = TestServer::start().await;
    let doc = Doc::served(&server).await;
    let signer = server.provision("fields", KeyKind::EcP256, 1, None).await;

    // The v1 names the server reads (CSC 1.0.4.0 §11), against the v2 names the document once showed.
    for (route, present, absent) in [
        ("credentials/authorize", &["hash", "OTP", "PIN", "numSignatures"][..], &["hashes", "authData"][..]),
        ("credentials/extendTransaction", &["hash", "SAD"], &["hashes", "hashAlgorithmOID"]),
        ("signatures/signHash", &["hash", "hashAlgo", "signAlgo", "SAD"], &["hashes", "hashAlgorithmOID"]),
        ("credentials/list", &["maxResults", "pageToken"], &["credentialInfo", "onlyValid"]),
    ] {
        let fields = doc.request_fields(&format!("/csc/v1/{route}"));
        for name in present {
            assert!(fields.iter().any(|f| f == name), "v1 {route} documents {name}: {fields:?}");
        }
        for name in absent {
            assert!(!fields.iter().any(|f| f == name), "v1 {route} does not document {name}: {fields:?}");
        }
    }
    let v2_sign = doc.request_fields("/csc/v2/signatures/signHash");
    assert!(v2_sign.contains(&"hashes".to_string()) && v2_sign.contains(&"hashAlgorithmOID".to_string()));

    let mut checked = 0;
    for v in ["v1", "v2"] {
        let token = server.login(v, &signer).await;
        for route in [
            "info",
            "auth/login",
            "auth/revoke",
            "credentials/list",
            "credentials/info",
            "credentials/authorize",
            "credentials/extendTransaction",
            "signatures/signHash",
        ] {
            let path = format!("/csc/{v}/{route}");
            for field in doc.request_fields(&path) {
                let auth = if route == "auth/login" { Auth::Basic("fields", PASSWORD) } else { Auth::Bearer(&token) };
                let (status, body) = send(&server, &path, auth, &json!({ field.clone(): {"wrong": "type"} })).await;
                doc.check_response(&path, status, &body);
                assert_eq!(status, 400, "{path} with {field} of the wrong type: {body}");
                let description = body["error_description"].as_str().unwrap();
                assert!(description.ends_with(&format!(" parameter {field}")), "{path}, field {field}: {description}");
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "every documented field was tried ({checked})");
}
