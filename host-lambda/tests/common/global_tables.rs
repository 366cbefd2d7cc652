//! A model of Global Tables between the moto servers: what the multi-region tests and the
//! simulation's AWS world replicate with.
//!
//! Each region's [`Replica`] reads the region's own writes from its table's stream (the real
//! Streams protocol) and stamps each as the embedded world's store does: the region's clock,
//! but always after the write it replaced there — Global Tables keeps such metadata beside each
//! item; the model keeps it per region and item. A write applied in another region wins the
//! whole item when its stamp is later than that of what the region holds (or of its deletion);
//! it is not replicated again (a written item is marked `replicatedFrom`; a deletion is counted
//! per key and its stream record passed over). The write is conditional on the item being the
//! one the model last read from the stream, so a local write made meanwhile is never overwritten
//! unseen: the write fails, and is retried once the stream has been read again. Parties and
//! idempotency records replicate, deletions (released claims) too; a region's own copy of its
//! last write (`OWN#{region}`) stays in the region, as in the embedded world (Global Tables
//! replicates it too; no other region reads it).
//!
//! Why not last-writer-wins on the items' own `writtenAtMs`: once the regions' clocks are
//! skewed it does not converge (found by the simulation on the wire). A region whose clock runs
//! behind writes, over an item it read, a newer item with an earlier time; the other regions
//! keep the older one and the regions disagree for good.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodbstreams::types::{OperationType, Record};
use host_aws::dynamo::{PARTY_SK, RECORD_SK};
use host_core::store::memory::{Clock, WriteStamp};
use tokio::runtime::Handle;

use super::{read_shard, shards};

pub type Item = HashMap<String, AttributeValue>;
/// An item's key: partition and sort key.
pub type Key = (String, String);

/// One reader of a table's stream, from its start, remembering where it is in each shard.
pub struct StreamReader {
    streams: aws_sdk_dynamodbstreams::Client,
    arn: String,
    at: HashMap<String, Option<String>>,
}

impl StreamReader {
    pub fn new(streams: aws_sdk_dynamodbstreams::Client, arn: &str) -> Self {
        StreamReader {
            streams,
            arn: arn.to_owned(),
            at: HashMap::new(),
        }
    }

    /// The records written since the last call (every page of each shard).
    pub fn read(&mut self, rt: &Handle) -> Vec<Record> {
        let (streams, arn, at) = (&self.streams, &self.arn, &mut self.at);
        rt.block_on(async {
            // moto keeps one shard per table: the shards are listed once per reader.
            if at.is_empty() {
                for id in shards(streams, arn).await {
                    at.insert(id, None);
                }
            }
            let mut out = Vec::new();
            for (shard, iterator) in at.iter_mut() {
                loop {
                    let (records, next) = read_shard(streams, arn, shard, iterator.take()).await;
                    let more = !records.is_empty() && next.is_some();
                    out.extend(records);
                    *iterator = next;
                    if !more {
                        break;
                    }
                }
            }
            out
        })
    }
}

/// A write on its way to another region: the item written, or the key of one deleted, with its
/// stamp.
#[derive(Clone, Debug)]
pub struct Write {
    pub item: Item,
    pub deleted: bool,
    pub stamp: WriteStamp,
}

/// What applying a replicated write came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The region holds a later write of the item: dropped.
    Stale,
    /// Written (or deleted); `overwrote_party` when it replaced a party item, which plain
    /// Global Tables loses data on when the replaced version was concurrent.
    Written { overwrote_party: bool },
}

/// One region's end of the model.
pub struct Replica {
    pub name: String,
    rt: Handle,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    stream: StreamReader,
    clock: Clock,
    /// The stamp of the write each item (or its deletion) holds here.
    stamps: HashMap<Key, WriteStamp>,
    /// What identifies the item the stream last showed under each key (`None`: deleted).
    seen: HashMap<Key, Option<Identity>>,
    /// Own writes read from the stream, stamped, not yet taken.
    outbox: Vec<Write>,
    /// Deletions applied for other regions, per key: their stream records are not own writes.
    replicated_removes: HashMap<Key, usize>,
    writes: u64,
}

/// An item's write, as its own attributes name it: `writtenAtMs` and `writtenBy`.
type Identity = (AttributeValue, AttributeValue);

fn identity(item: &Item) -> Option<Identity> {
    Some((
        item.get("writtenAtMs")?.clone(),
        item.get("writtenBy")?.clone(),
    ))
}

