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

use super::large_buffers;

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
    /// Given back to [`large_buffers`] once sent.
    Base64(Vec<u8>),
}

/// A body given to actix a slice at a time: plain slices are views of their buffer, base64 slices are
/// encoded when actix asks for them.
pub struct SlicedBody {
    pieces: VecDeque<Piece>,
    /// Bytes of the first piece already encoded, when it is [`Piece::Base64`].
    encoded: usize,
}

impl SlicedBody {
    /// The body `bytes`.
    pub fn new(bytes: impl Into<Bytes>) -> SlicedBody {
        SlicedBody::of(vec![Piece::Plain(bytes.into())])
    }

    /// The body made of `pieces`, in order.
    pub fn of(pieces: Vec<Piece>) -> SlicedBody {
        SlicedBody { pieces: pieces.into(), encoded: 0 }
    }
}

impl MessageBody for SlicedBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        let on_the_wire = |(i, piece): (usize, &Piece)| match piece {
            Piece::Plain(bytes) => bytes.len(),
            Piece::Base64(raw) => (raw.len() - if i == 0 { self.encoded } else { 0 }).div_ceil(3) * 4,
        };
        BodySize::Sized(self.pieces.iter().enumerate().map(on_the_wire).sum::<usize>() as u64)
    }

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        let this = self.get_mut();
        loop {
            let slice = match this.pieces.front_mut() {
                None => return Poll::Ready(None),
                Some(Piece::Plain(bytes)) if !bytes.is_empty() => bytes.split_to(bytes.len().min(SLICE)),
                Some(Piece::Base64(raw)) if this.encoded < raw.len() => {
                    let end = raw.len().min(this.encoded + RAW_PER_SLICE);
                    let mut encoded = Vec::with_capacity((end - this.encoded).div_ceil(3) * 4);
                    super::extract::push_base64(&mut encoded, &raw[this.encoded..end]);
                    this.encoded = end;
                    Bytes::from(encoded)
                }
                Some(_) => {
                    if let Some(Piece::Base64(raw)) = this.pieces.pop_front() {
                        large_buffers::give_back(raw);
                    }
                    this.encoded = 0;
                    continue;
                }
            };
            return Poll::Ready(Some(Ok(slice)));
        }
    }
}

impl Drop for SlicedBody {
    // A client that leaves before the end: its document's buffer is kept all the same.
    fn drop(&mut self) {
        for piece in self.pieces.drain(..) {
            if let Piece::Base64(raw) = piece {
                large_buffers::give_back(raw);
            }
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
                Piece::Base64(raw.clone()),
                Piece::Plain(Bytes::new()),
                Piece::Base64(Vec::new()),
                Piece::Base64(b"xy".to_vec()),
                Piece::Plain(Bytes::from_static(b"\"}")),
            ];
            let mut body = SlicedBody::of(pieces);
            let expected = format!(
                "{{\"a\":\"{}{}\"}}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw),
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"xy")
            );
            assert_eq!(body.size(), BodySize::Sized(expected.len() as u64), "extra {extra}");
            // Part way through, the size is what is left.
            let mut sent = Vec::new();
            for _ in 0..2 {
                let slice = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await.unwrap().unwrap();
                sent.extend_from_slice(&slice);
            }
            assert_eq!(sent.len(), 6 + SLICE, "the JSON before, then a whole slice");
            assert_eq!(body.size(), BodySize::Sized((expected.len() - sent.len()) as u64), "extra {extra}");
            sent.extend_from_slice(&actix_web::body::to_bytes(body).await.unwrap());
            assert_eq!(sent, expected.as_bytes(), "extra {extra}");
        }
    }
}
