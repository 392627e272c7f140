//! Arbitrary bytes as a pb.Backend HandleRequest message: protobuf decoding,
//! translation into the framework's request, and dispatch to the engine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vault_mongodbatlas::proto::pb;

mod common;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(args) = pb::HandleRequestArgs::decode(bytes) {
        if let Some(request) = args.request {
            common::dispatch(request);
        }
    }
});
