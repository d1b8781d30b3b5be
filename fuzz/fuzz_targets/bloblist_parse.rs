//! Fuzz `BlobList::parse` and `BlobList::to_xml`.
//!
//! Properties, for any input the parser accepts: the written form parses back to the same list
//! and writing is a fixed point; every exact entry matches its own blob path.
#![no_main]

use drivecopy::bloblist::{BlobList, Selector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = BlobList::parse(data) else {
        return;
    };
    for entry in &list.entries {
        if let Selector::Exact(path) = entry {
            assert!(list.matches(path), "{path} does not match its own list");
        }
    }
    let xml = list.to_xml();
    let again = match BlobList::parse(xml.as_bytes()) {
        Ok(again) => again,
        Err(e) => panic!("written blob list does not parse: {e:?}\n{xml}"),
    };
    assert_eq!(again, list, "round trip changed the list:\n{xml}");
    assert_eq!(again.to_xml(), xml, "writing is not a fixed point");
});
