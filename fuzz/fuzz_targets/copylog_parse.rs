//! Fuzz `DriveLog::parse`, `DriveLog::to_verbose_xml` and `DriveLog::to_error_xml`.
//!
//! Properties, for any input the parser accepts: the verbose form parses back to the same model
//! and writing it is a fixed point; the error form parses back to `errors_only()` of the model
//! and is itself a fixed point of the error writer.
#![no_main]

use drivecopy::copylog::{DriveLog, DriveLogStatus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(log) = DriveLog::parse(data) else {
        return;
    };
    let _ = (log.has_errors(), DriveLogStatus::from_blobs(&log.blobs));

    let verbose = log.to_verbose_xml();
    let again = match DriveLog::parse(verbose.as_bytes()) {
        Ok(again) => again,
        Err(e) => panic!("written verbose log does not parse: {e:?}\n{verbose}"),
    };
    assert_eq!(
        again, log,
        "verbose round trip changed the model:\n{verbose}"
    );
    assert_eq!(
        again.to_verbose_xml(),
        verbose,
        "verbose writing is not a fixed point"
    );

    let errors = log.to_error_xml();
    let parsed_errors = match DriveLog::parse(errors.as_bytes()) {
        Ok(e) => e,
        Err(e) => panic!("written error log does not parse: {e:?}\n{errors}"),
    };
    let expected = log.errors_only();
    assert_eq!(
        parsed_errors, expected,
        "error log is not errors_only():\n{errors}"
    );
    assert_eq!(expected.to_verbose_xml(), parsed_errors.to_verbose_xml());
    assert_eq!(
        parsed_errors.to_error_xml(),
        errors,
        "error writing is not a fixed point"
    );
});
