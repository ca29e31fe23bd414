//! A large answer (a signed document, tens of megabytes) handed to actix in slices, with its length
//! up front. actix copies each piece of a body into its write buffer before it writes to the socket: a
//! body in one piece is copied whole into a buffer as large (fresh memory, faulted in page by page),
//! where slices pass one at a time through a small buffer that is reused.
//!
//! A document that travels as base64 (signDoc's answer) is encoded a slice at a time as the socket takes
//! it, not into an answer buffer of its own first: that would be another 4/3 of the document in fresh
//! memory, and the encoding would wait for the whole answer instead of overlapping the sending.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;

/// Bytes handed out per slice.
const SLICE: usize = 1 << 20;
/// Bytes encoded per base64 slice: a multiple of 3, so that each slice encodes without padding and the
/// slices joined are the encoding of the whole.
const RAW_PER_SLICE: usize = SLICE / 4 * 3;

/// A part of a body.
pub enum Piece {
    /// Sent as it is.
    Plain(Bytes),
    /// Sent base64-encoded (standard alphabet, padded), as a JSON string's content needs no escaping.
    Base64(Bytes),
}

impl Piece {
    /// The bytes this piece still puts on the wire.
    fn wire_len(&self) -> usize {
        match self {
            Piece::Plain(bytes) => bytes.len(),
            Piece::Base64(raw) => raw.len().div_ceil(3) * 4,
        }
    }
}

/// A body given to actix a slice at a time: plain slices are views of their buffer, base64 slices are
/// encoded when actix asks for them.
pub struct SlicedBody {
    pieces: VecDeque<Piece>,
}

impl SlicedBody {
    /// The body `bytes`.
    pub fn new(bytes: impl Into<Bytes>) -> SlicedBody {
        SlicedBody::of(vec![Piece::Plain(bytes.into())])
    }

    /// The body made of `pieces`, in order.
    pub fn of(pieces: Vec<Piece>) -> SlicedBody {
        SlicedBody { pieces: pieces.into() }
    }
}

impl MessageBody for SlicedBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.pieces.iter().map(Piece::wire_len).sum::<usize>() as u64)
    }

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        loop {
            let Some(piece) = self.pieces.front_mut() else { return Poll::Ready(None) };
            let slice = match piece {
                Piece::Plain(bytes) if !bytes.is_empty() => bytes.split_to(bytes.len().min(SLICE)),
                Piece::Base64(raw) if !raw.is_empty() => {
                    let raw = raw.split_to(raw.len().min(RAW_PER_SLICE));
                    let mut encoded = Vec::with_capacity(raw.len().div_ceil(3) * 4);
                    super::extract::push_base64(&mut encoded, &raw);
                    Bytes::from(encoded)
                }
                _ => {
                    self.pieces.pop_front();
                    continue;
                }
            };
            return Poll::Ready(Some(Ok(slice)));
        }
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

    #[actix_web::test]
    async fn base64_pieces_encoded_slice_by_slice_are_the_encoding_of_the_whole() {
        // Lengths around a slice's worth, so that the last slice takes each of the three paddings.
        for extra in [0, 1, 2, 3, RAW_PER_SLICE - 1] {
            let raw: Vec<u8> = (0..(2 * RAW_PER_SLICE + extra)).map(|i| (i * 7 + i / 251) as u8).collect();
            let pieces = vec![
                Piece::Plain(Bytes::from_static(b"{\"a\":\"")),
                Piece::Base64(Bytes::from(raw.clone())),
                Piece::Plain(Bytes::new()),
                Piece::Base64(Bytes::new()),
                Piece::Base64(Bytes::from_static(b"xy")),
                Piece::Plain(Bytes::from_static(b"\"}")),
            ];
            let body = SlicedBody::of(pieces);
            let expected = format!(
                "{{\"a\":\"{}{}\"}}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw),
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"xy")
            );
            assert_eq!(body.size(), BodySize::Sized(expected.len() as u64), "extra {extra}");
            assert_eq!(actix_web::body::to_bytes(body).await.unwrap(), expected.as_bytes(), "extra {extra}");
        }
    }
}
