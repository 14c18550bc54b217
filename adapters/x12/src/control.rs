//! Durable control numbers: an async allocator the daemon backs with the store,
//! and the reservation the synchronous writers draw from.
//!
//! X12 control numbers (ISA13, GS06, ST02) must never repeat for a sender, even
//! across a crash. The durable counter lives in the store, which this crate must
//! not depend on, so the crate defines [`ControlNumberAllocator`] and the daemon
//! implements it (each allocation committed before it returns). Writers are
//! synchronous and draw numbers one at a time through
//! [`crate::write::ControlNumbers`]; [`reserve`] bridges the two: it allocates
//! everything one interchange needs up front ([`Need`]) and returns a
//! [`Reserved`] pool. Numbers reserved but not used are simply skipped — X12
//! allows gaps, never repeats.
//!
//! Ranges: all three are 9-digit numbers (ISA13 N0 9/9, GS06 N0 1/9, ST02 AN
//! 4/9 written with at least 4 digits) in `1..=999_999_999`, wrapping to 1.

use std::collections::VecDeque;
use std::sync::Mutex;

use gateway_core::GatewayError;
use gateway_core::adapter::BoxFuture;

use crate::tree::Parsed;
use crate::write::{ControlKind, ControlNumbers, MemoryControlNumbers};

/// The largest ISA13/GS06/ST02 we write; the next one after it is 1.
pub const MAX_CONTROL_NUMBER: u64 = 999_999_999;

/// Allocates control numbers durably: the numbers returned were committed as
/// used before the call returned, so they are never handed out again.
pub trait ControlNumberAllocator: Send + Sync {
    /// The next `count` numbers of `kind`, each in `1..=`[`MAX_CONTROL_NUMBER`].
    fn allocate(
        &self,
        kind: ControlKind,
        count: u32,
    ) -> BoxFuture<'_, Result<Vec<u64>, GatewayError>>;

    /// The numbers of several kinds at once, for each `(kind, count)` in the
    /// order asked. An allocator over a store commits them together (one
    /// durable write where one per kind made the caller wait for several);
    /// the default asks for each in turn.
    fn allocate_all<'a>(
        &'a self,
        requests: &'a [(ControlKind, u32)],
    ) -> BoxFuture<'a, Result<Vec<Vec<u64>>, GatewayError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(requests.len());
            for (kind, count) in requests {
                out.push(self.allocate(*kind, *count).await?);
            }
            Ok(out)
        })
    }
}

/// How many numbers of each kind one outbound interchange needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Need {
    /// ISA13s.
    pub interchanges: u32,
    /// GS06s.
    pub groups: u32,
    /// ST02s.
    pub transactions: u32,
}

impl Need {
    /// One interchange with one group of `sets` transaction sets.
    pub fn sets(sets: u32) -> Need {
        Need {
            interchanges: 1,
            groups: 1,
            transactions: sets,
        }
    }

    /// What acknowledging `parsed` may take: a TA1 and a 999 interchange, one
    /// FA group, one 999 set per received functional group. For input that
    /// could not be parsed (`None`), one TA1.
    pub fn acknowledgment(parsed: Option<&Parsed<'_>>) -> Need {
        match parsed {
            None => Need {
                interchanges: 1,
                groups: 0,
                transactions: 0,
            },
            Some(p) => Need {
                interchanges: 2,
                groups: 1,
                transactions: u32::try_from(p.interchange.groups.len()).unwrap_or(u32::MAX),
            },
        }
    }
}

/// Numbers reserved for one interchange, handed out in order.
#[derive(Debug, Default)]
pub struct Reserved {
    pools: Mutex<[VecDeque<u64>; 3]>,
}

fn index(kind: ControlKind) -> usize {
    match kind {
        ControlKind::Interchange => 0,
        ControlKind::Group => 1,
        ControlKind::Transaction => 2,
    }
}

impl ControlNumbers for Reserved {
    fn next(&self, kind: ControlKind) -> Result<u64, GatewayError> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools[index(kind)].pop_front().ok_or_else(|| {
            GatewayError::internal(
                false,
                format!("no {} control number reserved", kind.as_str()),
            )
        })
    }
}

/// Allocates `need` from `allocator` (one durable allocation per kind).
pub async fn reserve(
    allocator: &dyn ControlNumberAllocator,
    need: Need,
) -> Result<Reserved, GatewayError> {
    let mut pools: [VecDeque<u64>; 3] = Default::default();
    let requests: Vec<(ControlKind, u32)> = [
        (ControlKind::Interchange, need.interchanges),
        (ControlKind::Group, need.groups),
        (ControlKind::Transaction, need.transactions),
    ]
    .into_iter()
    .filter(|(_, count)| *count > 0)
    .collect();
    if !requests.is_empty() {
        let numbers = allocator.allocate_all(&requests).await?;
        for ((kind, _), numbers) in requests.iter().zip(numbers) {
            pools[index(*kind)] = numbers.into();
        }
    }
    Ok(Reserved {
        pools: Mutex::new(pools),
    })
}

