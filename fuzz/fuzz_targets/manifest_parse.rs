//! Fuzz `DriveManifest::parse` and `DriveManifest::to_xml`.
//!
//! Properties, for any input the parser accepts: validation does not panic; the written form
//! parses back to the same model (`parse(write(parse(x))) == parse(x)`); writing is a fixed
//! point (`write(parse(write(m))) == write(m)`).
#![no_main]

use drivecopy::manifest::{DriveManifest, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = DriveManifest::parse(data) else {
        return;
    };
    let _ = m.validate(&Limits::default());
    let xml = m.to_xml();
    let again = match DriveManifest::parse(xml.as_bytes()) {
        Ok(again) => again,
        Err(e) => panic!("written manifest does not parse: {e:?}\n{xml}"),
    };
    assert_eq!(again, m, "round trip changed the model:\n{xml}");
    assert_eq!(again.to_xml(), xml, "writing is not a fixed point");
});
