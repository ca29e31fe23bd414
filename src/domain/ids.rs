//! Ids as types: a user id cannot be passed where a credential id is meant. Each is the text stored
//! and sent (a UUID for ids rssp makes), carried as is: serde and the OpenAPI document see a string.

use std::fmt;

/// Defines an id newtype over `String`: `Display`, `as_str`, `Deref<Target = str>` (so it reads
/// wherever a `&str` is taken), conversions from and into `String`, serde transparent, and an
/// OpenAPI string schema.
macro_rules! id_type {
    ($(#[doc = $doc:literal])* $name:ident) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id from its text.
            pub fn new(id: impl Into<String>) -> $name {
                $name(id.into())
            }

            /// A new random id (a UUID), for a new record.
            pub fn generate() -> $name {
                $name(uuid::Uuid::new_v4().to_string())
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> $name {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> $name {
                $name(id.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).into()
            }
        }
    };
}

id_type! {
    /// A person's (or a provisioned signer's) user id.
    UserId
}

id_type! {
    /// A credential's id (CSC `credentialID`).
    CredentialId
}

id_type! {
    /// An order's id.
    OrderId
}

id_type! {
    /// An identity check's id.
    CheckId
}

id_type! {
    /// An OAuth2 client's id (`client_id`), made by rssp when an operator registers the client.
    ClientId
}

// The schema names in the OpenAPI document: each the type's own name.
impl utoipa::ToSchema for UserId {}
impl utoipa::ToSchema for ClientId {}
impl utoipa::ToSchema for CredentialId {}
impl utoipa::ToSchema for OrderId {}
impl utoipa::ToSchema for CheckId {}