impl ControlNumberAllocator for MemoryControlNumbers {
    fn allocate(
        &self,
        kind: ControlKind,
        count: u32,
    ) -> BoxFuture<'_, Result<Vec<u64>, GatewayError>> {
        let numbers = (0..count).map(|_| self.next(kind)).collect();
        Box::pin(async move { numbers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "transports")]
    #[tokio::test]
    async fn reservations_hand_out_what_was_allocated_and_nothing_more() {
        let memory = MemoryControlNumbers::starting_after(7);
        let reserved = reserve(&memory, Need::sets(2)).await.expect("reserves");
        assert_eq!(reserved.next(ControlKind::Interchange).expect("isa"), 8);
        assert!(reserved.next(ControlKind::Interchange).is_err());
        assert_eq!(reserved.next(ControlKind::Group).expect("gs"), 8);
        assert_eq!(reserved.next(ControlKind::Transaction).expect("st"), 8);
        assert_eq!(reserved.next(ControlKind::Transaction).expect("st"), 9);
        assert!(reserved.next(ControlKind::Transaction).is_err());
        // The allocator moved on: a second reservation never repeats a number.
        let again = reserve(&memory, Need::sets(1)).await.expect("reserves");
        assert_eq!(again.next(ControlKind::Interchange).expect("isa"), 9);
        assert_eq!(again.next(ControlKind::Transaction).expect("st"), 10);
    }

    /// Counts the calls an allocator gets, numbering from the memory one.
    #[derive(Default)]
    struct CountingAllocator {
        memory: MemoryControlNumbers,
        calls: std::sync::Mutex<Vec<Vec<(ControlKind, u32)>>>,
    }

    impl CountingAllocator {
        fn record(&self, requests: Vec<(ControlKind, u32)>) {
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(requests);
            }
        }
    }

    impl ControlNumberAllocator for CountingAllocator {
        fn allocate(
            &self,
            kind: ControlKind,
            count: u32,
        ) -> BoxFuture<'_, Result<Vec<u64>, GatewayError>> {
            self.record(vec![(kind, count)]);
            self.memory.allocate(kind, count)
        }

        fn allocate_all<'a>(
            &'a self,
            requests: &'a [(ControlKind, u32)],
        ) -> BoxFuture<'a, Result<Vec<Vec<u64>>, GatewayError>> {
            self.record(requests.to_vec());
            Box::pin(async move {
                let mut out = Vec::new();
                for (kind, count) in requests {
                    out.push(self.memory.allocate(*kind, *count).await?);
                }
                Ok(out)
            })
        }
    }

    #[cfg(feature = "transports")]
    #[tokio::test]
    async fn a_reservation_asks_the_allocator_once_for_every_kind_it_needs() {
        let allocator = CountingAllocator::default();
        let reserved = reserve(&allocator, Need::sets(2)).await.expect("reserves");
        assert_eq!(reserved.next(ControlKind::Interchange).expect("isa"), 1);
        assert_eq!(reserved.next(ControlKind::Group).expect("gs"), 1);
        assert_eq!(reserved.next(ControlKind::Transaction).expect("st"), 1);
        assert_eq!(reserved.next(ControlKind::Transaction).expect("st"), 2);
        let calls = allocator.calls.lock().expect("calls").clone();
        assert_eq!(
            calls,
            vec![vec![
                (ControlKind::Interchange, 1),
                (ControlKind::Group, 1),
                (ControlKind::Transaction, 2)
            ]],
            "one call, no kind the interchange does not need"
        );
        // A TA1 alone needs one kind: one call with it only.
        let _ = reserve(&allocator, Need::acknowledgment(None))
            .await
            .expect("reserves");
        let calls = allocator.calls.lock().expect("calls").clone();
        assert_eq!(calls.last(), Some(&vec![(ControlKind::Interchange, 1)]));
    }

    #[test]
    fn memory_numbers_wrap_to_one() {
        let memory = MemoryControlNumbers::starting_after(MAX_CONTROL_NUMBER - 1);
        assert_eq!(
            memory.next(ControlKind::Interchange).expect("n"),
            MAX_CONTROL_NUMBER
        );
        assert_eq!(memory.next(ControlKind::Interchange).expect("n"), 1);
    }
}