pub fn text(item: &Item, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

pub fn key_of(item: &Item) -> Key {
    (text(item, "pk"), text(item, "sk"))
}

/// A stream image (the Streams API's attribute type) as a DynamoDB item.
pub fn to_item(
    image: &HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
) -> HashMap<String, AttributeValue> {
    serde_dynamo::Item::from(image.clone()).into()
}

impl Replica {
    /// Region `name`'s table `table` (with its stream `arn`), stamping with `clock`.
    pub fn new(
        name: &str,
        rt: Handle,
        ddb: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: &str,
        arn: &str,
        clock: Clock,
    ) -> Self {
        Replica {
            name: name.to_owned(),
            rt,
            ddb,
            table: table.to_owned(),
            stream: StreamReader::new(streams, arn),
            clock,
            stamps: HashMap::new(),
            seen: HashMap::new(),
            outbox: Vec::new(),
            replicated_removes: HashMap::new(),
            writes: 0,
        }
    }

    /// Reads the region's own new writes from its stream and stamps each.
    fn sync(&mut self) {
        for record in self.stream.read(&self.rt) {
            let Some(data) = record.dynamodb else {
                continue;
            };
            let deleted = record.event_name == Some(OperationType::Remove);
            let image = if deleted {
                data.old_image
            } else {
                data.new_image
            };
            let Some(image) = image else { continue };
            let item = to_item(&image);
            let key = key_of(&item);
            if key.1 != PARTY_SK && key.1 != RECORD_SK {
                continue;
            }
            let now = if deleted { None } else { identity(&item) };
            self.seen.insert(key.clone(), now);
            if deleted {
                if let Some(n) = self.replicated_removes.get_mut(&key).filter(|n| **n > 0) {
                    *n -= 1;
                    continue;
                }
            } else if item.contains_key("replicatedFrom") {
                continue; // a replicated write is not replicated again
            }
            self.writes += 1;
            let after = self.stamps.get(&key).map_or(0, |s| s.at_ms + 1);
            let stamp = WriteStamp {
                at_ms: (self.clock)().max(after),
                seq: self.writes,
                region: self.name.clone(),
            };
            self.stamps.insert(key, stamp.clone());
            self.outbox.push(Write {
                item,
                deleted,
                stamp,
            });
        }
    }

    /// The region's own writes since the last call, in stream order, stamped.
    pub fn take_outbox(&mut self) -> Vec<Write> {
        self.sync();
        std::mem::take(&mut self.outbox)
    }

    /// Applies a write replicated from another region: written when its stamp is later than
    /// that of what the region holds (every own write read from the stream is stamped first),
    /// and the item is still the one the stream last showed. An error (a throttled put, or a
    /// local write made since the stream was read) leaves the region as it was: retry it.
    pub fn apply(&mut self, write: &Write) -> Result<Applied, String> {
        self.sync();
        let key = key_of(&write.item);
        if self.stamps.get(&key).is_some_and(|s| *s >= write.stamp) {
            return Ok(Applied::Stale);
        }
        let (condition, values) = match self.seen.get(&key).cloned().flatten() {
            Some((at, by)) => (
                "writtenAtMs = :at AND writtenBy = :by",
                HashMap::from([(":at".to_owned(), at), (":by".to_owned(), by)]),
            ),
            None => ("attribute_not_exists(pk)", HashMap::new()),
        };
        let values = (!values.is_empty()).then_some(values);
        let failed = |e: &dyn std::fmt::Debug| format!("{}: {e:?}", self.name);
        let replaced = if write.deleted {
            let out = self.rt.block_on(
                self.ddb
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(key.0.clone()))
                    .key("sk", AttributeValue::S(key.1.clone()))
                    .condition_expression(condition)
                    .set_expression_attribute_values(values)
                    .return_values(ReturnValue::AllOld)
                    .send(),
            );
            let out = out.map_err(|e| failed(&e))?;
            if out.attributes.is_some() {
                *self.replicated_removes.entry(key.clone()).or_default() += 1;
            }
            out.attributes
        } else {
            let mut item = write.item.clone();
            item.insert(
                "replicatedFrom".into(),
                AttributeValue::S(write.stamp.region.clone()),
            );
            let out = self.rt.block_on(
                self.ddb
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(condition)
                    .set_expression_attribute_values(values)
                    .return_values(ReturnValue::AllOld)
                    .send(),
            );
            out.map_err(|e| failed(&e))?.attributes
        };
        let now = if write.deleted {
            None
        } else {
            identity(&write.item)
        };
        self.seen.insert(key.clone(), now);
        self.stamps.insert(key, write.stamp.clone());
        Ok(Applied::Written {
            overwrote_party: replaced.is_some_and(|old| text(&old, "sk") == PARTY_SK),
        })
    }
}
