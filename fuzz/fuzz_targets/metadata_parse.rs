//! Fuzz `Metadata::parse` and `Properties::parse` with their writers.
//!
//! The same input goes to both parsers (the root element picks which one accepts it).
//! Properties, for any input a parser accepts: the written form parses back to the same value,
//! writing is a fixed point, and parsed metadata keeps within `MAX_METADATA_BYTES`.
#![no_main]

use drivecopy::metadata::{Metadata, Properties, MAX_METADATA_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Metadata::parse(data) {
        assert!(m.size_bytes() <= MAX_METADATA_BYTES);
        let xml = m.to_xml();
        let again = match Metadata::parse(xml.as_bytes()) {
            Ok(again) => again,
            Err(e) => panic!("written metadata does not parse: {e:?}\n{xml}"),
        };
        assert_eq!(again, m, "metadata round trip changed the value:\n{xml}");
        assert_eq!(again.to_xml(), xml, "metadata writing is not a fixed point");
    }
    if let Ok(p) = Properties::parse(data) {
        let xml = p.to_xml();
        let again = match Properties::parse(xml.as_bytes()) {
            Ok(again) => again,
            Err(e) => panic!("written properties do not parse: {e:?}\n{xml}"),
        };
        assert_eq!(again, p, "properties round trip changed the value:\n{xml}");
        assert_eq!(
            again.to_xml(),
            xml,
            "properties writing is not a fixed point"
        );
    }
});
