//! The vendored golden data (`golden/` at the repository root) is byte-identical to the
//! reference files it was copied from, or that the same tool made here (`golden/GENERATED.md`):
//! every `NAME.json.gz` decompresses to the file whose sha256 `golden/SHA256SUMS` lists, and
//! every listed file is there.

use std::io::Read;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../golden")
}

fn sums() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(golden_dir().join("SHA256SUMS")).expect("SHA256SUMS");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (hash, name) = l.split_once("  ").expect("sha256sum line format");
            (hash.to_string(), name.to_string())
        })
        .collect()
}

#[test]
fn vendored_files_match_their_checksums() {
    let sums = sums();
    assert_eq!(sums.len(), 26, "golden/SHA256SUMS lists the 14 shared files and the 12 generated ones");
    for (hash, name) in &sums {
        let gz = std::fs::read(golden_dir().join(format!("{name}.gz"))).expect(name);
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut json).expect(name);
        let got: String = Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&got, hash, "{name}: decompressed content differs from the reference");
    }
}

#[test]
fn every_vendored_file_is_listed() {
    let listed: Vec<String> = sums().into_iter().map(|(_, n)| format!("{n}.gz")).collect();
    let mut found = 0;
    for entry in std::fs::read_dir(golden_dir()).expect("golden/") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".json.gz") {
            assert!(listed.contains(&name), "{name} is not in SHA256SUMS");
            found += 1;
        }
    }
    assert_eq!(found, listed.len());
    assert!(golden_dir().join("README.md").is_file(), "golden/README.md");
    assert!(golden_dir().join("GENERATED.md").is_file(), "golden/GENERATED.md");
}
