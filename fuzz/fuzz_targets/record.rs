//! The store's record codec (`storage::codec::decode`) on any bytes, as every record type
//! the repository stores, older schemas included (their `upgrade`): it never panics, and a
//! value it reads encodes to bytes that decode to the same value again (compared as bytes, so
//! a float's NaN does not count as a difference).
#![no_main]

use gigafactory_core::artifact::Artifact;
use gigafactory_core::budget::BudgetRecord;
use gigafactory_core::cluster::{NodeRecord, ShardLease};
use gigafactory_core::fleet::{Factory, Token};
use gigafactory_core::job::Job;
use gigafactory_core::limits::LimitSpec;
use gigafactory_core::schedule::{Run, Schedule};
use gigafactory_core::scoring::WeightsOverride;
use gigafactory_core::tracker::{Delivery, ItemRecord};
use gigafactory_core::wire::{Event, FleetEvent, LeaseAnswer};
use gigafactory_storage::codec::{Record, decode, encode};
use gigafactory_storage::repo::ReadyEntry;
use libfuzzer_sys::fuzz_target;

fn round_trip<R: Record>(bytes: &[u8]) {
    let Ok(value) = decode::<R>(bytes) else {
        return;
    };
    let Ok(encoded) = encode(&value) else {
        // A value read back may be too large to write again (the limit is on writes).
        return;
    };
    let again = decode::<R>(&encoded)
        .unwrap_or_else(|e| panic!("{} written by encode is unreadable: {e}", R::KIND));
    let re_encoded = encode(&again).expect("it encoded once");
    assert_eq!(encoded, re_encoded, "{} changed on a round trip", R::KIND);
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Job>(data);
    round_trip::<Event>(data);
    round_trip::<FleetEvent>(data);
    round_trip::<Factory>(data);
    round_trip::<Token>(data);
    round_trip::<WeightsOverride>(data);
    round_trip::<NodeRecord>(data);
    round_trip::<ShardLease>(data);
    round_trip::<LeaseAnswer>(data);
    round_trip::<ReadyEntry>(data);
    round_trip::<BudgetRecord>(data);
    round_trip::<Artifact>(data);
    round_trip::<LimitSpec>(data);
    round_trip::<ItemRecord>(data);
    round_trip::<Delivery>(data);
    round_trip::<Schedule>(data);
    round_trip::<Run>(data);
});
