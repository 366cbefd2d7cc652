//! The conflict log in DynamoDB (moto in server mode), with the table design the deployment
//! creates (`pk`, `sk`, the `byParty` index), through the log's conformance suite (see
//! `integration_tests::conformance`): a conflict recorded once however often it is seen, read
//! back by id, by time range and by party, outcomes appended, queries filtered; and the
//! reconcile path on a real party table and dead-letter queue recording a failure, the redrive
//! after a fix appending the resolution to the same record.

mod common;

use std::sync::Arc;

use common::*;
use host_aws::conflict_log::DynamoConflictLog;
use host_aws::sqs::KIND_RECONCILE;
use integration_tests::conformance;

/// A conflict table like the template's, on the rig's server.
fn conflict_log(rig: &Rig) -> DynamoConflictLog {
    let table = unique("conflicts");
    rig.rt
        .block_on(create_conflict_table(&rig.stores.ddb, &table));
    DynamoConflictLog::new(rig.stores.ddb.clone(), table, rig.rt.handle().clone())
}

#[test]
fn dynamodb_conforms() {
    let rig = Rig::new("MOTO_ENDPOINT");
    conformance::conflict_log("DynamoDB", &conflict_log(&rig));
    conformance::conflict_log_on_the_reconcile_path(
        "DynamoDB, with the party table and SQS",
        |region| (rig.store(region), rig.letters(KIND_RECONCILE)),
        |_sink| rig.letters_kept(),
        Arc::new(conflict_log(&rig)),
    );
}
