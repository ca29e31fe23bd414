//! A large answer (a signed document, tens of megabytes) handed to actix in slices, with its length
//! up front. actix copies each piece of a body into its write buffer before it writes to the socket: a
//! body in one piece is copied whole into a buffer as large (fresh memory, faulted in page by page),
//! where slices pass one at a time through a small buffer that is reused.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;

/// Bytes handed out per slice.
const SLICE: usize = 1 << 20;

/// A body given to actix [`SLICE`] bytes at a time (each a view of the same buffer, not a copy).
pub struct SlicedBody {
    rest: Bytes,
}

impl SlicedBody {
    /// The body `bytes`.
    pub fn new(bytes: impl Into<Bytes>) -> SlicedBody {
        SlicedBody { rest: bytes.into() }
    }
}

impl MessageBody for SlicedBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.rest.len() as u64)
    }

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.rest.len().min(SLICE);
        Poll::Ready(Some(Ok(self.rest.split_to(take))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn the_body_is_whole_and_its_length_is_known_before_it_is_read() {
        let bytes: Vec<u8> = (0..(2 * SLICE + 5)).map(|i| i as u8).collect();
        let body = SlicedBody::new(bytes.clone());
        assert_eq!(body.size(), BodySize::Sized(bytes.len() as u64));
        assert_eq!(actix_web::body::to_bytes(body).await.unwrap(), bytes);
        assert_eq!(actix_web::body::to_bytes(SlicedBody::new(Vec::new())).await.unwrap(), Bytes::new());
    }
}
