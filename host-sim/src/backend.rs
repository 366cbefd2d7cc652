//! The stores a simulated region runs on, and the channels between regions that the scheduler
//! drives: what differs between the embedded world and the AWS world.
//!
//! The simulation asks each region for its table (as [`Ingest`](host_core::ingest::Ingest) and
//! [`Reconcile`](host_core::reconcile::Reconcile) see it), its dead-letter sinks, the writes it
//! made that Global Tables would carry to the other regions, and the records its stream hands
//! to reconcile. Everything else — the clients, the faults, the schedule, the oracle — is the
//! same in every world.
//!
//! [`Embedded`] is the in-process world `serve` runs on ([`MemoryStore::replica`]). The AWS world
//! (DynamoDB, its stream and SQS on moto servers) implements the same trait in host-lambda's
//! tests (`tests/simulation_aws.rs`), so a seed's schedule runs on the wire too.

use std::sync::Arc;

use host_core::store::memory::{Clock, ItemKey, MemoryDeadLetters, MemoryStore, Replicated};
use host_core::store::{DeadLetter, DeadLetterSink, IngestStore};

pub use host_core::store::memory::{StreamRecord, WriteStamp};

/// One region's stores, as the simulation drives them.
pub trait RegionStores {
    /// The party table (parties and idempotency records) as the pipeline reads and writes it.
    type Table: IngestStore + Send + Sync + 'static;
    /// Where ingest and reconcile keep what they cannot apply.
    type Letters: DeadLetterSink + Send + Sync + 'static;
    /// A write on its way to another region.
    type Write: Clone;

    fn table(&self) -> Arc<Self::Table>;
    fn ingest_letters(&self) -> Self::Letters;
    fn reconcile_letters(&self) -> Self::Letters;

    /// This region's own writes (not those replicated to it) since the last call, in order:
    /// what Global Tables carries to the other regions.
    fn take_outbox(&mut self) -> Vec<Self::Write>;
    /// The party a write is of (`None`: an idempotency record), for the trace.
    fn party_of(write: &Self::Write) -> Option<&str>;
    /// Applies a write replicated from another region: last writer wins on the whole item.
    /// Returns whether it was kept.
    fn apply_replicated(&mut self, write: &Self::Write) -> bool;
    /// The party writes of this region's stream since the last call, in order: each with the
    /// item it overwrote, as DynamoDB Streams hands them to reconcile.
    fn take_stream(&mut self) -> Vec<StreamRecord>;
    /// Takes every letter of the region's dead-letter queue (for a redrive).
    fn take_letters(&mut self) -> Vec<DeadLetter>;
    /// Puts a letter the redrive could not apply back in the queue.
    fn keep_letter(&mut self, letter: DeadLetter);
    /// How many letters the queue holds.
    fn letters_left(&self) -> usize;
}

/// A world of regions: makes each region's stores.
pub trait Backend {
    type Region: RegionStores;
    /// The stores of region `name`, whose clock (for the replication timestamps of its writes)
    /// is `clock`.
    fn region(&self, name: &str, clock: Clock) -> Self::Region;
}

/// The embedded world: each region a [`MemoryStore::replica`], its dead letters in memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct Embedded;

/// A region of the embedded world.
pub struct EmbeddedRegion {
    store: Arc<MemoryStore>,
    letters: Arc<MemoryDeadLetters>,
}

impl Backend for Embedded {
    type Region = EmbeddedRegion;

    fn region(&self, name: &str, clock: Clock) -> EmbeddedRegion {
        EmbeddedRegion {
            store: Arc::new(MemoryStore::replica(name, clock)),
            letters: Arc::new(MemoryDeadLetters::default()),
        }
    }
}

impl RegionStores for EmbeddedRegion {
    type Table = MemoryStore;
    type Letters = Arc<MemoryDeadLetters>;
    type Write = Replicated;

    fn table(&self) -> Arc<MemoryStore> {
        self.store.clone()
    }

    fn ingest_letters(&self) -> Arc<MemoryDeadLetters> {
        self.letters.clone()
    }

    fn reconcile_letters(&self) -> Arc<MemoryDeadLetters> {
        self.letters.clone()
    }

    fn take_outbox(&mut self) -> Vec<Replicated> {
        self.store.take_outbox()
    }

    fn party_of(write: &Replicated) -> Option<&str> {
        match &write.key {
            ItemKey::Party { party_id, .. } => Some(party_id),
            ItemKey::Record { .. } => None,
        }
    }

    fn apply_replicated(&mut self, write: &Replicated) -> bool {
        self.store.apply_replicated(write)
    }

    fn take_stream(&mut self) -> Vec<StreamRecord> {
        self.store.take_stream()
    }

    fn take_letters(&mut self) -> Vec<DeadLetter> {
        self.letters.take()
    }

    fn keep_letter(&mut self, letter: DeadLetter) {
        let _ = self.letters.send(&letter); // in memory: cannot fail
    }

    fn letters_left(&self) -> usize {
        self.letters.letters.lock().map(|l| l.len()).unwrap_or(0)
    }
}
