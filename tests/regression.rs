//! Replays of the fuzz targets' properties (fuzz/fuzz_targets/) on fixed inputs.
//!
//! Each fuzz target asserts, for an input its parser accepts, that the written form parses back
//! to the same model and that writing is a fixed point (for the drive log, also that the error
//! log parses to `errors_only()`). The same checks live here as plain functions, run on every
//! fixture in `tests/data/` and on hand-written documents at the edges of the XML layer (line
//! ends, character references, CDATA, namespace prefixes, a BOM, `u64::MAX`) that a byte-level
//! fuzzer reaches rarely.
//!
//! An input found by a fuzz run goes here as `fuzz_<target>_<short description>`, with the input
//! as a byte-string literal and a `// Found by:` comment naming the target and the run. The
//! 60-second runs of 2026-11-21 (fuzz/README.md) found no crash and no property violation, so
//! there are none yet.

use drivecopy::bloblist::BlobList;
use drivecopy::copylog::DriveLog;
use drivecopy::manifest::{DriveManifest, Limits};
use drivecopy::metadata::{Metadata, Properties, MAX_METADATA_BYTES};

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

/// Every fixture file under `tests/data/<dir>`, with its name.
fn fixtures(dir: &str) -> Vec<(String, Vec<u8>)> {
    let full = format!("{}/tests/data/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&full)
        .unwrap_or_else(|e| panic!("list {full}: {e}"))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.display().to_string();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {name}: {e}"));
            (name, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {full}");
    out
}

/// The `manifest_parse` properties. Returns the model so callers can check values.
fn manifest_round_trip(input: &[u8]) -> DriveManifest {
    let m = DriveManifest::parse(input).unwrap_or_else(|e| panic!("rejected: {e:?}"));
    let _ = m.validate(&Limits::default());
    let xml = m.to_xml();
    let again = DriveManifest::parse(xml.as_bytes())
        .unwrap_or_else(|e| panic!("written manifest does not parse: {e:?}\n{xml}"));
    assert_eq!(again, m, "round trip changed the model:\n{xml}");
    assert_eq!(again.to_xml(), xml, "writing is not a fixed point");
    m
}

/// The `copylog_parse` properties.
fn copylog_round_trip(input: &[u8]) -> DriveLog {
    let log = DriveLog::parse(input).unwrap_or_else(|e| panic!("rejected: {e:?}"));
    let verbose = log.to_verbose_xml();
    let again = DriveLog::parse(verbose.as_bytes())
        .unwrap_or_else(|e| panic!("written verbose log does not parse: {e:?}\n{verbose}"));
    assert_eq!(
        again, log,
        "verbose round trip changed the model:\n{verbose}"
    );
    assert_eq!(again.to_verbose_xml(), verbose);
    let errors = log.to_error_xml();
    let parsed = DriveLog::parse(errors.as_bytes())
        .unwrap_or_else(|e| panic!("written error log does not parse: {e:?}\n{errors}"));
    assert_eq!(
        parsed,
        log.errors_only(),
        "error log is not errors_only():\n{errors}"
    );
    assert_eq!(parsed.to_error_xml(), errors);
    log
}

/// The `bloblist_parse` properties.
fn bloblist_round_trip(input: &[u8]) -> BlobList {
    let list = BlobList::parse(input).unwrap_or_else(|e| panic!("rejected: {e:?}"));
    let xml = list.to_xml();
    let again = BlobList::parse(xml.as_bytes())
        .unwrap_or_else(|e| panic!("written blob list does not parse: {e:?}\n{xml}"));
    assert_eq!(again, list, "round trip changed the list:\n{xml}");
    assert_eq!(again.to_xml(), xml);
    list
}

/// The `metadata_parse` properties, for `<Metadata>`.
fn metadata_round_trip(input: &[u8]) -> Metadata {
    let m = Metadata::parse(input).unwrap_or_else(|e| panic!("rejected: {e:?}"));
    assert!(m.size_bytes() <= MAX_METADATA_BYTES);
    let xml = m.to_xml();
    let again = Metadata::parse(xml.as_bytes())
        .unwrap_or_else(|e| panic!("written metadata does not parse: {e:?}\n{xml}"));
    assert_eq!(again, m, "round trip changed the metadata:\n{xml}");
    assert_eq!(again.to_xml(), xml);
    m
}

/// The `metadata_parse` properties, for `<Properties>`.
fn properties_round_trip(input: &[u8]) -> Properties {
    let p = Properties::parse(input).unwrap_or_else(|e| panic!("rejected: {e:?}"));
    let xml = p.to_xml();
    let again = Properties::parse(xml.as_bytes())
        .unwrap_or_else(|e| panic!("written properties do not parse: {e:?}\n{xml}"));
    assert_eq!(again, p, "round trip changed the properties:\n{xml}");
    assert_eq!(again.to_xml(), xml);
    p
}

#[test]
fn every_fixture_satisfies_its_fuzz_properties() {
    for (name, bytes) in fixtures("manifests") {
        eprintln!("{name}");
        manifest_round_trip(&bytes);
    }
    for (name, bytes) in fixtures("logs") {
        eprintln!("{name}");
        copylog_round_trip(&bytes);
    }
    for (name, bytes) in fixtures("bloblists") {
        eprintln!("{name}");
        bloblist_round_trip(&bytes);
    }
    metadata_round_trip(&fixture("metadata/import-metadata.xml"));
    properties_round_trip(&fixture("metadata/import-properties.xml"));
    assert!(Properties::parse(&fixture("metadata/properties-grammar-typo.xml")).is_err());
}

const MANIFEST_BLOB: &str = "<BlobPath>c1/a</BlobPath><FilePath>\\a</FilePath>";

fn manifest_with(drive_id: &str, blob_extra: &str) -> String {
    format!(
        "<DriveManifest Version=\"2014-11-01\"><Drive><DriveId>{drive_id}</DriveId>\
         <BlobList Id=\"s\"><Blob>{MANIFEST_BLOB}{blob_extra}</Blob></BlobList></Drive></DriveManifest>"
    )
}

#[test]
fn roundtrip_manifest_line_ends_and_character_references() {
    // A raw CR LF is read as LF (XML 1.0 §2.11); a CR written as a reference stays a CR, and
    // the writer must keep both apart.
    let doc = manifest_with(
        "a\r\nb&#xD;&#xA;c&#x9;d &#x1;",
        "<Length>1</Length><ClientData>x\ry</ClientData>",
    );
    let m = manifest_round_trip(doc.as_bytes());
    assert_eq!(m.drive.drive_id, "a\nb\r\nc\td \u{1}");
    let blob = &m.drive.blob_lists[0].blobs[0];
    assert_eq!(blob.client_data.as_deref(), Some("x\ny"));
}

#[test]
fn roundtrip_manifest_attribute_whitespace_is_normalized_once() {
    // Literal tabs and line ends in an attribute become spaces (XML 1.0 §3.3.3); references do
    // not, and the writer escapes them so they survive.
    let doc = "<DriveManifest Version=\"a\tb\r\nc&#x9;d&#xA;\"><Drive><DriveId>D</DriveId>\
               <BlobList Id=\"&quot;&lt;&amp;&gt;'\"/></Drive></DriveManifest>";
    let m = manifest_round_trip(doc.as_bytes());
    assert_eq!(m.version.as_deref(), Some("a b c\td\n"));
    assert_eq!(m.drive.blob_lists[0].id.as_deref(), Some("\"<&>'"));
}

#[test]
fn roundtrip_manifest_cdata_namespaces_and_bom() {
    let doc = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?><!DOCTYPE x><m:DriveManifest xmlns:m=\"urn:x\">\
         <m:Drive><m:DriveId><![CDATA[<a>]]>&gt;]]&gt;</m:DriveId><!-- c --><?pi x?>\
         <BlobList><Blob>{MANIFEST_BLOB}<Length> 18446744073709551615 </Length>\
         <BlockList><Block Offset=\"0\" Length=\"0\" Hash=\" 9dd4e461268c8034f5c8564e155c67a6\"/></BlockList>\
         </Blob></BlobList></m:Drive></m:DriveManifest>"
    );
    let m = manifest_round_trip(doc.as_bytes());
    assert_eq!(m.drive.drive_id, "<a>>]]>");
    assert_eq!(m.drive.blob_lists[0].blobs[0].length, u64::MAX);
}

#[test]
fn roundtrip_manifest_rejects_what_it_could_not_write_back() {
    for (doc, what) in [
        (
            manifest_with("a&#0;", "<Length>1</Length>"),
            "NUL reference",
        ),
        (
            manifest_with("a", "<Length>18446744073709551616</Length>"),
            "u64 overflow",
        ),
        (manifest_with("a", "<Length>+1</Length>"), "signed length"),
    ] {
        assert!(
            DriveManifest::parse(doc.as_bytes()).is_err(),
            "{what} accepted"
        );
    }
}

#[test]
fn roundtrip_copylog_trimmed_text_and_unknown_statuses() {
    let doc = "<DriveLog Version=\" 2014-11-01 \"><DriveId>&#x9;D\r\n</DriveId>\
        <Blob Status=\" Renamed\"><BlobPath> c1/a </BlobPath><FilePath>\\a&#xD;</FilePath>\
        <Length>0</Length><ImportDisposition Status=\"Skipped\"> no-overwrite </ImportDisposition>\
        <PageRangeList><PageRange Offset=\"0\" Length=\"512\" Status=\"Corrupted\"/>\
        <PageRange Offset=\"512\" Length=\"512\" Hash=\"9DD4E461268C8034F5C8564E155C67A6\" Status=\"Completed\"/>\
        </PageRangeList><Metadata Status=\"&#xA;New&#x9;Status\"><Path>\\m</Path></Metadata>\
        <Properties Status=\"Completed\"><GlobalPath Hash=\"9DD4E461268C8034F5C8564E155C67A6\">\\p</GlobalPath></Properties>\
        </Blob><Blob Status=\"Completed\"><BlobPath>c1/b</BlobPath><OriginalFilePath>\\b</OriginalFilePath>\
        <SizeInBytes>7</SizeInBytes><BlockList/></Blob><Status>CompletedWithErrors</Status></DriveLog>";
    let log = copylog_round_trip(doc.as_bytes());
    assert_eq!(log.version.as_deref(), Some("2014-11-01"));
    assert_eq!(log.drive_id, "D");
    assert_eq!(log.blobs[0].file_path, "\\a");
    assert_eq!(log.blobs.len(), 2);
    assert_eq!(log.errors_only().blobs.len(), 1);
    let metadata = log.blobs[0].metadata.as_ref().map(|m| m.status.as_str());
    assert_eq!(metadata, Some("New\tStatus"));
    assert!(log
        .to_error_xml()
        .contains("<Metadata Status=\"New&#x9;Status\">"));
}

#[test]
fn roundtrip_bloblist_every_selector_form() {
    let doc = "<BlobList xmlns=\"urn:x\"><BlobPathPrefix> / </BlobPathPrefix>\
        <BlobPathPrefix>/$ro</BlobPathPrefix><BlobPathPrefix>/$root/</BlobPathPrefix>\
        <BlobPathPrefix>/music/love &amp; peace</BlobPathPrefix><BlobPath>\r\n$root/logo.bmp\t</BlobPath>\
        <BlobPath>abc/a/b.c</BlobPath><BlobPath>abc/a/b.c</BlobPath></BlobList>";
    let list = bloblist_round_trip(doc.as_bytes());
    assert_eq!(list.entries.len(), 7);
}

#[test]
fn roundtrip_metadata_and_properties_edges() {
    let m = metadata_round_trip(
        b"<Metadata><a>&#xD;&#xA; x&#x1;y </a><_B><![CDATA[ <v> ]]></_B><c/></Metadata>",
    );
    assert_eq!(m.get("A"), Some("x\u{1}y"));
    assert_eq!(m.get("_b"), Some("<v>"));
    assert_eq!(m.get("c"), Some(""));
    let p = properties_round_trip(
        b"<Properties><content-length> 00012 </content-length><ETAG>\"0x1\"</ETAG>\
          <Content-MD5> 1B2M2Y8AsgTpgAmY7PhCfg== </Content-MD5><Content-Disposition>a&#xD;</Content-Disposition></Properties>",
    );
    assert_eq!(p.content_length_bytes, Some(12));
    assert_eq!(p.etag.as_deref(), Some("\"0x1\""));
    assert_eq!(p.content_disposition.as_deref(), Some("a"));
    properties_round_trip(b"<Properties/>");
    metadata_round_trip(b"<Metadata/>");
}
