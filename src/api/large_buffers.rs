//! Buffers of tens of megabytes that held a signed document, kept for the next large document instead
//! of given back to the system.
//!
//! glibc serves an allocation this large with a mapping of its own and unmaps it when it is freed, so
//! the kernel faults in and zeroes every page of the next one again, and in a virtual machine the host
//! often has to back those pages again too: for a 50 MB PDF, decoding it into fresh memory took 10 to
//! 70 ms where a kept buffer takes 10. A signed document's buffer is given back once its answer is sent
//! ([`super::large_body::Piece::Base64`]) and holds the next request's decoded document. A request's
//! body is not kept: it is freed after the parse, before the PDF is read, where keeping it would add its
//! size to the peak memory of the signing.
//!
//! At most [`KEPT`] buffers are kept, each about the size of the document it held, and only buffers of
//! [`MIN`] bytes or more (smaller ones glibc keeps and reuses itself). A buffer is zeroed up to its
//! length when it is given back: a person's document does not stay in the server's memory after their
//! request, and zeroing memory that is already there costs a few milliseconds for 50 MB, where fresh
//! memory costs ten times as much.

use std::sync::{Mutex, PoisonError};

/// The smallest buffer kept.
const MIN: usize = 16 << 20;
/// Buffers kept at most: two requests' documents.
const KEPT: usize = 2;

/// Large buffers waiting for their next use.
pub(crate) struct LargeBuffers {
    kept: Mutex<Vec<Vec<u8>>>,
}

/// The server's.
static SHARED: LargeBuffers = LargeBuffers::new();

impl LargeBuffers {
    const fn new() -> LargeBuffers {
        LargeBuffers { kept: Mutex::new(Vec::new()) }
    }

    /// An empty buffer with room for at least `capacity` bytes: a kept one if one is large enough (the
    /// smallest such), a new one otherwise.
    fn take(&self, capacity: usize) -> Vec<u8> {
        if capacity >= MIN {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            let fitting = kept
                .iter()
                .enumerate()
                .filter(|(_, buffer)| buffer.capacity() >= capacity)
                .min_by_key(|(_, buffer)| buffer.capacity())
                .map(|(i, _)| i);
            if let Some(i) = fitting {
                return kept.swap_remove(i);
            }
        }
        Vec::with_capacity(capacity)
    }

    /// Keeps `buffer`, zeroed, for a later [`LargeBuffers::take`] if it is large enough; when more than
    /// [`KEPT`] are then kept, the smallest is freed (the larger serve any request it would). Only a
    /// buffer whose bytes past its length were never written may be given back (nothing reads them, and
    /// they are not zeroed).
    fn give_back(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() < MIN {
            return;
        }
        buffer.fill(0);
        buffer.clear();
        let freed = {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.push(buffer);
            if kept.len() <= KEPT {
                return;
            }
            let smallest = kept.iter().enumerate().min_by_key(|(_, b)| b.capacity()).map_or(0, |(i, _)| i);
            kept.swap_remove(smallest)
        };
        // Unmapped outside the lock.
        drop(freed);
    }
}

/// An empty buffer with room for at least `capacity` bytes, kept from an earlier request if one fits.
pub(crate) fn take(capacity: usize) -> Vec<u8> {
    SHARED.take(capacity)
}

/// `buffer` is no longer needed: kept for a later request if it is large, freed otherwise.
pub(crate) fn give_back(buffer: Vec<u8>) {
    SHARED.give_back(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_given_back_serves_the_next_request_it_fits_and_small_ones_are_not_kept() {
        let buffers = LargeBuffers::new();
        let mut first = buffers.take(MIN + 10);
        assert!(first.is_empty() && first.capacity() >= MIN + 10);
        first.extend_from_slice(b"a person's document");
        let address = first.as_ptr();
        buffers.give_back(first);

        let again = buffers.take(MIN);
        assert_eq!(again.as_ptr(), address, "the same memory");
        assert!(again.is_empty(), "given out empty");
        buffers.give_back(again);
        let larger = buffers.take(2 * MIN);
        assert_ne!(larger.as_ptr(), address, "too small for this one, which stays kept");

        buffers.give_back(Vec::with_capacity(MIN - 1));
        assert_eq!(buffers.kept.lock().unwrap().len(), 1, "only the large one is kept");
    }

    #[test]
    fn at_most_two_are_kept_the_largest_and_each_request_gets_the_smallest_that_fits() {
        let buffers = LargeBuffers::new();
        for extra in [1, 3, 2] {
            buffers.give_back(Vec::with_capacity(MIN + extra * 1024));
        }
        let mut sizes: Vec<usize> = buffers.kept.lock().unwrap().iter().map(Vec::capacity).collect();
        sizes.sort();
        assert_eq!(sizes.len(), KEPT);
        assert!(sizes[0] >= MIN + 2 * 1024 && sizes[0] < MIN + 3 * 1024, "{sizes:?}");
        assert!(sizes[1] >= MIN + 3 * 1024, "{sizes:?}");
        assert_eq!(buffers.take(MIN).capacity(), sizes[0], "the smallest that fits");
        assert_eq!(buffers.take(MIN).capacity(), sizes[1]);
        assert!(buffers.kept.lock().unwrap().is_empty());
    }
}
